//! Dynamics named by a problem: the built-in library of DryVR example models (keyed by the
//! basename of `directory`), the vehicle models, and pf-reach's inline `dynamics` object.

use std::collections::HashMap;

use serde_json::Value;

use super::{Ctx, Dynamics, ProblemError};
use crate::model::{OdeModel, compile_plain, parse_library, vehicle_model};

/// Models that DryVR 0.2 references but that cannot be transcribed.
const UNAVAILABLE: &[(&str, &str)] = &[
    (
        "ClampedBeam_348",
        "its folder is missing from the DryVR repository",
    ),
    (
        "bruss",
        "it calls a compiled C2E2 binary whose dynamics are unknown",
    ),
    (
        "hybrid_inverter_ramp",
        "it calls a compiled C2E2 binary whose dynamics are unknown",
    ),
    (
        "uniform_NOR_ramp",
        "it calls a compiled C2E2 binary whose dynamics are unknown",
    ),
    (
        "uniform_NOR_sigmoid",
        "it calls a compiled C2E2 binary whose dynamics are unknown",
    ),
    (
        "uniform_OR_ramp",
        "it calls a compiled C2E2 binary whose dynamics are unknown",
    ),
    (
        "uniform_OR_sigmoid",
        "it calls a compiled C2E2 binary whose dynamics are unknown",
    ),
    (
        "uniform_inverter_loop",
        "it calls a compiled C2E2 binary whose dynamics are unknown",
    ),
    (
        "uniform_inverter_sigmoid",
        "it calls a compiled C2E2 binary whose dynamics are unknown",
    ),
    ("AF_rendezvous", "it needs MATLAB with the HyEQ toolbox"),
];

/// Names of the built-in models (keyed by the basename of `directory`).
pub fn builtin_names() -> Vec<String> {
    let mut v: Vec<String> = library().iter().map(|m| m.name.clone()).collect();
    v.push("cars".into());
    v.push("newcars".into());
    v
}

fn library() -> Vec<OdeModel> {
    let mut v = parse_library(include_str!("../models/examples.txt")).unwrap_or_default();
    v.extend(parse_library(include_str!("../models/linear.txt")).unwrap_or_default());
    v
}

/// The built-in model `key` for a problem with state `vars` and modes `vertices`.
pub(crate) fn builtin(key: &str, vars: &[String], vertices: &[String]) -> Result<Dynamics, String> {
    if let Some((_, why)) = UNAVAILABLE.iter().find(|(k, _)| *k == key) {
        return Err(format!("model `{key}` is not available: {why}"));
    }
    if key == "cars" || key == "newcars" {
        return vehicle_model(key, vars, vertices)
            .map(Dynamics::Ode)
            .map_err(|e| e.msg);
    }
    let Some(mut m) = library().into_iter().find(|m| m.name == key) else {
        return Err(format!(
            "unknown model `{key}`; built-in models: {}",
            builtin_names().join(", ")
        ));
    };
    if m.vars.len() != vars.len() {
        return Err(format!(
            "model `{key}` has {} state variables, the problem has {}",
            m.vars.len(),
            vars.len()
        ));
    }
    // DryVR passes the state positionally: adopt the problem's names.
    m.vars = vars.to_vec();
    Ok(Dynamics::Ode(m))
}

/// Compile the inline `dynamics` object.
pub(crate) fn parse_dynamics(
    cx: &Ctx<'_>,
    d: &Value,
    vars: &[String],
    vertices: &[String],
) -> Result<OdeModel, ProblemError> {
    let step = d.get("step").and_then(Value::as_f64).unwrap_or(0.05);
    if !(step > 0.0 && step.is_finite()) {
        return Err(cx.field("dynamics.step", "must be a positive number"));
    }
    let mut consts = HashMap::new();
    if let Some(c) = d.get("constants") {
        let c = c
            .as_object()
            .ok_or_else(|| cx.field("dynamics.constants", "expected an object name -> number"))?;
        for (k, v) in c {
            let f = v
                .as_f64()
                .ok_or_else(|| cx.field(&format!("dynamics.constants.{k}"), "expected a number"))?;
            consts.insert(k.clone(), f);
        }
    }
    let eqs_of = |path: &str, v: &Value| -> Result<HashMap<String, String>, ProblemError> {
        match v {
            Value::Object(o) => o
                .iter()
                .map(|(k, e)| {
                    Ok((
                        k.clone(),
                        e.as_str()
                            .ok_or_else(|| cx.field(&format!("{path}.{k}"), "expected a string"))?
                            .to_string(),
                    ))
                })
                .collect(),
            Value::Array(a) if a.len() == vars.len() => a
                .iter()
                .zip(vars)
                .enumerate()
                .map(|(i, (e, n))| {
                    Ok((
                        n.clone(),
                        e.as_str()
                            .ok_or_else(|| cx.field(&format!("{path}[{i}]"), "expected a string"))?
                            .to_string(),
                    ))
                })
                .collect(),
            _ => Err(cx.field(
                path,
                format!(
                    "expected an object var -> expression or an array of {} expressions",
                    vars.len()
                ),
            )),
        }
    };
    let compile = |path: &str, eqs: HashMap<String, String>| {
        for k in eqs.keys() {
            if !vars.contains(k) {
                return Err(cx.field(path, format!("equation for unknown variable `{k}`")));
            }
        }
        compile_plain(vars, &eqs, &consts).map_err(|(src, e)| {
            if e.msg.starts_with("no equation") {
                cx.field(path, e.msg)
            } else {
                cx.expr(path, &src, e)
            }
        })
    };
    let mut modes = HashMap::new();
    let mut any = None;
    if let Some(m) = d.get("modes") {
        let m = m
            .as_object()
            .ok_or_else(|| cx.field("dynamics.modes", "expected an object mode -> equations"))?;
        for (k, v) in m {
            let path = format!("dynamics.modes.{k}");
            modes.insert(k.clone(), compile(&path, eqs_of(&path, v)?)?);
        }
    }
    if let Some(v) = d.get("equations") {
        any = Some(compile(
            "dynamics.equations",
            eqs_of("dynamics.equations", v)?,
        )?);
    }
    if modes.is_empty() && any.is_none() {
        return Err(cx.field("dynamics", "needs `equations` (all modes) or `modes`"));
    }
    let _ = vertices;
    Ok(OdeModel {
        name: "inline".into(),
        step,
        vars: vars.to_vec(),
        modes,
        any,
    })
}

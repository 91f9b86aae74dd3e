//! ODE models: per-mode right-hand sides in the expression language, optional hidden internal
//! state (entry and output maps, used by the DryVR `cars`/`newcars` vehicle models), the model
//! text format of the built-in library, and simulation with the RK45 integrator.

use std::collections::HashMap;

use crate::deriv::derive;
use crate::expr::{Expr, ExprError, Sym};
use crate::ode::{OdeError, OdeOpts, integrate_partial_at};
use crate::switches::time_switches;

/// Dynamics of one mode.
#[derive(Clone, Debug)]
pub struct ModeDyn {
    /// Internal state from the visible state on entering the mode (None: identity).
    pub entry: Option<Vec<Expr>>,
    /// Derivatives of the internal state (over internal state and local time `t`).
    pub rhs: Vec<Expr>,
    /// Visible state from the internal state and `t` (None: identity).
    pub output: Option<Vec<Expr>>,
    /// `(A, b)` with `rhs = A x + b` (row-major `A`) when the right-hand side is affine and
    /// time-invariant: evaluated as a matrix product, much faster than interpretation.
    pub affine: Option<(Vec<f64>, Vec<f64>)>,
    /// Local times where the right-hand side switches (see [`crate::switches`]).
    pub switches: Vec<f64>,
}

impl ModeDyn {
    /// Build from parts, detecting affine right-hand sides.
    pub fn new(entry: Option<Vec<Expr>>, rhs: Vec<Expr>, output: Option<Vec<Expr>>) -> ModeDyn {
        let n = rhs.len();
        let mut affine = None;
        if rhs.iter().all(|e| !e.uses_time()) {
            let mut a = vec![0.0; n * n];
            let mut ok = true;
            'rows: for (i, e) in rhs.iter().enumerate() {
                for j in 0..n {
                    match derive(&e.node, j).map(Expr::from_node) {
                        Ok(d) if !d.uses_state() && !d.uses_time() => {
                            a[i * n + j] = d.eval(&[], 0.0)
                        }
                        _ => {
                            ok = false;
                            break 'rows;
                        }
                    }
                }
            }
            if ok {
                let zero = vec![0.0; n];
                let b: Vec<f64> = rhs.iter().map(|e| e.eval(&zero, 0.0)).collect();
                if a.iter().chain(&b).all(|v| v.is_finite()) {
                    affine = Some((a, b));
                }
            }
        }
        let switches = time_switches(&rhs);
        ModeDyn {
            entry,
            rhs,
            output,
            affine,
            switches,
        }
    }

    /// Whether internal and visible states coincide (a plain ODE; needed by the sound mode).
    pub fn is_plain(&self) -> bool {
        self.entry.is_none() && self.output.is_none()
    }
}

/// A compiled ODE model.
#[derive(Clone, Debug)]
pub struct OdeModel {
    /// Model name.
    pub name: String,
    /// Output sample step of traces.
    pub step: f64,
    /// Visible state names (JSON order).
    pub vars: Vec<String>,
    /// Dynamics by mode name.
    pub modes: HashMap<String, ModeDyn>,
    /// Dynamics for any mode not listed.
    pub any: Option<ModeDyn>,
}

/// A model-definition error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{msg}")]
pub struct ModelError {
    /// Message.
    pub msg: String,
}

fn merr<T>(msg: impl Into<String>) -> Result<T, ModelError> {
    Err(ModelError { msg: msg.into() })
}

impl OdeModel {
    /// The dynamics used for `mode`.
    pub fn mode(&self, mode: &str) -> Option<&ModeDyn> {
        self.modes.get(mode).or(self.any.as_ref())
    }

    /// Simulate `mode` from visible state `x0` over local time `[0, horizon]`, sampled every
    /// `step` (plus the horizon itself).
    pub fn simulate(
        &self,
        mode: &str,
        x0: &[f64],
        horizon: f64,
        o: &OdeOpts,
    ) -> Result<(Vec<f64>, Vec<Vec<f64>>), OdeError> {
        match self.simulate_partial(mode, x0, horizon, o) {
            (ts, xs, None) => Ok((ts, xs)),
            (_, _, Some(e)) => Err(e),
        }
    }

    /// Like [`OdeModel::simulate`], but on an integration error returns the samples reached
    /// before it (times truncated to match) together with the error.
    pub fn simulate_partial(
        &self,
        mode: &str,
        x0: &[f64],
        horizon: f64,
        o: &OdeOpts,
    ) -> (Vec<f64>, Vec<Vec<f64>>, Option<OdeError>) {
        let Some(m) = self.mode(mode) else {
            return (vec![], vec![], Some(OdeError::NonFinite { t: 0.0 }));
        };
        let ts = time_grid(horizon, self.step);
        let xi: Vec<f64> = match &m.entry {
            Some(e) => e.iter().map(|e| e.eval(x0, 0.0)).collect(),
            None => x0.to_vec(),
        };
        let rhs = &m.rhs;
        let aff = m.affine.as_ref();
        let f = |x: &[f64], t: f64, d: &mut [f64]| {
            if let Some((a, b)) = aff {
                let n = x.len();
                for (i, di) in d.iter_mut().enumerate() {
                    let row = &a[i * n..(i + 1) * n];
                    *di = b[i] + row.iter().zip(x).map(|(p, q)| p * q).sum::<f64>();
                }
                return;
            }
            for (di, e) in d.iter_mut().zip(rhs) {
                *di = e.eval(x, t);
            }
        };
        let (xs, mut err) = integrate_partial_at(&f, &xi, &ts, &m.switches, o);
        let mut ts = ts;
        ts.truncate(xs.len());
        let xs: Vec<Vec<f64>> = match &m.output {
            Some(out) => xs
                .iter()
                .zip(&ts)
                .map(|(x, &t)| out.iter().map(|e| e.eval(x, t)).collect())
                .collect(),
            None => xs,
        };
        let mut keep = xs.len();
        for (k, (x, &t)) in xs.iter().zip(&ts).enumerate() {
            if x.iter().any(|v| !v.is_finite()) {
                keep = k;
                err = err.or(Some(OdeError::NonFinite { t }));
                break;
            }
        }
        let (mut ts, mut xs) = (ts, xs);
        ts.truncate(keep);
        xs.truncate(keep);
        (ts, xs, err)
    }
}

/// `0, h, 2h, ...` up to and including `horizon`.
pub fn time_grid(horizon: f64, h: f64) -> Vec<f64> {
    let n = (horizon / h - 1e-9).ceil().max(0.0) as usize;
    let mut ts: Vec<f64> = (0..n).map(|i| i as f64 * h).collect();
    ts.push(horizon.max(0.0));
    if ts.len() == 1 {
        ts.push(horizon.max(0.0));
    }
    ts
}

/// Compile one mode's equations (`var -> expr`) over `vars` with named `consts`.
pub fn compile_plain(
    vars: &[String],
    eqs: &HashMap<String, String>,
    consts: &HashMap<String, f64>,
) -> Result<ModeDyn, (String, ExprError)> {
    let resolve = |s: &str| -> Option<Sym> {
        if let Some(i) = vars.iter().position(|v| v == s) {
            return Some(Sym::Var(i));
        }
        if s == "t" {
            return Some(Sym::Time);
        }
        consts.get(s).map(|&c| Sym::Const(c))
    };
    let mut rhs = Vec::with_capacity(vars.len());
    for v in vars {
        let Some(src) = eqs.get(v) else {
            return Err((
                v.clone(),
                ExprError {
                    msg: format!("no equation for `{v}`"),
                    col: 0,
                },
            ));
        };
        rhs.push(Expr::parse(src, &resolve).map_err(|e| (src.clone(), e))?);
    }
    Ok(ModeDyn::new(None, rhs, None))
}

/// Parse the model text format (see `models/examples.txt`) into named models.
pub fn parse_library(text: &str) -> Result<Vec<OdeModel>, ModelError> {
    struct Raw {
        name: String,
        step: f64,
        vars: Vec<String>,
        consts: HashMap<String, f64>,
        common: HashMap<String, String>,
        modes: Vec<(String, HashMap<String, String>)>,
        order: Vec<String>,
    }
    let mut raws: Vec<Raw> = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = |m: &str| ModelError {
            msg: format!("model library line {}: {m}", ln + 1),
        };
        match words[0] {
            "model" => {
                let (Some(name), Some(&"step"), Some(h)) =
                    (words.get(1), words.get(2), words.get(3))
                else {
                    return Err(at("expected `model NAME step H`"));
                };
                let step = h.parse::<f64>().map_err(|_| at("bad step"))?;
                raws.push(Raw {
                    name: name.to_string(),
                    step,
                    vars: vec![],
                    consts: HashMap::new(),
                    common: HashMap::new(),
                    modes: vec![],
                    order: vec![],
                });
            }
            w => {
                let Some(r) = raws.last_mut() else {
                    return Err(at("statement before `model`"));
                };
                match w {
                    "vars" => r.vars = words[1..].iter().map(|s| s.to_string()).collect(),
                    "const" => {
                        let (Some(n), Some(v)) = (words.get(1), words.get(2)) else {
                            return Err(at("expected `const NAME VALUE`"));
                        };
                        r.consts
                            .insert(n.to_string(), v.parse().map_err(|_| at("bad constant"))?);
                    }
                    "mode" => r.modes.push((
                        words
                            .get(1)
                            .ok_or_else(|| at("mode name missing"))?
                            .to_string(),
                        HashMap::new(),
                    )),
                    _ => {
                        let Some((lhs, rhs)) = line.split_once("' =") else {
                            return Err(at("expected `var' = expr`"));
                        };
                        let lhs = lhs.trim().to_string();
                        if !r.order.contains(&lhs) {
                            r.order.push(lhs.clone());
                        }
                        let target = match r.modes.last_mut() {
                            Some((_, m)) => m,
                            None => &mut r.common,
                        };
                        target.insert(lhs, rhs.trim().to_string());
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for r in raws {
        let vars = if r.vars.is_empty() {
            r.order.clone()
        } else {
            r.vars.clone()
        };
        let build = |extra: &HashMap<String, String>| {
            let mut eqs = r.common.clone();
            eqs.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
            compile_plain(&vars, &eqs, &r.consts).map_err(|(s, e)| ModelError {
                msg: format!("model {}: `{s}`: {e}", r.name),
            })
        };
        let mut modes = HashMap::new();
        let mut any = None;
        if r.modes.is_empty() {
            any = Some(build(&HashMap::new())?);
        } else {
            for (m, eqs) in &r.modes {
                modes.insert(m.clone(), build(eqs)?);
            }
        }
        out.push(OdeModel {
            name: r.name,
            step: r.step,
            vars,
            modes,
            any,
        });
    }
    Ok(out)
}

/// Build a multi-agent vehicle model for the problem's vertex (mode) names. `kind` is `cars`
/// (4 variables per car) or `newcars` (5 per car).
pub fn vehicle_model(
    kind: &str,
    vars: &[String],
    mode_names: &[String],
) -> Result<OdeModel, ModelError> {
    let per = if kind == "cars" { 4 } else { 5 };
    if vars.is_empty() || !vars.len().is_multiple_of(per) {
        return merr(format!(
            "model `{kind}` needs {per} variables per car, got {}",
            vars.len()
        ));
    }
    let ncar = vars.len() / per;
    let mut modes = HashMap::new();
    for name in mode_names {
        if modes.contains_key(name) {
            continue;
        }
        let parts: Vec<&str> = name.split(';').collect();
        if parts.len() != ncar {
            return merr(format!(
                "mode `{name}` names {} cars, the state has {ncar}",
                parts.len()
            ));
        }
        let mut entry = Vec::new();
        let mut rhs = Vec::new();
        let mut output = Vec::new();
        for (k, agent) in parts.iter().enumerate() {
            let (e, r, o) = if kind == "cars" {
                car_agent(agent)?
            } else {
                newcar_agent(agent)?
            };
            let nint = e.len();
            let vis = |s: &str| -> Option<Sym> {
                let names = if per == 4 {
                    &["x", "y", "vx", "vy"][..]
                } else {
                    &["x", "y", "vx", "vy", "delta"][..]
                };
                names
                    .iter()
                    .position(|n| *n == s)
                    .map(|i| Sym::Var(k * per + i))
            };
            let int_names: &[&str] = if per == 4 {
                &["sx", "sy", "psi", "v0"]
            } else {
                &["sx", "sy", "d", "v", "psi", "tau"]
            };
            let int = |s: &str| -> Option<Sym> {
                if s == "t" {
                    return Some(Sym::Time);
                }
                int_names
                    .iter()
                    .position(|n| *n == s)
                    .map(|i| Sym::Var(k * nint + i))
            };
            let p = |src: &str, res: &dyn Fn(&str) -> Option<Sym>| {
                Expr::parse(src, res).map_err(|e| ModelError {
                    msg: format!("vehicle model `{src}`: {e}"),
                })
            };
            for s in &e {
                entry.push(p(s, &vis)?);
            }
            for s in &r {
                rhs.push(p(s, &int)?);
            }
            for s in &o {
                output.push(p(s, &int)?);
            }
        }
        modes.insert(name.clone(), ModeDyn::new(Some(entry), rhs, Some(output)));
    }
    Ok(OdeModel {
        name: kind.to_string(),
        step: 0.05,
        vars: vars.to_vec(),
        modes,
        any: None,
    })
}

type Agent = (Vec<String>, Vec<String>, Vec<String>);

/// DryVR `cars`: heading reset to -pi/2 on entry, open-loop speed and steering (MODELS.md).
fn car_agent(mode: &str) -> Result<Agent, ModelError> {
    let a = match mode {
        "Const" | "TurnLeft" | "TurnRight" => "0",
        "Acc1" | "Acc2" => "0.2",
        // DryVR decelerates unless `v_initial == 0.0`; its speed is rebuilt from
        // `v*cos(-pi/2)` terms, so a stopped car has a speed of ~1e-17, not 0: below 1e-9
        // m/s a car counts as stopped (else it would start reversing).
        "Dec" | "Brk" => "(-0.2*step(v0 - 1e-9))",
        _ => return merr(format!("unknown `cars` mode `{mode}`")),
    };
    let delta = match mode {
        "TurnRight" => "(step(t)*step(2-t) - step(t-5)*step(7-t))",
        "TurnLeft" => "(step(t-5)*step(7-t) - step(t)*step(2-t))",
        _ => "0",
    };
    let v = format!("(v0 + {a}*min(t, 5))");
    let dpsi = format!("({v}/5*pi/8*{delta})");
    let entry = ["x", "y", "-pi/2", "sqrt(vx^2 + vy^2)"]
        .map(String::from)
        .to_vec();
    let rhs = vec![
        format!("{v}*cos(psi) - 2.5*{dpsi}*sin(psi)"),
        format!("{v}*sin(psi) + 2.5*{dpsi}*cos(psi)"),
        dpsi.clone(),
        "0".into(),
    ];
    let output = vec![
        "sx".into(),
        "sy".into(),
        format!("{v}*cos(psi)"),
        format!("{v}*sin(psi)"),
    ];
    Ok((entry, rhs, output))
}

/// DryVR `newcars`: bicycle model with steering rate and acceleration by mode (MODELS.md).
fn newcar_agent(mode: &str) -> Result<Agent, ModelError> {
    let (a, w, tau) = match mode {
        "Const" => ("0", "0", "0"),
        "Acc" => ("0.5", "0", "0"),
        "Dec" | "Brk" => ("(-0.5)", "0", "0"),
        "TurnLeft" => ("0", "(-0.2*step(tau - t))", "abs(-0.35 - delta)/0.2"),
        "TurnRight" => ("0", "(0.2*step(tau - t))", "(0.35 - delta)/0.2"),
        _ => return merr(format!("unknown `newcars` mode `{mode}`")),
    };
    // Saturation at |v| >= 45.8 is approximated by stopping acceleration there.
    let sat = "step(45.8 - abs(v))";
    let entry = vec![
        "x".into(),
        "y".into(),
        "delta".into(),
        "sqrt(vx^2 + vy^2)".into(),
        "step(abs(vy))*atan(vx/(vy + 1 - step(abs(vy)))) + (1 - step(abs(vy)))*pi/2".into(),
        tau.into(),
    ];
    let rhs = vec![
        "v*sin(psi)".into(),
        "v*cos(psi)".into(),
        format!("{w}*{sat}"),
        format!("{a}*{sat}"),
        "v/5*tan(d)".into(),
        "0".into(),
    ];
    let output = ["sx", "sy", "v*sin(psi)", "v*cos(psi)", "d"]
        .map(String::from)
        .to_vec();
    Ok((entry, rhs, output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_parses_and_simulates() {
        let lib = parse_library(include_str!("models/examples.txt")).unwrap_or_default();
        assert!(lib.len() >= 20);
        let th = lib.iter().find(|m| m.name == "Thermostats");
        let th = th.unwrap_or_else(|| panic!("no thermostat"));
        let (ts, xs) = th
            .simulate("On", &[75.0], 1.0, &OdeOpts::default())
            .unwrap_or_default();
        assert_eq!(ts.len(), 21);
        let last = xs.last().map_or(0.0, |x| x[0]);
        assert!((last - 75.0 * 0.1f64.exp()).abs() < 1e-6);
        let lin = parse_library(include_str!("models/linear.txt")).unwrap_or_default();
        assert_eq!(lin.iter().map(|m| m.vars.len()).sum::<usize>(), 142);
    }

    #[test]
    fn cars_drive_down_and_turn() {
        let vars: Vec<String> = ["x", "y", "vx", "vy"].map(String::from).to_vec();
        let m = vehicle_model("cars", &vars, &["Const".into(), "TurnRight".into()])
            .unwrap_or_else(|e| panic!("{e}"));
        let (_, xs) = m
            .simulate("Const", &[0.0, 0.0, 0.0, 1.0], 2.0, &OdeOpts::default())
            .unwrap_or_default();
        let end = xs.last().cloned().unwrap_or_default();
        assert!(
            (end[1] + 2.0).abs() < 1e-6 && end[0].abs() < 1e-9,
            "{end:?}"
        );
        let (_, xs) = m
            .simulate(
                "TurnRight",
                &[0.0, 0.0, 0.0, 1.0],
                10.0,
                &OdeOpts::default(),
            )
            .unwrap_or_default();
        let end = xs.last().cloned().unwrap_or_default();
        // A lane change: heading restored, lateral offset non-zero.
        assert!(
            end[0].abs() > 0.1 && end[2].abs() < 1e-6 && (end[3] + 1.0).abs() < 1e-6,
            "{end:?}"
        );
    }
}

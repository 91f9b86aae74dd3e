//! DryVR's JSON problem format (plus pf-reach's `dynamics` and `simulator` extensions),
//! parsed into a checked [`Problem`] with precise errors (file, line, column, JSON path).

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::expr::{ExprError, Sym};
use crate::external::ExternalSim;
use crate::interval::Iv;
use crate::model::OdeModel;
use crate::pred::{Pred, Reset};

mod dynamics;

pub use dynamics::builtin_names;
use dynamics::{builtin, parse_dynamics};

/// Largest accepted problem file.
pub const MAX_PROBLEM_BYTES: usize = 64 << 20;

/// Errors reading a problem.
#[derive(Debug, thiserror::Error)]
pub enum ProblemError {
    /// The file could not be read.
    #[error("{file}: {err}")]
    Io {
        /// File.
        file: String,
        /// Cause.
        err: std::io::Error,
    },
    /// The text is not JSON.
    #[error("{file}:{line}:{col}: malformed JSON: {msg}")]
    Json {
        /// File.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// Parser message.
        msg: String,
    },
    /// A field is missing or has the wrong shape.
    #[error("{file}:{line}: at `{path}`: {msg}")]
    Field {
        /// File.
        file: String,
        /// 1-based line of the field (0 if unknown).
        line: usize,
        /// JSON path, e.g. `guards[3]`.
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// An expression, guard, reset or unsafe set does not parse.
    #[error("{file}:{line}:{col}: at `{path}`: {err} in `{src}`")]
    Expr {
        /// File.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column in the file.
        col: usize,
        /// JSON path.
        path: String,
        /// The expression text.
        src: String,
        /// The error.
        err: ExprError,
    },
    /// The model named by `directory` is not available.
    #[error("{file}: at `directory`: {msg}")]
    Model {
        /// File.
        file: String,
        /// Why.
        msg: String,
    },
}

/// How the learned discrepancy is shaped (DryVR's `bloatingMethod`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Bloating {
    /// One exponential `K e^{γt}` per dimension over the whole horizon.
    Global,
    /// Piecewise exponential: one rate per sample interval.
    Piecewise,
}

/// Where traces come from.
#[derive(Clone, Debug)]
pub enum Dynamics {
    /// A compiled ODE model.
    Ode(OdeModel),
    /// A black-box simulator process.
    External(ExternalSim),
}

/// The unsafe set: a predicate per mode name, or one for all modes.
#[derive(Clone, Debug, Default)]
pub struct UnsafeSet {
    /// `@Allmode:` predicate.
    pub all: Option<Pred>,
    /// Per-mode predicates.
    pub by_mode: HashMap<String, Pred>,
}

impl UnsafeSet {
    /// Predicates that apply in `mode`.
    pub fn for_mode<'a>(&'a self, mode: &str) -> impl Iterator<Item = &'a Pred> + 'a {
        self.all.iter().chain(self.by_mode.get(mode))
    }
}

/// A checked reachability problem.
#[derive(Clone, Debug)]
pub struct Problem {
    /// Source name (file path or label).
    pub name: String,
    /// Mode of each vertex.
    pub vertices: Vec<String>,
    /// Transitions `(from, to)` with guard and reset.
    pub edges: Vec<Edge>,
    /// State variable names.
    pub variables: Vec<String>,
    /// Initial box.
    pub initial: Vec<Iv>,
    /// Initial vertices.
    pub initial_vertices: Vec<usize>,
    /// Unsafe set.
    pub unsafe_set: UnsafeSet,
    /// Time horizon.
    pub horizon: f64,
    /// Discrepancy shape.
    pub bloating: Bloating,
    /// Dynamics.
    pub dynamics: Dynamics,
    /// Non-fatal remarks (quirks worked around).
    pub warnings: Vec<String>,
}

/// A mode-graph edge.
#[derive(Clone, Debug)]
pub struct Edge {
    /// Source vertex.
    pub from: usize,
    /// Target vertex.
    pub to: usize,
    /// Guard.
    pub guard: Pred,
    /// Reset.
    pub reset: Reset,
    /// Guard text.
    pub guard_src: String,
}

/// Position (1-based line, column) of the first occurrence of `needle` in `text`.
fn locate(text: &str, needle: &str) -> (usize, usize) {
    match text.find(needle) {
        Some(off) => {
            let before = &text[..off];
            let line = before.matches('\n').count() + 1;
            let col = off - before.rfind('\n').map_or(0, |p| p + 1) + 1;
            (line, col)
        }
        None => (0, 0),
    }
}

pub(crate) struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    pub(crate) fn field(&self, path: &str, msg: impl Into<String>) -> ProblemError {
        let key = path.split(['[', '.']).next().unwrap_or(path);
        let (line, _) = locate(self.text, &format!("\"{key}\""));
        ProblemError::Field {
            file: self.file.into(),
            line,
            path: path.into(),
            msg: msg.into(),
        }
    }
    pub(crate) fn expr(&self, path: &str, src: &str, err: ExprError) -> ProblemError {
        // The expression appears in the file as a JSON string: point at the offending column.
        let (line, col) = locate(self.text, src);
        let col = if line > 0 { col + err.col } else { 0 };
        ProblemError::Expr {
            file: self.file.into(),
            line,
            col,
            path: path.into(),
            src: src.into(),
            err,
        }
    }
}

impl Problem {
    /// Read and check a problem file.
    pub fn load(path: &Path) -> Result<Problem, ProblemError> {
        let file = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|err| ProblemError::Io {
            file: file.clone(),
            err,
        })?;
        if meta.len() as usize > MAX_PROBLEM_BYTES {
            return Err(ProblemError::Field {
                file,
                line: 0,
                path: "".into(),
                msg: "file larger than 64 MiB".into(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|err| ProblemError::Io {
            file: file.clone(),
            err,
        })?;
        Problem::from_json_str(&text, &file, path.parent())
    }

    /// Parse a problem from JSON text; `name` labels errors; `base` resolves relative simulator paths.
    pub fn from_json_str(
        text: &str,
        name: &str,
        base: Option<&Path>,
    ) -> Result<Problem, ProblemError> {
        let cx = Ctx { file: name, text };
        let v: Value = serde_json::from_str(text).map_err(|e| ProblemError::Json {
            file: name.into(),
            line: e.line(),
            col: e.column(),
            msg: e.to_string(),
        })?;
        let Some(obj) = v.as_object() else {
            return Err(cx.field("", "the problem must be a JSON object"));
        };
        let mut warnings = Vec::new();
        let str_list = |key: &str| -> Result<Option<Vec<String>>, ProblemError> {
            match obj.get(key) {
                None => Ok(None),
                Some(Value::Array(a)) => a
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        s.as_str()
                            .map(String::from)
                            .ok_or_else(|| cx.field(&format!("{key}[{i}]"), "expected a string"))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                Some(_) => Err(cx.field(key, "expected an array of strings")),
            }
        };
        let vertices =
            str_list("vertex")?.ok_or_else(|| cx.field("vertex", "missing (the list of modes)"))?;
        if vertices.is_empty() {
            return Err(cx.field("vertex", "at least one mode is needed"));
        }
        let num = |path: &str, x: &Value| -> Result<f64, ProblemError> {
            x.as_f64()
                .filter(|f| f.is_finite())
                .ok_or_else(|| cx.field(path, "expected a finite number"))
        };
        // Initial set: [[lo...], [hi...]].
        let init = obj
            .get("initialSet")
            .ok_or_else(|| cx.field("initialSet", "missing"))?;
        let rows = init
            .as_array()
            .filter(|a| a.len() == 2)
            .ok_or_else(|| cx.field("initialSet", "expected [[lower...], [upper...]]"))?;
        let lo = rows[0]
            .as_array()
            .ok_or_else(|| cx.field("initialSet[0]", "expected an array of numbers"))?;
        let hi = rows[1]
            .as_array()
            .ok_or_else(|| cx.field("initialSet[1]", "expected an array of numbers"))?;
        if lo.len() != hi.len() || lo.is_empty() {
            return Err(cx.field(
                "initialSet",
                format!(
                    "lower and upper corners have {} and {} entries",
                    lo.len(),
                    hi.len()
                ),
            ));
        }
        let mut initial = Vec::with_capacity(lo.len());
        for i in 0..lo.len() {
            let a = num(&format!("initialSet[0][{i}]"), &lo[i])?;
            let b = num(&format!("initialSet[1][{i}]"), &hi[i])?;
            if a > b {
                return Err(cx.field(
                    &format!("initialSet[0][{i}]"),
                    format!("lower bound {a} exceeds upper bound {b}"),
                ));
            }
            initial.push(Iv::new(a, b));
        }
        let directory = match obj.get("directory") {
            Some(Value::String(s)) => Some(s.clone()),
            None => None,
            Some(_) => return Err(cx.field("directory", "expected a string")),
        };
        let model_key = directory.as_deref().map(|d| {
            d.trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(d)
                .to_string()
        });
        let variables = match str_list("variables")? {
            Some(v) => v,
            None => {
                // DryVR's input_autopassingUnsafe.json omits `variables`: fall back to the car names.
                if matches!(model_key.as_deref(), Some("cars")) && initial.len() % 4 == 0 {
                    warnings.push(
                        "`variables` is missing; using the `cars` model's car<k>_x/y/vx/vy names"
                            .into(),
                    );
                    (1..=initial.len() / 4)
                        .flat_map(|k| ["x", "y", "vx", "vy"].map(|s| format!("car{k}_{s}")))
                        .collect()
                } else {
                    return Err(cx.field("variables", "missing (the list of state variable names)"));
                }
            }
        };
        if variables.len() != initial.len() {
            return Err(cx.field(
                "initialSet",
                format!(
                    "has {} dimensions but `variables` lists {}",
                    initial.len(),
                    variables.len()
                ),
            ));
        }
        let resolve = |s: &str| -> Option<Sym> {
            if let Some(i) = variables.iter().position(|v| v == s) {
                return Some(Sym::Var(i));
            }
            (s == "t").then_some(Sym::Time)
        };
        // Edges, guards, resets.
        let edge_v = obj
            .get("edge")
            .and_then(Value::as_array)
            .ok_or_else(|| cx.field("edge", "missing or not an array"))?;
        let guards = str_list("guards")?.unwrap_or_default();
        let resets_key = if obj.contains_key("resets") {
            "resets"
        } else {
            "reset"
        };
        if resets_key == "reset" && obj.contains_key("reset") {
            warnings.push("`reset` read as `resets`".into());
        }
        let resets = str_list(resets_key)?.unwrap_or_default();
        if guards.len() != edge_v.len() {
            return Err(cx.field(
                "guards",
                format!("{} guards for {} edges", guards.len(), edge_v.len()),
            ));
        }
        if !resets.is_empty() && resets.len() != edge_v.len() {
            return Err(cx.field(
                resets_key,
                format!("{} resets for {} edges", resets.len(), edge_v.len()),
            ));
        }
        let mut edges = Vec::new();
        for (i, e) in edge_v.iter().enumerate() {
            let pair = e
                .as_array()
                .filter(|a| a.len() == 2)
                .ok_or_else(|| cx.field(&format!("edge[{i}]"), "expected [from, to]"))?;
            let idx = |x: &Value| {
                x.as_u64()
                    .map(|u| u as usize)
                    .filter(|&u| u < vertices.len())
            };
            let (Some(from), Some(to)) = (idx(&pair[0]), idx(&pair[1])) else {
                return Err(cx.field(
                    &format!("edge[{i}]"),
                    format!("vertex index out of range 0..{}", vertices.len()),
                ));
            };
            let gsrc = &guards[i];
            let guard = Pred::parse(gsrc, &resolve)
                .map_err(|e| cx.expr(&format!("guards[{i}]"), gsrc, e))?;
            let rsrc = resets.get(i).map(String::as_str).unwrap_or("");
            let reset = Reset::parse(rsrc, &resolve)
                .map_err(|e| cx.expr(&format!("{resets_key}[{i}]"), rsrc, e))?;
            edges.push(Edge {
                from,
                to,
                guard,
                reset,
                guard_src: gsrc.clone(),
            });
        }
        // Unsafe set: "@Mode:pred@Mode2:pred".
        let usrc = obj
            .get("unsafeSet")
            .and_then(Value::as_str)
            .ok_or_else(|| cx.field("unsafeSet", "missing or not a string"))?;
        let mut unsafe_set = UnsafeSet::default();
        let parts: Vec<&str> = usrc.split('@').collect();
        if !parts[0].trim().is_empty() {
            return Err(cx.field("unsafeSet", "expected `@Mode:predicate` sections"));
        }
        for part in &parts[1..] {
            let Some((mode, p)) = part.split_once(':') else {
                return Err(cx.field("unsafeSet", format!("section `@{part}` lacks `:`")));
            };
            let pred = Pred::parse(p, &resolve).map_err(|e| cx.expr("unsafeSet", p, e))?;
            if mode == "Allmode" {
                unsafe_set.all = Some(pred);
            } else if vertices.iter().any(|v| v == mode) {
                unsafe_set.by_mode.insert(mode.to_string(), pred);
            } else {
                let hint = if mode.to_lowercase().starts_with("all") {
                    " (did you mean `Allmode`?)"
                } else {
                    ""
                };
                return Err(cx.field("unsafeSet", format!("unknown mode `{mode}`{hint}")));
            }
        }
        let horizon = num(
            "timeHorizon",
            obj.get("timeHorizon")
                .ok_or_else(|| cx.field("timeHorizon", "missing"))?,
        )?;
        if !(horizon > 0.0 && horizon <= 1e7) {
            return Err(cx.field("timeHorizon", "must be in (0, 1e7]"));
        }
        let initial_vertices = match obj.get("initialVertex") {
            Some(x) => vec![
                x.as_u64()
                    .map(|u| u as usize)
                    .filter(|&u| u < vertices.len())
                    .ok_or_else(|| cx.field("initialVertex", "not a vertex index"))?,
            ],
            None => {
                let roots: Vec<usize> = (0..vertices.len())
                    .filter(|&v| !edges.iter().any(|e| e.to == v))
                    .collect();
                if roots.is_empty() { vec![0] } else { roots }
            }
        };
        let bloating = match obj.get("bloatingMethod").and_then(Value::as_str) {
            Some("PW") => Bloating::Piecewise,
            Some("GLOBAL") | None => Bloating::Global,
            Some(o) => {
                return Err(cx.field("bloatingMethod", format!("`{o}`: expected GLOBAL or PW")));
            }
        };
        let dynamics = if let Some(d) = obj.get("dynamics") {
            Dynamics::Ode(parse_dynamics(&cx, d, &variables, &vertices)?)
        } else if let Some(s) = obj.get("simulator") {
            Dynamics::External(
                ExternalSim::from_json(s, base, variables.len())
                    .map_err(|m| cx.field("simulator", m))?,
            )
        } else {
            let key = model_key.ok_or_else(|| {
                cx.field(
                    "directory",
                    "missing: name a built-in model, or give `dynamics` or `simulator`",
                )
            })?;
            builtin(&key, &variables, &vertices).map_err(|msg| ProblemError::Model {
                file: name.into(),
                msg,
            })?
        };
        if let Dynamics::Ode(m) = &dynamics {
            for v in &vertices {
                if m.mode(v).is_none() {
                    return Err(cx.field("vertex", format!("model `{}` has no mode `{v}`", m.name)));
                }
            }
        }
        Ok(Problem {
            name: name.into(),
            vertices,
            edges,
            variables,
            initial,
            initial_vertices,
            unsafe_set,
            horizon,
            bloating,
            dynamics,
            warnings,
        })
    }
}

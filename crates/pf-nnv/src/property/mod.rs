//! Properties: the unsafe region a verifier searches, as a union of cases, each an input box
//! with a conjunction of linear output constraints. `sat` means some input reaches the region.

pub mod marabou;
pub mod vnnlib;

use std::collections::BTreeMap;

use crate::error::PropertyError;

/// Most disjuncts a property may expand to (disjunctive normal form).
pub const MAX_CASES: usize = 4096;

/// A linear form over inputs `x` and outputs `y` plus a constant, as written in the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinearForm {
    /// Coefficients of inputs, by index.
    pub x: BTreeMap<usize, f64>,
    /// Coefficients of outputs, by index.
    pub y: BTreeMap<usize, f64>,
    /// Constant term.
    pub constant: f64,
}

impl LinearForm {
    fn scaled(mut self, k: f64) -> Self {
        self.x.values_mut().for_each(|v| *v *= k);
        self.y.values_mut().for_each(|v| *v *= k);
        self.constant *= k;
        self
    }

    fn plus(mut self, other: &LinearForm) -> Self {
        for (i, v) in &other.x {
            *self.x.entry(*i).or_insert(0.0) += v;
        }
        for (i, v) in &other.y {
            *self.y.entry(*i).or_insert(0.0) += v;
        }
        self.constant += other.constant;
        self
    }

    fn is_constant(&self) -> bool {
        self.x.values().all(|v| *v == 0.0) && self.y.values().all(|v| *v == 0.0)
    }

    /// Value at a point, in f64.
    pub fn eval(&self, x: &[f64], y: &[f64]) -> f64 {
        let mut s = self.constant;
        for (i, v) in &self.x {
            s += v * x.get(*i).copied().unwrap_or(f64::NAN);
        }
        for (i, v) in &self.y {
            s += v * y.get(*i).copied().unwrap_or(f64::NAN);
        }
        s
    }
}

/// An atomic constraint `form <= 0` (or `< 0` when strict), with its source position.
#[derive(Debug, Clone, PartialEq)]
pub struct Atom {
    /// The left-hand side of `form <= 0`.
    pub form: LinearForm,
    /// Strict inequality.
    pub strict: bool,
    /// 1-based line of the atom.
    pub line: usize,
    /// 1-based column of the atom.
    pub column: usize,
}

impl Atom {
    /// Whether the atom holds at a point (f64 evaluation; NaN never holds).
    pub fn holds(&self, x: &[f64], y: &[f64]) -> bool {
        let v = self.form.eval(x, y);
        if self.strict { v < 0.0 } else { v <= 0.0 }
    }
}

/// A formula over atoms.
#[derive(Debug, Clone, PartialEq)]
pub enum Formula {
    /// An atom.
    Atom(Atom),
    /// Conjunction.
    And(Vec<Formula>),
    /// Disjunction.
    Or(Vec<Formula>),
}

/// An output constraint `coef . y <= rhs` (strict: `<`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutputConstraint {
    /// One coefficient per output.
    pub coef: Vec<f64>,
    /// Right-hand side.
    pub rhs: f64,
    /// Strict inequality.
    pub strict: bool,
}

/// One disjunct of the unsafe region: an input box and a conjunction of output constraints.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Lower input bounds.
    pub lower: Vec<f64>,
    /// Upper input bounds.
    pub upper: Vec<f64>,
    /// Output constraints, all of which must hold.
    pub outputs: Vec<OutputConstraint>,
    /// The atoms as written, used to re-check counterexamples exactly as stated.
    pub atoms: Vec<Atom>,
}

impl Case {
    /// Whether `(x, y)` lies in this case of the unsafe region, as written in the file.
    pub fn contains(&self, x: &[f64], y: &[f64]) -> bool {
        self.atoms.iter().all(|a| a.holds(x, y))
    }
}

/// A property: the unsafe region is the union of the cases.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    /// Number of inputs named.
    pub input_dim: usize,
    /// Number of outputs named.
    pub output_dim: usize,
    /// The disjuncts.
    pub cases: Vec<Case>,
}

impl Property {
    /// Whether `(x, y)` lies in the unsafe region.
    pub fn violated_by(&self, x: &[f64], y: &[f64]) -> bool {
        self.cases.iter().any(|c| c.contains(x, y))
    }

    /// Build from a formula (already conjoined over all assertions).
    pub fn from_formula(
        formula: &Formula,
        input_dim: usize,
        output_dim: usize,
    ) -> Result<Self, PropertyError> {
        let mut cases = Vec::new();
        for conj in dnf(formula)? {
            if let Some(c) = build_case(conj, input_dim, output_dim)? {
                cases.push(c);
            }
        }
        Ok(Self {
            input_dim,
            output_dim,
            cases,
        })
    }
}

fn dnf(f: &Formula) -> Result<Vec<Vec<Atom>>, PropertyError> {
    match f {
        Formula::Atom(a) => Ok(vec![vec![a.clone()]]),
        Formula::Or(items) => {
            let mut out = Vec::new();
            for i in items {
                out.extend(dnf(i)?);
                if out.len() > MAX_CASES {
                    return Err(PropertyError::Invalid(format!(
                        "property expands to more than {MAX_CASES} cases"
                    )));
                }
            }
            Ok(out)
        }
        Formula::And(items) => {
            let mut acc: Vec<Vec<Atom>> = vec![Vec::new()];
            for i in items {
                let part = dnf(i)?;
                if acc.len().saturating_mul(part.len()) > MAX_CASES {
                    return Err(PropertyError::Invalid(format!(
                        "property expands to more than {MAX_CASES} cases"
                    )));
                }
                acc = acc
                    .iter()
                    .flat_map(|a| {
                        part.iter()
                            .map(move |p| a.iter().chain(p).cloned().collect())
                    })
                    .collect();
            }
            Ok(acc)
        }
    }
}

fn semantic(a: &Atom, message: String) -> PropertyError {
    PropertyError::Semantic {
        line: a.line,
        column: a.column,
        message,
    }
}

/// Turn a conjunction of atoms into a case; `None` when a constant atom makes it empty.
fn build_case(atoms: Vec<Atom>, n_in: usize, n_out: usize) -> Result<Option<Case>, PropertyError> {
    let mut lower = vec![f64::NEG_INFINITY; n_in];
    let mut upper = vec![f64::INFINITY; n_in];
    let mut outputs = Vec::new();
    for a in &atoms {
        let xs: Vec<(usize, f64)> = a
            .form
            .x
            .iter()
            .filter(|(_, v)| **v != 0.0)
            .map(|(i, v)| (*i, *v))
            .collect();
        let has_y = a.form.y.values().any(|v| *v != 0.0);
        if a.form.is_constant() {
            let holds = if a.strict {
                a.form.constant < 0.0
            } else {
                a.form.constant <= 0.0
            };
            if !holds {
                return Ok(None);
            }
            continue;
        }
        if !xs.is_empty() && has_y {
            return Err(semantic(
                a,
                "constraints mixing inputs and outputs are not supported".into(),
            ));
        }
        if xs.len() > 1 {
            return Err(semantic(
                a,
                "input constraints must bound a single variable (X_i <= c or X_i >= c)".into(),
            ));
        }
        if let Some(&(i, k)) = xs.first() {
            // k*x + c <= 0: bound -c/k, rounded outward so the box never shrinks.
            let b = -a.form.constant / k;
            if k > 0.0 {
                let b = if b * k == -a.form.constant {
                    b
                } else {
                    b.next_up()
                };
                upper[i] = upper[i].min(b);
            } else {
                let b = if b * k == -a.form.constant {
                    b
                } else {
                    b.next_down()
                };
                lower[i] = lower[i].max(b);
            }
        } else {
            let mut coef = vec![0.0; n_out];
            for (j, v) in &a.form.y {
                coef[*j] = *v;
            }
            outputs.push(OutputConstraint {
                coef,
                rhs: -a.form.constant,
                strict: a.strict,
            });
        }
    }
    for i in 0..n_in {
        if !lower[i].is_finite() || !upper[i].is_finite() {
            let first = atoms.first();
            let msg = format!("input X_{i} is not bounded on both sides in this case");
            return Err(match first {
                Some(a) => semantic(a, msg),
                None => PropertyError::Invalid(msg),
            });
        }
        if lower[i] > upper[i] {
            return Err(PropertyError::Invalid(format!(
                "empty input box: X_{i} has lower bound {} above upper bound {}",
                lower[i], upper[i]
            )));
        }
    }
    Ok(Some(Case {
        lower,
        upper,
        outputs,
        atoms,
    }))
}

/// Read a property file: `.vnnlib` as VNN-LIB, anything else as Marabou property text.
pub fn load_property(path: &std::path::Path) -> Result<Property, PropertyError> {
    let meta = std::fs::metadata(path).map_err(|source| PropertyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.len() > vnnlib::MAX_PROPERTY_BYTES as u64 {
        return Err(PropertyError::Invalid(format!(
            "property file is over {} bytes",
            vnnlib::MAX_PROPERTY_BYTES
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|source| PropertyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("vnnlib"))
    {
        vnnlib::parse_vnnlib(&text)
    } else {
        marabou::parse_marabou(&text)
    }
}

//! Axiom report: which axioms a constant depends on (transitively, through types, values and
//! recursor rules), and the verification engine's axiom policy gate.

use rustc_hash::FxHashSet;

use crate::check::Checked;
use crate::env::{ConstKind, Constant};
use crate::store::{ExprId, ExprNode, NameId};

/// Axioms admitted by default: the standard classical axioms of Lean's library.
pub const DEFAULT_ALLOWED: &[&str] = &["propext", "Quot.sound", "Classical.choice"];

/// Axioms never admitted, whatever the policy says (they prove anything).
pub const FORBIDDEN: &[&str] = &["sorryAx"];

/// Failure of the axiom gate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AxiomError {
    /// The constant is not in the checked environment.
    #[error("unknown constant `{0}`")]
    Unknown(String),
    /// The constant depends on axioms outside the policy.
    #[error("`{name}` depends on disallowed axioms: {}", disallowed.join(", "))]
    Disallowed {
        /// The constant checked.
        name: String,
        /// The offending axioms.
        disallowed: Vec<String>,
    },
}

fn exprs(c: &Constant) -> Vec<ExprId> {
    let mut v = vec![c.ty];
    match &c.kind {
        ConstKind::Def { value, .. } | ConstKind::Thm { value } | ConstKind::Opaque { value } => {
            v.push(*value)
        }
        ConstKind::Rec { rules, .. } => v.extend(rules.iter().map(|r| r.rhs)),
        _ => {}
    }
    v
}

/// The axioms `name` depends on, sorted by name.
pub fn axioms_of(c: &Checked, name: &str) -> Result<Vec<String>, AxiomError> {
    let mut store_name = None;
    for &n in c.env.names() {
        if c.store.name_to_string(n) == name {
            store_name = Some(n);
            break;
        }
    }
    let root = store_name.ok_or_else(|| AxiomError::Unknown(name.to_string()))?;
    let mut seen_c: FxHashSet<NameId> = FxHashSet::default();
    let mut seen_e: FxHashSet<ExprId> = FxHashSet::default();
    let mut todo = vec![root];
    let mut out = Vec::new();
    while let Some(n) = todo.pop() {
        if !seen_c.insert(n) {
            continue;
        }
        let Some(k) = c.env.get(n) else { continue };
        if matches!(k.kind, ConstKind::Axiom) {
            out.push(c.store.name_to_string(n));
        }
        let mut stack = exprs(k);
        while let Some(e) = stack.pop() {
            if !seen_e.insert(e) {
                continue;
            }
            match c.store.node(e) {
                ExprNode::Const(m, _) => todo.push(m),
                ExprNode::App(a, b) | ExprNode::Lam(a, b) | ExprNode::Pi(a, b) => {
                    stack.extend([a, b])
                }
                ExprNode::Let(a, b, d) => stack.extend([a, b, d]),
                ExprNode::Proj(m, _, x) => {
                    todo.push(m);
                    stack.push(x);
                }
                _ => {}
            }
        }
        // Inductive types depend on their constructors' types (and vice versa).
        match &k.kind {
            ConstKind::Induct { ctors, .. } => todo.extend(ctors.iter().copied()),
            ConstKind::Ctor { induct, .. } => todo.push(*induct),
            _ => {}
        }
    }
    out.sort();
    Ok(out)
}

/// Checks `name`'s axioms against `allowed` (`sorryAx` is always refused).
pub fn check_axioms(c: &Checked, name: &str, allowed: &[&str]) -> Result<Vec<String>, AxiomError> {
    let axioms = axioms_of(c, name)?;
    let disallowed: Vec<String> = axioms
        .iter()
        .filter(|a| FORBIDDEN.contains(&a.as_str()) || !allowed.contains(&a.as_str()))
        .cloned()
        .collect();
    if disallowed.is_empty() {
        Ok(axioms)
    } else {
        Err(AxiomError::Disallowed {
            name: name.to_string(),
            disallowed,
        })
    }
}

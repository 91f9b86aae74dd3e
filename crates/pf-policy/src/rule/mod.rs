//! The custom rule language: one boolean expression over the call, prefixed by what it means.
//!
//! ```text
//! rule    := ("deny" "when" | "require") expr
//! expr    := and ("||" and)*
//! and     := unary ("&&" unary)*
//! unary   := "!" unary | compare
//! compare := term (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in") term)?
//! term    := NUMBER | STRING | true | false | null | "[" terms "]" | "(" expr ")"
//!          | path | IDENT "(" exprs ")"
//! path    := ("tool" | "args" | "context" | "tokens" | "cost_usd") ("." IDENT | "[" (NUMBER | STRING) "]")*
//! ```
//!
//! Functions: `calls()` (allowed calls this session), `calls("tool")`, `len(x)`,
//! `has_label("label")` (some argument string carries the label), `matches(x, "regex")`,
//! `starts_with(x, "s")`, `ends_with(x, "s")`. See docs/policy.md for the semantics.

mod eval;
pub(crate) mod parse;

use std::fmt;

use regex::Regex;
use serde_json::Value;

use crate::labels::LabelMask;
use crate::program::ToolId;

pub(crate) use eval::{Env, Outcome, evaluate};
pub(crate) use parse::parse;

/// Longest rule text accepted.
pub const MAX_RULE_LEN: usize = 4096;
/// Deepest expression nesting accepted.
pub const MAX_RULE_DEPTH: usize = 48;

/// What a rule does with its expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Deny the call when the expression is true.
    DenyWhen,
    /// Deny the call unless the expression is true.
    Require,
}

/// A parsed, resolved rule.
#[derive(Debug)]
pub(crate) struct Rule {
    pub mode: Mode,
    pub expr: Expr,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
}

/// Roots of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Root {
    Tool,
    Args,
    Context,
    Tokens,
    CostUsd,
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

/// Expressions, with names resolved at compile time.
#[derive(Debug)]
pub(crate) enum Expr {
    Lit(Value),
    List(Vec<Expr>),
    Path(Root, Vec<Step>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// `calls()` (None) or `calls("tool")`.
    Calls(Option<(String, ToolId)>),
    Len(Box<Expr>),
    HasLabel(String, LabelMask),
    Matches(Box<Expr>, String, Regex),
    StartsWith(Box<Expr>, String),
    EndsWith(Box<Expr>, String),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            Mode::DenyWhen => write!(f, "deny when {}", self.expr),
            Mode::Require => write!(f, "require {}", self.expr),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |s: &str| serde_json::to_string(s).unwrap_or_default();
        match self {
            Expr::Lit(v) => write!(f, "{v}"),
            Expr::List(items) => {
                write!(f, "[")?;
                for (i, e) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{e}")?;
                }
                write!(f, "]")
            }
            Expr::Path(root, steps) => {
                let r = match root {
                    Root::Tool => "tool",
                    Root::Args => "args",
                    Root::Context => "context",
                    Root::Tokens => "tokens",
                    Root::CostUsd => "cost_usd",
                };
                write!(f, "{r}")?;
                for step in steps {
                    match step {
                        Step::Key(k) if is_ident(k) => write!(f, ".{k}")?,
                        Step::Key(k) => write!(f, "[{}]", s(k))?,
                        Step::Index(i) => write!(f, "[{i}]")?,
                    }
                }
                Ok(())
            }
            Expr::Not(e) => write!(f, "!({e})"),
            Expr::And(a, b) => write!(f, "({a} && {b})"),
            Expr::Or(a, b) => write!(f, "({a} || {b})"),
            Expr::Cmp(op, a, b) => {
                let o = match op {
                    CmpOp::Eq => "==",
                    CmpOp::Ne => "!=",
                    CmpOp::Lt => "<",
                    CmpOp::Le => "<=",
                    CmpOp::Gt => ">",
                    CmpOp::Ge => ">=",
                    CmpOp::In => "in",
                };
                write!(f, "{a} {o} {b}")
            }
            Expr::Calls(None) => write!(f, "calls()"),
            Expr::Calls(Some((t, _))) => write!(f, "calls({})", s(t)),
            Expr::Len(e) => write!(f, "len({e})"),
            Expr::HasLabel(l, _) => write!(f, "has_label({})", s(l)),
            Expr::Matches(e, p, _) => write!(f, "matches({e}, {})", s(p)),
            Expr::StartsWith(e, p) => write!(f, "starts_with({e}, {})", s(p)),
            Expr::EndsWith(e, p) => write!(f, "ends_with({e}, {})", s(p)),
        }
    }
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

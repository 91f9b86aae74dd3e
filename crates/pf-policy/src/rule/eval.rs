//! Evaluation of rules. Total: every type error is an `Outcome::Error`, which callers deny.

use std::borrow::Cow;

use serde_json::Value;

use super::{CmpOp, Expr, Mode, Root, Rule, Step};
use crate::labels::LabelMask;

/// What a rule evaluation needs from the call and the session.
pub(crate) struct Env<'a> {
    pub tool: &'a str,
    pub args: &'a Value,
    pub context: &'a Value,
    pub tokens: u64,
    pub cost_usd: f64,
    /// Allowed calls so far per tool id.
    pub calls: &'a dyn Fn(Option<usize>) -> u64,
    /// Labels carried by the argument strings (ignoring `unless` clearing).
    pub arg_labels: &'a dyn Fn() -> LabelMask,
}

/// Result of one rule on one call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// The rule lets the call through.
    Pass,
    /// The rule denies the call.
    Deny,
    /// The expression could not be evaluated (type error); callers deny.
    Error(String),
}

#[derive(Debug, Clone)]
enum V<'a> {
    Null,
    Bool(bool),
    Num(f64),
    Str(Cow<'a, str>),
    List(Vec<V<'a>>),
    /// A JSON array or object from the arguments or context.
    Json(&'a Value),
}

fn from_json(v: &Value) -> V<'_> {
    match v {
        Value::Null => V::Null,
        Value::Bool(b) => V::Bool(*b),
        Value::Number(n) => n.as_f64().map_or(V::Null, V::Num),
        Value::String(s) => V::Str(Cow::Borrowed(s)),
        other => V::Json(other),
    }
}

fn type_name(v: &V<'_>) -> &'static str {
    match v {
        V::Null => "null",
        V::Bool(_) => "bool",
        V::Num(_) => "number",
        V::Str(_) => "string",
        V::List(_) => "list",
        V::Json(Value::Array(_)) => "array",
        V::Json(_) => "object",
    }
}

/// Applies a rule to a call.
pub(crate) fn evaluate(rule: &Rule, env: &Env<'_>) -> Outcome {
    match eval(&rule.expr, env) {
        Ok(V::Bool(b)) => match (rule.mode, b) {
            (Mode::DenyWhen, true) | (Mode::Require, false) => Outcome::Deny,
            _ => Outcome::Pass,
        },
        Ok(v) => Outcome::Error(format!("rule yields a {}, not a bool", type_name(&v))),
        Err(e) => Outcome::Error(e),
    }
}

fn eval<'a>(e: &'a Expr, env: &Env<'a>) -> Result<V<'a>, String> {
    Ok(match e {
        Expr::Lit(v) => from_json(v),
        Expr::List(items) => V::List(
            items
                .iter()
                .map(|i| eval(i, env))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Path(root, steps) => {
            let base: &Value = match root {
                Root::Tool => return Ok(V::Str(Cow::Borrowed(env.tool))),
                Root::Tokens => return Ok(V::Num(env.tokens as f64)),
                Root::CostUsd => return Ok(V::Num(env.cost_usd)),
                Root::Args => env.args,
                Root::Context => env.context,
            };
            let mut cur = Some(base);
            for step in steps {
                cur = match (cur, step) {
                    (Some(Value::Object(m)), Step::Key(k)) => m.get(k),
                    (Some(Value::Array(a)), Step::Index(i)) => a.get(*i),
                    _ => None,
                };
            }
            cur.map_or(V::Null, from_json)
        }
        Expr::Not(x) => V::Bool(!truth(eval(x, env)?)?),
        Expr::And(a, b) => V::Bool(truth(eval(a, env)?)? && truth(eval(b, env)?)?),
        Expr::Or(a, b) => V::Bool(truth(eval(a, env)?)? || truth(eval(b, env)?)?),
        Expr::Cmp(op, a, b) => V::Bool(compare(*op, &eval(a, env)?, &eval(b, env)?)?),
        Expr::Calls(t) => V::Num((env.calls)(t.as_ref().map(|(_, id)| *id)) as f64),
        Expr::Len(x) => V::Num(match eval(x, env)? {
            V::Str(s) => s.chars().count(),
            V::List(l) => l.len(),
            V::Json(Value::Array(a)) => a.len(),
            V::Json(Value::Object(o)) => o.len(),
            v => return Err(format!("len() of a {}", type_name(&v))),
        } as f64),
        Expr::HasLabel(_, mask) => V::Bool((env.arg_labels)() & mask != 0),
        Expr::Matches(x, _, re) => V::Bool(re.is_match(&string(eval(x, env)?, "matches")?)),
        Expr::StartsWith(x, p) => {
            V::Bool(string(eval(x, env)?, "starts_with")?.starts_with(p.as_str()))
        }
        Expr::EndsWith(x, p) => V::Bool(string(eval(x, env)?, "ends_with")?.ends_with(p.as_str())),
    })
}

fn truth(v: V<'_>) -> Result<bool, String> {
    match v {
        V::Bool(b) => Ok(b),
        v => Err(format!("expected a bool, found a {}", type_name(&v))),
    }
}

fn string<'a>(v: V<'a>, f: &str) -> Result<Cow<'a, str>, String> {
    match v {
        V::Str(s) => Ok(s),
        v => Err(format!("{f}() of a {}", type_name(&v))),
    }
}

fn equal(a: &V<'_>, b: &V<'_>) -> bool {
    match (a, b) {
        (V::Null, V::Null) => true,
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Num(x), V::Num(y)) => x == y,
        (V::Str(x), V::Str(y)) => x == y,
        (V::List(x), V::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q)),
        (V::Json(x), V::Json(y)) => x == y,
        (V::List(x), V::Json(Value::Array(y))) | (V::Json(Value::Array(y)), V::List(x)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, &from_json(q)))
        }
        _ => false,
    }
}

fn compare(op: CmpOp, a: &V<'_>, b: &V<'_>) -> Result<bool, String> {
    use std::cmp::Ordering;
    let order = |a: &V<'_>, b: &V<'_>| -> Result<Ordering, String> {
        match (a, b) {
            (V::Num(x), V::Num(y)) => x.partial_cmp(y).ok_or_else(|| "NaN comparison".to_string()),
            (V::Str(x), V::Str(y)) => Ok(x.cmp(y)),
            _ => Err(format!(
                "cannot order a {} and a {}",
                type_name(a),
                type_name(b)
            )),
        }
    };
    Ok(match op {
        CmpOp::Eq => equal(a, b),
        CmpOp::Ne => !equal(a, b),
        CmpOp::Lt => order(a, b)? == Ordering::Less,
        CmpOp::Le => order(a, b)? != Ordering::Greater,
        CmpOp::Gt => order(a, b)? == Ordering::Greater,
        CmpOp::Ge => order(a, b)? != Ordering::Less,
        CmpOp::In => match (a, b) {
            (x, V::List(items)) => items.iter().any(|i| equal(x, i)),
            (x, V::Json(Value::Array(items))) => items.iter().any(|i| equal(x, &from_json(i))),
            (V::Str(k), V::Json(Value::Object(m))) => m.contains_key(k.as_ref()),
            (V::Str(needle), V::Str(hay)) => hay.contains(needle.as_ref()),
            _ => return Err(format!("`in` on a {} and a {}", type_name(a), type_name(b))),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse::{Names, parse};
    use super::*;
    use serde_json::json;

    fn run(text: &str, tool: &str, args: Value, calls: u64) -> Outcome {
        let t = |t: &str| (t == "issue_refund").then_some(0);
        let l = |l: &str| (l == "untrusted").then_some(1);
        let rule = parse(
            text,
            &Names {
                tool: &t,
                label: &l,
            },
        )
        .expect("rule parses");
        let calls_fn = move |_: Option<usize>| calls;
        let labels = || 0;
        let ctx = json!({"user": {"role": "agent"}});
        let env = Env {
            tool,
            args: &args,
            context: &ctx,
            tokens: 0,
            cost_usd: 0.0,
            calls: &calls_fn,
            arg_labels: &labels,
        };
        evaluate(&rule, &env)
    }

    #[test]
    fn deny_when_denies_only_matching_calls() {
        let r = r#"deny when tool == "issue_refund" && args.amount > 50"#;
        assert_eq!(
            run(r, "issue_refund", json!({"amount": 80}), 0),
            Outcome::Deny
        );
        assert_eq!(
            run(r, "issue_refund", json!({"amount": 20}), 0),
            Outcome::Pass
        );
        assert_eq!(
            run(r, "send_email", json!({}), 0),
            Outcome::Pass,
            "short-circuit"
        );
    }

    #[test]
    fn require_denies_when_false_and_counts_calls() {
        let r = r#"require calls("issue_refund") < 3 && context.user.role in ["agent", "admin"]"#;
        assert_eq!(run(r, "issue_refund", json!({}), 2), Outcome::Pass);
        assert_eq!(run(r, "issue_refund", json!({}), 3), Outcome::Deny);
    }

    #[test]
    fn type_errors_are_errors_not_passes() {
        let r = r#"deny when args.amount > 50"#;
        assert!(matches!(
            run(r, "x", json!({"amount": "lots"}), 0),
            Outcome::Error(_)
        ));
        assert!(matches!(run(r, "x", json!({}), 0), Outcome::Error(_)));
        let r = r#"require matches(args.cmd, "^cargo ")"#;
        assert!(matches!(
            run(r, "x", json!({"cmd": 1}), 0),
            Outcome::Error(_)
        ));
        assert_eq!(run(r, "x", json!({"cmd": "cargo test"}), 0), Outcome::Pass);
        assert_eq!(
            run(
                "require len(args.to) <= 2",
                "x",
                json!({"to": ["a", "b", "c"]}),
                0
            ),
            Outcome::Deny
        );
    }
}

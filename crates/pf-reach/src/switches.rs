//! Time switches of a right-hand side: the local times at which a time-only argument of
//! `step`, `abs`, `min` or `max` changes sign (DryVR's vehicle models steer with
//! `step(t-5)*step(7-t)` and accelerate with `min(t, 5)`). The integrator lands on them instead
//! of stepping across a jump, which error control can miss when a step straddles a short pulse.

use crate::expr::{Expr, Func, Node};

/// Positive switch times of `rhs`, sorted and deduplicated. Only arguments that are affine in
/// `t` and free of the state are recognised; other kinks are left to error control.
pub fn time_switches(rhs: &[Expr]) -> Vec<f64> {
    let mut out = Vec::new();
    for e in rhs {
        walk(&e.node, &mut out);
    }
    out.retain(|t| t.is_finite() && *t > 0.0);
    out.sort_by(f64::total_cmp);
    out.dedup_by(|a, b| (*a - *b).abs() <= 1e-12 * a.abs().max(1.0));
    out
}

fn walk(n: &Node, out: &mut Vec<f64>) {
    match n {
        Node::Const(_) | Node::Var(_) | Node::Time => {}
        Node::Neg(a) => walk(a, out),
        Node::Add(a, b) | Node::Sub(a, b) | Node::Mul(a, b) | Node::Div(a, b) | Node::Pow(a, b) => {
            walk(a, out);
            walk(b, out);
        }
        Node::Call(f, args) => {
            for a in args {
                walk(a, out);
            }
            let g = match (f, args.as_slice()) {
                (Func::Step | Func::Abs, [a]) => a.clone(),
                (Func::Min | Func::Max, [a, b]) => {
                    Node::Sub(Box::new(a.clone()), Box::new(b.clone()))
                }
                _ => return,
            };
            if let Some(r) = affine_root(Expr::from_node(g)) {
                out.push(r);
            }
        }
    }
}

/// The root of `g(t) = a + b t` when `g` reads time but not the state and is affine.
fn affine_root(g: Expr) -> Option<f64> {
    if !g.uses_time() || g.uses_state() {
        return None;
    }
    let v: Vec<f64> = (0..4).map(|k| g.eval(&[], k as f64)).collect();
    let (a, b) = (v[0], v[1] - v[0]);
    let tol = 1e-9 * (1.0 + a.abs() + b.abs());
    let affine = (2..4).all(|k| (v[k] - (a + b * k as f64)).abs() <= tol);
    (affine && b != 0.0 && a.is_finite() && b.is_finite()).then(|| -a / b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::Sym;

    fn parse(s: &str) -> Expr {
        let r = |n: &str| match n {
            "t" => Some(Sym::Time),
            "x" => Some(Sym::Var(0)),
            _ => None,
        };
        Expr::parse(s, &r).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn finds_steering_and_acceleration_switches() {
        let rhs = [
            parse("x*(step(t-5)*step(7-t) - step(t)*step(2-t))"),
            parse("1 + 0.2*min(t, 5) + step(x - 3) + step(sin(t))"),
        ];
        // t = 0 is not a switch inside the integration interval; step(x-3) reads the state
        // and step(sin t) is not affine: both are left to error control.
        assert_eq!(time_switches(&rhs), vec![2.0, 5.0, 7.0]);
    }
}

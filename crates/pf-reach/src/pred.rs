//! Predicates over the state (guards, unsafe sets) and resets, in DryVR's syntax:
//! `And(p, q, ...)`, `Or(...)`, `Not(p)` and comparisons `e < e`, `<=`, `>`, `>=`, `==`, `!=`.
//! Resets are `var = expr; var = [lo_expr, hi_expr]` (the interval form picks any value).

use crate::expr::{Expr, ExprError, Node, Parser, Sym, Tok, describe};
use crate::interval::Iv;

/// Three-valued truth for predicates over boxes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tri {
    /// Holds everywhere in the box.
    True,
    /// Holds nowhere in the box.
    False,
    /// May hold somewhere.
    Maybe,
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

/// A predicate.
#[derive(Clone, Debug)]
pub enum Pred {
    /// Conjunction.
    And(Vec<Pred>),
    /// Disjunction.
    Or(Vec<Pred>),
    /// Negation.
    Not(Box<Pred>),
    /// `lhs - rhs  op  0`.
    Cmp(Expr, Cmp),
}

impl Pred {
    /// Parse a predicate.
    pub fn parse(src: &str, resolve: &dyn Fn(&str) -> Option<Sym>) -> Result<Pred, ExprError> {
        let mut p = Parser::new(src, resolve)?;
        let r = pred(&mut p, 0)?;
        if !matches!(p.peek(), Tok::End) {
            return Err(ExprError {
                msg: format!("unexpected {} after predicate", describe(p.peek())),
                col: p.col(),
            });
        }
        Ok(r)
    }
    /// Whether the predicate reads the state (`false`: it depends on time only).
    pub fn uses_state(&self) -> bool {
        match self {
            Pred::And(v) | Pred::Or(v) => v.iter().any(Pred::uses_state),
            Pred::Not(p) => p.uses_state(),
            Pred::Cmp(e, _) => e.uses_state(),
        }
    }
    /// Truth at a point.
    pub fn holds(&self, x: &[f64], t: f64) -> bool {
        match self {
            Pred::And(v) => v.iter().all(|p| p.holds(x, t)),
            Pred::Or(v) => v.iter().any(|p| p.holds(x, t)),
            Pred::Not(p) => !p.holds(x, t),
            Pred::Cmp(e, c) => {
                let d = e.eval(x, t);
                match c {
                    Cmp::Lt => d < 0.0,
                    Cmp::Le => d <= 0.0,
                    Cmp::Gt => d > 0.0,
                    Cmp::Ge => d >= 0.0,
                    Cmp::Eq => d == 0.0,
                    Cmp::Ne => d != 0.0,
                }
            }
        }
    }
    /// Truth over a box and time interval (sound: `True`/`False` are certain).
    pub fn eval_box(&self, x: &[Iv], t: Iv) -> Tri {
        match self {
            Pred::And(v) => {
                let mut all = true;
                for p in v {
                    match p.eval_box(x, t) {
                        Tri::False => return Tri::False,
                        Tri::Maybe => all = false,
                        Tri::True => {}
                    }
                }
                if all { Tri::True } else { Tri::Maybe }
            }
            Pred::Or(v) => {
                let mut none = true;
                for p in v {
                    match p.eval_box(x, t) {
                        Tri::True => return Tri::True,
                        Tri::Maybe => none = false,
                        Tri::False => {}
                    }
                }
                if none { Tri::False } else { Tri::Maybe }
            }
            Pred::Not(p) => match p.eval_box(x, t) {
                Tri::True => Tri::False,
                Tri::False => Tri::True,
                Tri::Maybe => Tri::Maybe,
            },
            Pred::Cmp(e, c) => {
                let d = e.eval_iv(x, t);
                if d.is_nan() {
                    return Tri::Maybe;
                }
                let (lo, hi) = (d.lo, d.hi);
                let (all, none) = match c {
                    Cmp::Lt => (hi < 0.0, lo >= 0.0),
                    Cmp::Le => (hi <= 0.0, lo > 0.0),
                    Cmp::Gt => (lo > 0.0, hi <= 0.0),
                    Cmp::Ge => (lo >= 0.0, hi < 0.0),
                    Cmp::Eq => (lo == 0.0 && hi == 0.0, lo > 0.0 || hi < 0.0),
                    Cmp::Ne => (lo > 0.0 || hi < 0.0, lo == 0.0 && hi == 0.0),
                };
                if all {
                    Tri::True
                } else if none {
                    Tri::False
                } else {
                    Tri::Maybe
                }
            }
        }
    }
}

fn pred(p: &mut Parser<'_>, depth: usize) -> Result<Pred, ExprError> {
    if depth > 100 {
        return Err(ExprError {
            msg: "predicate nested too deeply".into(),
            col: p.col(),
        });
    }
    if let Tok::Ident(name) = p.peek().clone() {
        let is_call = matches!(p.toks.get(p.pos + 1), Some((Tok::Sym("("), _)));
        if is_call && matches!(name.as_str(), "And" | "Or" | "Not") {
            let col = p.col();
            p.bump();
            p.bump();
            let mut args = vec![pred(p, depth + 1)?];
            while p.is_sym(",") {
                p.bump();
                args.push(pred(p, depth + 1)?);
            }
            p.expect(")")?;
            return Ok(match name.as_str() {
                "And" => Pred::And(args),
                "Or" => Pred::Or(args),
                _ => {
                    if args.len() != 1 {
                        return Err(ExprError {
                            msg: "Not takes one argument".into(),
                            col,
                        });
                    }
                    Pred::Not(Box::new(args.remove(0)))
                }
            });
        }
    }
    let lhs = p.expr(depth + 1)?;
    let col = p.col();
    let op = match p.bump() {
        Tok::Sym("<") => Cmp::Lt,
        Tok::Sym("<=") => Cmp::Le,
        Tok::Sym(">") => Cmp::Gt,
        Tok::Sym(">=") => Cmp::Ge,
        Tok::Sym("==") | Tok::Sym("=") => Cmp::Eq,
        Tok::Sym("!=") => Cmp::Ne,
        t => {
            return Err(ExprError {
                msg: format!(
                    "expected a comparison (<, <=, >, >=, ==), found {}",
                    describe(&t)
                ),
                col,
            });
        }
    };
    let rhs = p.expr(depth + 1)?;
    Ok(Pred::Cmp(
        Expr::from_node(Node::Sub(Box::new(lhs), Box::new(rhs))),
        op,
    ))
}

/// One assignment of a reset.
#[derive(Clone, Debug)]
pub enum Assign {
    /// `var = expr`.
    Exact(usize, Expr),
    /// `var = [lo, hi]`: any value in the interval.
    Range(usize, Expr, Expr),
}

/// A reset map: simultaneous assignments evaluated on the pre-reset state.
#[derive(Clone, Debug, Default)]
pub struct Reset {
    /// The assignments.
    pub assigns: Vec<Assign>,
}

impl Reset {
    /// Parse `a = e; b = [lo, hi]; ...` (empty text is the identity).
    pub fn parse(src: &str, resolve: &dyn Fn(&str) -> Option<Sym>) -> Result<Reset, ExprError> {
        let mut assigns = Vec::new();
        let mut p = Parser::new(src, resolve)?;
        while !matches!(p.peek(), Tok::End) {
            if p.is_sym(";") {
                p.bump();
                continue;
            }
            let col = p.col();
            let var = match p.bump() {
                Tok::Ident(n) => match resolve(&n) {
                    Some(Sym::Var(i)) => i,
                    _ => {
                        return Err(ExprError {
                            msg: format!("reset of unknown variable `{n}`"),
                            col,
                        });
                    }
                },
                t => {
                    return Err(ExprError {
                        msg: format!("expected a variable, found {}", describe(&t)),
                        col,
                    });
                }
            };
            p.expect("=")?;
            if p.is_sym("[") {
                p.bump();
                let lo = Expr::from_node(p.expr(0)?);
                p.expect(",")?;
                let hi = Expr::from_node(p.expr(0)?);
                p.expect("]")?;
                assigns.push(Assign::Range(var, lo, hi));
            } else {
                assigns.push(Assign::Exact(var, Expr::from_node(p.expr(0)?)));
            }
            if !matches!(p.peek(), Tok::End) {
                p.expect(";")?;
            }
        }
        Ok(Reset { assigns })
    }
    /// Apply to a point; `pick` in [0,1] chooses inside interval assignments.
    pub fn apply(&self, x: &[f64], t: f64, pick: &mut dyn FnMut() -> f64) -> Vec<f64> {
        let mut y = x.to_vec();
        for a in &self.assigns {
            match a {
                Assign::Exact(i, e) => y[*i] = e.eval(x, t),
                Assign::Range(i, lo, hi) => {
                    let (l, h) = (lo.eval(x, t), hi.eval(x, t));
                    let (l, h) = (l.min(h), l.max(h));
                    y[*i] = l + (h - l) * pick();
                }
            }
        }
        y
    }
    /// Apply to a box (an enclosure of the image).
    pub fn apply_box(&self, x: &[Iv], t: Iv) -> Vec<Iv> {
        let mut y = x.to_vec();
        for a in &self.assigns {
            match a {
                Assign::Exact(i, e) => y[*i] = e.eval_iv(x, t),
                Assign::Range(i, lo, hi) => y[*i] = lo.eval_iv(x, t).hull(hi.eval_iv(x, t)),
            }
        }
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Option<Sym> {
        match s {
            "x" => Some(Sym::Var(0)),
            "y" => Some(Sym::Var(1)),
            "t" => Some(Sym::Time),
            _ => None,
        }
    }

    #[test]
    fn parse_and_eval_dryvr_predicates() {
        let p = Pred::parse("And(t>1.0,t<=1.1)", &r).unwrap_or_else(|e| panic!("{e}"));
        assert!(p.holds(&[0.0, 0.0], 1.05));
        assert!(!p.holds(&[0.0, 0.0], 1.0));
        assert_eq!(
            p.eval_box(&[Iv::point(0.), Iv::point(0.)], Iv::new(0.9, 0.95)),
            Tri::False
        );
        assert_eq!(
            p.eval_box(&[Iv::point(0.), Iv::point(0.)], Iv::new(1.01, 1.02)),
            Tri::True
        );
        assert_eq!(
            p.eval_box(&[Iv::point(0.), Iv::point(0.)], Iv::new(0.95, 1.05)),
            Tri::Maybe
        );
        let q = Pred::parse("Or(x<=-2.5, And(x - y < 2, Not(y==1)), (x+y)>12)", &r)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(q.holds(&[-3.0, 0.0], 0.0));
        assert!(q.holds(&[0.0, 0.0], 0.0));
        assert!(!q.holds(&[0.0, 1.0], 0.0));
        assert!(q.holds(&[10.0, 3.0], 0.0));
        let e = Pred::parse("And(t>2,5,t<=3.5)", &r).err().map(|e| e.col);
        assert_eq!(e, Some(9));
        assert!(Pred::parse("x + 1", &r).is_err());
        assert!(Pred::parse("And(x>1", &r).is_err());
        assert!(Pred::parse("q > 1", &r).is_err());
    }

    #[test]
    fn resets() {
        let rs = Reset::parse("x = -0.8*x; y=[79, y]", &r).unwrap_or_else(|e| panic!("{e}"));
        let y = rs.apply(&[10.0, 85.0], 0.0, &mut || 0.0);
        assert_eq!(y, vec![-8.0, 79.0]);
        let b = rs.apply_box(&[Iv::new(1.0, 2.0), Iv::new(80.0, 90.0)], Iv::point(0.0));
        assert_eq!(b[0], Iv::new(-1.6, -0.8));
        assert_eq!(b[1], Iv::new(79.0, 90.0));
        assert!(Reset::parse("", &r).is_ok_and(|r| r.assigns.is_empty()));
        assert!(Reset::parse("z = 1", &r).is_err());
        assert!(Reset::parse("x = ", &r).is_err());
    }
}

//! Symbolic differentiation of expression trees (for the interval Jacobian of the sound mode).

use crate::expr::{Func, Node};

fn c(v: f64) -> Node {
    Node::Const(v)
}
fn bx(n: Node) -> Box<Node> {
    Box::new(n)
}

fn depends(n: &Node) -> bool {
    match n {
        Node::Var(_) => true,
        Node::Const(_) | Node::Time => false,
        Node::Neg(a) => depends(a),
        Node::Add(a, b) | Node::Sub(a, b) | Node::Mul(a, b) | Node::Div(a, b) | Node::Pow(a, b) => {
            depends(a) || depends(b)
        }
        Node::Call(_, args) => args.iter().any(depends),
    }
}

/// Symbolic partial derivative with respect to variable `v`.
/// Fails for `step`/`min`/`max` of state-dependent arguments (not Lipschitz / not differentiable).
pub fn derive(n: &Node, v: usize) -> Result<Node, String> {
    use Node::*;
    Ok(match n {
        Const(_) | Time => c(0.0),
        Var(i) => c(if *i == v { 1.0 } else { 0.0 }),
        Neg(a) => Neg(bx(derive(a, v)?)),
        Add(a, b) => Add(bx(derive(a, v)?), bx(derive(b, v)?)),
        Sub(a, b) => Sub(bx(derive(a, v)?), bx(derive(b, v)?)),
        Mul(a, b) => Add(
            bx(Mul(bx(derive(a, v)?), b.clone())),
            bx(Mul(a.clone(), bx(derive(b, v)?))),
        ),
        Div(a, b) => Div(
            bx(Sub(
                bx(Mul(bx(derive(a, v)?), b.clone())),
                bx(Mul(a.clone(), bx(derive(b, v)?))),
            )),
            bx(Mul(b.clone(), b.clone())),
        ),
        Pow(a, b) => {
            if !depends(b) {
                // d(a^b) = b a^(b-1) a'
                Mul(
                    bx(Mul(
                        b.clone(),
                        bx(Pow(a.clone(), bx(Sub(b.clone(), bx(c(1.0)))))),
                    )),
                    bx(derive(a, v)?),
                )
            } else {
                // a^b = exp(b ln a)
                let e = Call(
                    Func::Exp,
                    vec![Mul(b.clone(), bx(Call(Func::Log, vec![(**a).clone()])))],
                );
                return derive(&e, v);
            }
        }
        Call(f, args) => {
            let a = &args[0];
            let da = derive(a, v)?;
            match f {
                Func::Sin => Mul(bx(Call(Func::Cos, vec![a.clone()])), bx(da)),
                Func::Cos => Neg(bx(Mul(bx(Call(Func::Sin, vec![a.clone()])), bx(da)))),
                Func::Tan => {
                    let cc = Call(Func::Cos, vec![a.clone()]);
                    Div(bx(da), bx(Mul(bx(cc.clone()), bx(cc))))
                }
                Func::Exp => Mul(bx(n.clone()), bx(da)),
                Func::Log => Div(bx(da), bx(a.clone())),
                Func::Sqrt => Div(bx(da), bx(Mul(bx(c(2.0)), bx(n.clone())))),
                Func::Abs => {
                    // |a|' = a'·sign(a) and |a'·sign(a)| <= |a'|: enclose by a' * [-1,1] via min/max.
                    // We use step: sign(a) = 2 step(a) - 1, whose interval hull is [-1,1] near 0.
                    Mul(
                        bx(da),
                        bx(Sub(
                            bx(Mul(bx(c(2.0)), bx(Call(Func::Step, vec![a.clone()])))),
                            bx(c(1.0)),
                        )),
                    )
                }
                Func::Atan => Div(
                    bx(da),
                    bx(Add(bx(c(1.0)), bx(Mul(bx(a.clone()), bx(a.clone()))))),
                ),
                Func::Step => {
                    if depends(a) {
                        return Err("step() of a state-dependent argument is not Lipschitz".into());
                    }
                    c(0.0)
                }
                Func::Min | Func::Max => {
                    let b = &args[1];
                    let db = derive(b, v)?;
                    if !depends(a) && !depends(b) {
                        c(0.0)
                    } else {
                        // The generalised gradient lies in the hull of both derivatives.
                        let s = Call(Func::Step, vec![Sub(bx(a.clone()), bx(b.clone()))]);
                        let (hi, lo) = if *f == Func::Max { (da, db) } else { (db, da) };
                        Add(
                            bx(Mul(bx(s.clone()), bx(hi))),
                            bx(Mul(bx(Sub(bx(c(1.0)), bx(s))), bx(lo))),
                        )
                    }
                }
            }
        }
    })
}

//! The expression language: `+ - * / ^`, unary minus, `sin cos tan exp log sqrt abs atan`,
//! `min max step`, numbers, named constants, state variables and time `t`.
//! Expressions are parsed once into an AST and compiled to a postfix program for evaluation.

use crate::interval::Iv;

mod parse;

pub(crate) use parse::{Parser, Tok, describe};

/// An error in an expression, with the byte column (0-based) where it was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{msg} at column {}", col + 1)]
pub struct ExprError {
    /// What went wrong.
    pub msg: String,
    /// 0-based byte offset into the source text.
    pub col: usize,
}

fn err<T>(msg: impl Into<String>, col: usize) -> Result<T, ExprError> {
    Err(ExprError {
        msg: msg.into(),
        col,
    })
}

/// Built-in functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    /// sine
    Sin,
    /// cosine
    Cos,
    /// tangent
    Tan,
    /// exponential
    Exp,
    /// natural log
    Log,
    /// square root
    Sqrt,
    /// absolute value
    Abs,
    /// arctangent
    Atan,
    /// Heaviside step (1 if x > 0 else 0)
    Step,
    /// binary minimum
    Min,
    /// binary maximum
    Max,
}

impl Func {
    fn by_name(s: &str) -> Option<(Func, usize)> {
        Some(match s {
            "sin" => (Func::Sin, 1),
            "cos" => (Func::Cos, 1),
            "tan" => (Func::Tan, 1),
            "exp" => (Func::Exp, 1),
            "log" | "ln" => (Func::Log, 1),
            "sqrt" => (Func::Sqrt, 1),
            "abs" => (Func::Abs, 1),
            "atan" => (Func::Atan, 1),
            "step" => (Func::Step, 1),
            "min" => (Func::Min, 2),
            "max" => (Func::Max, 2),
            _ => return None,
        })
    }
}

/// Expression tree.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// Numeric constant.
    Const(f64),
    /// State variable by index.
    Var(usize),
    /// Time since the mode was entered.
    Time,
    /// Unary minus.
    Neg(Box<Node>),
    /// Sum.
    Add(Box<Node>, Box<Node>),
    /// Difference.
    Sub(Box<Node>, Box<Node>),
    /// Product.
    Mul(Box<Node>, Box<Node>),
    /// Quotient.
    Div(Box<Node>, Box<Node>),
    /// Power.
    Pow(Box<Node>, Box<Node>),
    /// Function call.
    Call(Func, Vec<Node>),
}

/// What a name in an expression refers to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sym {
    /// A state variable by index.
    Var(usize),
    /// Time.
    Time,
    /// A named constant.
    Const(f64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Const(f64),
    Var(usize),
    Time,
    Neg,
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    F1(Func),
    F2(Func),
}

/// A compiled expression: the tree (for differentiation) and a postfix program (for evaluation).
#[derive(Clone, Debug)]
pub struct Expr {
    /// The tree.
    pub node: Node,
    code: Vec<Op>,
    depth: usize,
}

const STACK: usize = 32;

fn emit(n: &Node, code: &mut Vec<Op>) {
    match n {
        Node::Const(v) => code.push(Op::Const(*v)),
        Node::Var(i) => code.push(Op::Var(*i)),
        Node::Time => code.push(Op::Time),
        Node::Neg(a) => {
            emit(a, code);
            code.push(Op::Neg)
        }
        Node::Add(a, b) | Node::Sub(a, b) | Node::Mul(a, b) | Node::Div(a, b) | Node::Pow(a, b) => {
            emit(a, code);
            emit(b, code);
            code.push(match n {
                Node::Add(..) => Op::Add,
                Node::Sub(..) => Op::Sub,
                Node::Mul(..) => Op::Mul,
                Node::Div(..) => Op::Div,
                _ => Op::Pow,
            })
        }
        Node::Call(f, args) => {
            for a in args {
                emit(a, code);
            }
            code.push(if args.len() == 2 {
                Op::F2(*f)
            } else {
                Op::F1(*f)
            })
        }
    }
}

impl Expr {
    /// Parse `src` resolving names through `resolve`.
    pub fn parse(src: &str, resolve: &dyn Fn(&str) -> Option<Sym>) -> Result<Expr, ExprError> {
        let mut p = Parser::new(src, resolve)?;
        let node = p.expr(0)?;
        if !matches!(p.peek(), Tok::End) {
            return err(
                format!("unexpected {} after expression", describe(p.peek())),
                p.col(),
            );
        }
        Ok(Expr::from_node(node))
    }
    /// Compile a tree.
    pub fn from_node(node: Node) -> Expr {
        let node = simplify(node);
        let mut code = Vec::new();
        emit(&node, &mut code);
        let (mut d, mut depth) = (0usize, 0usize);
        for op in &code {
            match op {
                Op::Const(_) | Op::Var(_) | Op::Time => d += 1,
                Op::Neg | Op::F1(_) => {}
                _ => d = d.saturating_sub(1),
            }
            depth = depth.max(d);
        }
        Expr { node, code, depth }
    }
    /// Highest variable index used plus one (0 if none).
    pub fn var_bound(&self) -> usize {
        self.code
            .iter()
            .filter_map(|o| {
                if let Op::Var(i) = o {
                    Some(i + 1)
                } else {
                    None
                }
            })
            .max()
            .unwrap_or(0)
    }
    /// Whether the expression uses time.
    pub fn uses_time(&self) -> bool {
        self.code.iter().any(|o| matches!(o, Op::Time))
    }
    /// Whether the expression uses the state (any variable).
    pub fn uses_state(&self) -> bool {
        self.code.iter().any(|o| matches!(o, Op::Var(_)))
    }
    /// Evaluate at point `x`, time `t`. Variables beyond `x` evaluate to NaN.
    pub fn eval(&self, x: &[f64], t: f64) -> f64 {
        // A fixed stack avoids allocating on every call; `depth` was checked at compile time.
        let mut small = [0.0f64; STACK];
        let mut big = Vec::new();
        let st: &mut [f64] = if self.depth <= STACK {
            &mut small
        } else {
            big.resize(self.depth, 0.0);
            &mut big
        };
        let mut sp = 0usize;
        for op in &self.code {
            match *op {
                Op::Const(v) => {
                    st[sp] = v;
                    sp += 1
                }
                Op::Var(i) => {
                    st[sp] = x.get(i).copied().unwrap_or(f64::NAN);
                    sp += 1
                }
                Op::Time => {
                    st[sp] = t;
                    sp += 1
                }
                Op::Neg => st[sp - 1] = -st[sp - 1],
                Op::F1(f) => {
                    let a = st[sp - 1];
                    st[sp - 1] = match f {
                        Func::Sin => a.sin(),
                        Func::Cos => a.cos(),
                        Func::Tan => a.tan(),
                        Func::Exp => a.exp(),
                        Func::Log => a.ln(),
                        Func::Sqrt => a.sqrt(),
                        Func::Abs => a.abs(),
                        Func::Atan => a.atan(),
                        Func::Step => {
                            if a > 0.0 {
                                1.0
                            } else if a.is_nan() {
                                f64::NAN
                            } else {
                                0.0
                            }
                        }
                        Func::Min | Func::Max => f64::NAN,
                    }
                }
                _ => {
                    sp -= 1;
                    let b = st[sp];
                    let a = st[sp - 1];
                    st[sp - 1] = match *op {
                        Op::Add => a + b,
                        Op::Sub => a - b,
                        Op::Mul => a * b,
                        Op::Div => a / b,
                        Op::Pow => {
                            if b.fract() == 0.0 && b.abs() < 64.0 {
                                a.powi(b as i32)
                            } else {
                                a.powf(b)
                            }
                        }
                        Op::F2(Func::Min) => a.min(b),
                        Op::F2(Func::Max) => a.max(b),
                        _ => f64::NAN,
                    }
                }
            }
        }
        if sp == 1 { st[0] } else { f64::NAN }
    }
    /// Evaluate over a box `x` and time interval `t` (an enclosure of the range).
    pub fn eval_iv(&self, x: &[Iv], t: Iv) -> Iv {
        let mut st: Vec<Iv> = Vec::with_capacity(16);
        let nan = Iv::entire();
        for op in &self.code {
            match *op {
                Op::Const(v) => st.push(Iv::point(v)),
                Op::Var(i) => st.push(x.get(i).copied().unwrap_or(nan)),
                Op::Time => st.push(t),
                Op::Neg => {
                    let a = st.pop().unwrap_or(nan);
                    st.push(a.neg())
                }
                Op::F1(f) => {
                    let a = st.pop().unwrap_or(nan);
                    st.push(match f {
                        Func::Sin => a.sin(),
                        Func::Cos => a.cos(),
                        Func::Tan => a.tan(),
                        Func::Exp => a.exp(),
                        Func::Log => a.ln(),
                        Func::Sqrt => a.sqrt(),
                        Func::Abs => a.abs(),
                        Func::Atan => a.atan(),
                        Func::Step => a.step(),
                        Func::Min | Func::Max => nan,
                    })
                }
                _ => {
                    let b = st.pop().unwrap_or(nan);
                    let a = st.pop().unwrap_or(nan);
                    st.push(match *op {
                        Op::Add => a.add(b),
                        Op::Sub => a.sub(b),
                        Op::Mul => a.mul(b),
                        Op::Div => a.div(b),
                        Op::Pow => a.pow(b),
                        Op::F2(Func::Min) => a.min(b),
                        Op::F2(Func::Max) => a.max(b),
                        _ => nan,
                    })
                }
            }
        }
        st.pop().unwrap_or(nan)
    }
}

// ---------------------------------------------------------------- differentiation

fn bx(n: Node) -> Box<Node> {
    Box::new(n)
}

/// Fold constants and drop neutral elements.
#[allow(clippy::redundant_guards)]
fn simplify(n: Node) -> Node {
    use Node::*;
    match n {
        Neg(a) => match simplify(*a) {
            Const(v) => Const(-v),
            a => Neg(bx(a)),
        },
        Add(a, b) => match (simplify(*a), simplify(*b)) {
            (Const(x), Const(y)) => Const(x + y),
            (Const(z), e) | (e, Const(z)) if z == 0.0 => e,
            (a, b) => Add(bx(a), bx(b)),
        },
        Sub(a, b) => match (simplify(*a), simplify(*b)) {
            (Const(x), Const(y)) => Const(x - y),
            (e, Const(z)) if z == 0.0 => e,
            (Const(z), e) if z == 0.0 => Neg(bx(e)),
            (a, b) => Sub(bx(a), bx(b)),
        },
        Mul(a, b) => match (simplify(*a), simplify(*b)) {
            (Const(x), Const(y)) => Const(x * y),
            (Const(z), _) | (_, Const(z)) if z == 0.0 => Const(0.0),
            (Const(o), e) | (e, Const(o)) if o == 1.0 => e,
            (a, b) => Mul(bx(a), bx(b)),
        },
        Div(a, b) => match (simplify(*a), simplify(*b)) {
            (Const(x), Const(y)) if y != 0.0 => Const(x / y),
            (e, Const(o)) if o == 1.0 => e,
            (a, b) => Div(bx(a), bx(b)),
        },
        Pow(a, b) => match (simplify(*a), simplify(*b)) {
            (e, Const(o)) if o == 1.0 => e,
            (_, Const(z)) if z == 0.0 => Const(1.0),
            (a, b) => Pow(bx(a), bx(b)),
        },
        Call(f, args) => Call(f, args.into_iter().map(simplify).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deriv::derive;

    fn xy(s: &str) -> Option<Sym> {
        match s {
            "x" => Some(Sym::Var(0)),
            "y" => Some(Sym::Var(1)),
            "t" => Some(Sym::Time),
            "k" => Some(Sym::Const(2.5)),
            _ => None,
        }
    }
    fn ev(s: &str, x: f64, y: f64, t: f64) -> f64 {
        Expr::parse(s, &xy)
            .map(|e| e.eval(&[x, y], t))
            .unwrap_or(f64::NAN)
    }

    #[test]
    fn precedence_and_functions() {
        assert_eq!(ev("1+2*3", 0., 0., 0.), 7.0);
        assert_eq!(ev("-2^2", 0., 0., 0.), -4.0);
        assert_eq!(ev("2^3^2", 0., 0., 0.), 512.0);
        assert_eq!(ev("(1+2)*3 - 4/2", 0., 0., 0.), 7.0);
        assert_eq!(ev("x*y - t + k", 2., 3., 1.), 7.5);
        assert_eq!(ev("x**2", 3., 0., 0.), 9.0);
        assert!(
            (ev(
                "sin(pi/2) + cos(0) + exp(0) + log(1) + sqrt(4) + abs(-1)",
                0.,
                0.,
                0.
            ) - 6.0)
                .abs()
                < 1e-12
        );
        assert_eq!(
            ev(
                "min(x,y) + max(x,y) + step(x-2.5) + step(y-2.5)",
                2.,
                3.,
                0.
            ),
            6.0
        );
        assert_eq!(ev("1.5e2 + 2E-1", 0., 0., 0.), 150.2);
        assert!((ev("tan(atan(0.3))", 0., 0., 0.) - 0.3).abs() < 1e-12);
        assert!(ev("1/x", 0., 0., 0.).is_infinite());
    }

    #[test]
    fn errors_have_columns() {
        let e = Expr::parse("x + zz", &xy).err();
        assert_eq!(
            e,
            Some(ExprError {
                msg: "unknown variable `zz`".into(),
                col: 4
            })
        );
        let e = Expr::parse("x + (y", &xy).err().map(|e| e.col);
        assert_eq!(e, Some(6));
        assert!(Expr::parse("foo(x)", &xy).is_err());
        assert!(Expr::parse("min(x)", &xy).is_err());
        assert!(Expr::parse("x $ y", &xy).is_err());
        assert!(Expr::parse("x y", &xy).is_err());
        assert!(Expr::parse("", &xy).is_err());
        let deep = "(".repeat(5000) + "x" + &")".repeat(5000);
        assert!(Expr::parse(&deep, &xy).is_err());
    }

    #[test]
    fn interval_eval_encloses_points() {
        let e = Expr::parse("x*x*y - sin(x)*exp(y/3) + x^3 / (2 + y*y)", &xy)
            .map_err(|e| e.to_string());
        let e = e
            .as_ref()
            .map_err(|m| m.as_str())
            .unwrap_or_else(|m| panic!("{m}"));
        let bx = [Iv::new(-1.0, 2.0), Iv::new(0.5, 1.5)];
        let r = e.eval_iv(&bx, Iv::point(0.0));
        for i in 0..=20 {
            for j in 0..=20 {
                let x = -1.0 + 3.0 * i as f64 / 20.0;
                let y = 0.5 + j as f64 / 20.0;
                let v = e.eval(&[x, y], 0.0);
                assert!(r.contains(v), "{v} outside {r:?}");
            }
        }
    }

    #[test]
    fn derivatives_match_finite_differences() {
        for src in [
            "x*x*y",
            "sin(x)*cos(y)",
            "exp(x*y)/(1+y*y)",
            "x^3 - 2*x*y",
            "sqrt(1+x*x)",
            "atan(x*y)",
            "(x+2)^y",
        ] {
            let e = Expr::parse(src, &xy).unwrap_or_else(|e| panic!("{e}"));
            for v in 0..2 {
                let d = Expr::from_node(derive(&e.node, v).unwrap_or_else(|m| panic!("{m}")));
                let (x, y) = (0.7, 1.3);
                let h = 1e-6;
                let (mut p, mut m) = ([x, y], [x, y]);
                p[v] += h;
                m[v] -= h;
                let fd = (e.eval(&p, 0.0) - e.eval(&m, 0.0)) / (2.0 * h);
                let an = d.eval(&[x, y], 0.0);
                assert!(
                    (fd - an).abs() < 1e-5 * (1.0 + an.abs()),
                    "{src} d/dx{v}: {fd} vs {an}"
                );
            }
        }
        let e = Expr::parse("step(x)", &xy).unwrap_or_else(|e| panic!("{e}"));
        assert!(derive(&e.node, 0).is_err());
    }
}

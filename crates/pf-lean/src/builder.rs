//! A small term builder that writes lean4export NDJSON (format 3.1.0), used by the property
//! tests to generate well-typed declarations and targeted ill-typed mutations without a
//! Lean toolchain.

use std::collections::HashMap;

/// A universe level.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Lvl {
    /// 0.
    Zero,
    /// l + 1.
    Succ(Box<Lvl>),
    /// max.
    Max(Box<Lvl>, Box<Lvl>),
    /// imax.
    IMax(Box<Lvl>, Box<Lvl>),
    /// A parameter.
    Param(String),
}

/// A term with de Bruijn indices.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Term {
    /// Bound variable.
    BVar(u32),
    /// Sort.
    Sort(Lvl),
    /// Constant.
    Const(String, Vec<Lvl>),
    /// Application.
    App(Box<Term>, Box<Term>),
    /// Lambda (type, body).
    Lam(Box<Term>, Box<Term>),
    /// Pi (type, body).
    Pi(Box<Term>, Box<Term>),
    /// Let (type, value, body).
    Let(Box<Term>, Box<Term>, Box<Term>),
    /// Nat literal.
    Nat(u64),
    /// String literal.
    Str(String),
    /// Projection.
    Proj(String, u32, Box<Term>),
}

/// Shorthands.
impl Term {
    /// `Sort l`.
    pub fn sort(l: Lvl) -> Term {
        Term::Sort(l)
    }
    /// `Prop`.
    pub fn prop() -> Term {
        Term::Sort(Lvl::Zero)
    }
    /// `Type`.
    pub fn ty() -> Term {
        Term::Sort(Lvl::Succ(Box::new(Lvl::Zero)))
    }
    /// A constant without universe arguments.
    pub fn c(n: &str) -> Term {
        Term::Const(n.into(), vec![])
    }
    /// `f a`.
    pub fn app(f: Term, a: Term) -> Term {
        Term::App(Box::new(f), Box::new(a))
    }
    /// `f a1 ... an`.
    pub fn apps(f: Term, args: Vec<Term>) -> Term {
        args.into_iter().fold(f, Term::app)
    }
    /// `fun (_ : t) => b`.
    pub fn lam(t: Term, b: Term) -> Term {
        Term::Lam(Box::new(t), Box::new(b))
    }
    /// `(_ : t) -> b`.
    pub fn pi(t: Term, b: Term) -> Term {
        Term::Pi(Box::new(t), Box::new(b))
    }
}

/// A declaration to export.
#[derive(Clone, Debug)]
pub enum Decl {
    /// `axiom name : ty`.
    Axiom {
        /// Name.
        name: String,
        /// Universe parameters.
        lparams: Vec<String>,
        /// Type.
        ty: Term,
    },
    /// `def name : ty := value` (hint `regular 1`).
    Def {
        /// Name.
        name: String,
        /// Universe parameters.
        lparams: Vec<String>,
        /// Type.
        ty: Term,
        /// Value.
        value: Term,
    },
    /// `theorem name : ty := value`.
    Thm {
        /// Name.
        name: String,
        /// Universe parameters.
        lparams: Vec<String>,
        /// Type.
        ty: Term,
        /// Proof.
        value: Term,
    },
    /// A single (non-mutual) inductive type with its recursor.
    Inductive {
        /// Type name.
        name: String,
        /// Universe parameters.
        lparams: Vec<String>,
        /// Type.
        ty: Term,
        /// Number of parameters.
        nparams: u32,
        /// Number of indices.
        nindices: u32,
        /// Constructors: (name, type, number of fields).
        ctors: Vec<(String, Term, u32)>,
        /// Recursive / reflexive flags as exported.
        is_rec: bool,
        /// Reflexive flag as exported.
        is_reflexive: bool,
        /// Recursor: universe parameters, type, rules (ctor, nfields, rhs), k.
        rec_lparams: Vec<String>,
        /// Recursor type.
        rec_ty: Term,
        /// Recursor rules.
        rules: Vec<(String, u32, Term)>,
        /// K flag.
        k: bool,
    },
}

/// Writes declarations as NDJSON, interning names, levels and expressions.
#[derive(Default)]
pub struct Exporter {
    out: Vec<String>,
    names: HashMap<String, u64>,
    levels: HashMap<Lvl, u64>,
    exprs: HashMap<Term, u64>,
}

impl Exporter {
    /// A new exporter (the meta line is written by [`Exporter::finish`]).
    pub fn new() -> Self {
        Exporter::default()
    }

    fn name(&mut self, n: &str) -> u64 {
        if n.is_empty() {
            return 0;
        }
        if let Some(&i) = self.names.get(n) {
            return i;
        }
        let (pre, last) = match n.rfind('.') {
            Some(p) => (&n[..p], &n[p + 1..]),
            None => ("", n),
        };
        let pre = self.name(pre);
        let i = self.names.len() as u64 + 1;
        self.out.push(format!(
            "{{\"in\":{i},\"str\":{{\"pre\":{pre},\"str\":{}}}}}",
            json_str(last)
        ));
        self.names.insert(n.to_string(), i);
        i
    }

    fn level(&mut self, l: &Lvl) -> u64 {
        if *l == Lvl::Zero {
            return 0;
        }
        if let Some(&i) = self.levels.get(l) {
            return i;
        }
        let body = match l {
            Lvl::Zero => unreachable_zero(),
            Lvl::Succ(a) => format!("\"succ\":{}", self.level(a)),
            Lvl::Max(a, b) => format!("\"max\":[{},{}]", self.level(a), self.level(b)),
            Lvl::IMax(a, b) => format!("\"imax\":[{},{}]", self.level(a), self.level(b)),
            Lvl::Param(p) => format!("\"param\":{}", self.name(p)),
        };
        let i = self.levels.len() as u64 + 1;
        self.out.push(format!("{{\"il\":{i},{body}}}"));
        self.levels.insert(l.clone(), i);
        i
    }

    /// Interns a term and returns its index.
    pub fn expr(&mut self, t: &Term) -> u64 {
        if let Some(&i) = self.exprs.get(t) {
            return i;
        }
        let x = self.name("x");
        let body = match t {
            Term::BVar(i) => format!("\"bvar\":{i}"),
            Term::Sort(l) => format!("\"sort\":{}", self.level(l)),
            Term::Const(n, ls) => {
                let n = self.name(n);
                let us: Vec<String> = ls.iter().map(|l| self.level(l).to_string()).collect();
                format!("\"const\":{{\"name\":{n},\"us\":[{}]}}", us.join(","))
            }
            Term::App(f, a) => format!(
                "\"app\":{{\"fn\":{},\"arg\":{}}}",
                self.expr(f),
                self.expr(a)
            ),
            Term::Lam(ty, b) => format!(
                "\"lam\":{{\"name\":{x},\"type\":{},\"body\":{},\"binderInfo\":\"default\"}}",
                self.expr(ty),
                self.expr(b)
            ),
            Term::Pi(ty, b) => format!(
                "\"forallE\":{{\"name\":{x},\"type\":{},\"body\":{},\"binderInfo\":\"default\"}}",
                self.expr(ty),
                self.expr(b)
            ),
            Term::Let(ty, v, b) => format!(
                "\"letE\":{{\"name\":{x},\"type\":{},\"value\":{},\"body\":{},\"nondep\":false}}",
                self.expr(ty),
                self.expr(v),
                self.expr(b)
            ),
            Term::Nat(n) => format!("\"natVal\":\"{n}\""),
            Term::Str(s) => format!("\"strVal\":{}", json_str(s)),
            Term::Proj(n, i, s) => format!(
                "\"proj\":{{\"typeName\":{},\"idx\":{i},\"struct\":{}}}",
                self.name(n),
                self.expr(s)
            ),
        };
        let i = self.exprs.len() as u64;
        self.out.push(format!("{{\"ie\":{i},{body}}}"));
        self.exprs.insert(t.clone(), i);
        i
    }

    fn lparams(&mut self, ps: &[String]) -> String {
        let v: Vec<String> = ps.iter().map(|p| self.name(p).to_string()).collect();
        format!("[{}]", v.join(","))
    }

    /// Appends a declaration.
    pub fn decl(&mut self, d: &Decl) {
        let line = match d {
            Decl::Axiom { name, lparams, ty } => {
                let (n, l, t) = (self.name(name), self.lparams(lparams), self.expr(ty));
                format!(
                    "{{\"axiom\":{{\"name\":{n},\"levelParams\":{l},\"type\":{t},\"isUnsafe\":false}}}}"
                )
            }
            Decl::Def {
                name,
                lparams,
                ty,
                value,
            } => {
                let (n, l, t, v) = (
                    self.name(name),
                    self.lparams(lparams),
                    self.expr(ty),
                    self.expr(value),
                );
                format!(
                    "{{\"def\":{{\"name\":{n},\"levelParams\":{l},\"type\":{t},\"value\":{v},\"hints\":{{\"regular\":1}},\"safety\":\"safe\",\"all\":[{n}]}}}}"
                )
            }
            Decl::Thm {
                name,
                lparams,
                ty,
                value,
            } => {
                let (n, l, t, v) = (
                    self.name(name),
                    self.lparams(lparams),
                    self.expr(ty),
                    self.expr(value),
                );
                format!(
                    "{{\"thm\":{{\"name\":{n},\"levelParams\":{l},\"type\":{t},\"value\":{v},\"all\":[{n}]}}}}"
                )
            }
            Decl::Inductive {
                name,
                lparams,
                ty,
                nparams,
                nindices,
                ctors,
                is_rec,
                is_reflexive,
                rec_lparams,
                rec_ty,
                rules,
                k,
            } => {
                let n = self.name(name);
                let l = self.lparams(lparams);
                let t = self.expr(ty);
                let mut cs = Vec::new();
                let mut cnames = Vec::new();
                for (i, (cn, cty, nf)) in ctors.iter().enumerate() {
                    let cn = self.name(cn);
                    cnames.push(cn.to_string());
                    let ct = self.expr(cty);
                    cs.push(format!("{{\"name\":{cn},\"levelParams\":{l},\"type\":{ct},\"induct\":{n},\"cidx\":{i},\"numParams\":{nparams},\"numFields\":{nf},\"isUnsafe\":false}}"));
                }
                let rn = self.name(&format!("{name}.rec"));
                let rl = self.lparams(rec_lparams);
                let rt = self.expr(rec_ty);
                let mut rs = Vec::new();
                for (cn, nf, rhs) in rules {
                    let (cn, rhs) = (self.name(cn), self.expr(rhs));
                    rs.push(format!("{{\"ctor\":{cn},\"nfields\":{nf},\"rhs\":{rhs}}}"));
                }
                format!(
                    "{{\"inductive\":{{\"types\":[{{\"name\":{n},\"levelParams\":{l},\"type\":{t},\"numParams\":{nparams},\"numIndices\":{nindices},\"all\":[{n}],\"ctors\":[{}],\"numNested\":0,\"isRec\":{is_rec},\"isUnsafe\":false,\"isReflexive\":{is_reflexive}}}],\"ctors\":[{}],\"recs\":[{{\"name\":{rn},\"levelParams\":{rl},\"type\":{rt},\"all\":[{n}],\"numParams\":{nparams},\"numIndices\":{nindices},\"numMotives\":1,\"numMinors\":{},\"rules\":[{}],\"k\":{k},\"isUnsafe\":false}}]}}}}",
                    cnames.join(","),
                    cs.join(","),
                    ctors.len(),
                    rs.join(",")
                )
            }
        };
        self.out.push(line);
    }

    /// The NDJSON text (meta line first).
    pub fn finish(self) -> String {
        let mut s = String::from(
            "{\"meta\":{\"exporter\":{\"name\":\"pf-lean-builder\",\"version\":\"0.1.0\"},\"lean\":{\"githash\":\"\",\"version\":\"4.29.1\"},\"format\":{\"version\":\"3.1.0\"}}}\n",
        );
        for l in self.out {
            s.push_str(&l);
            s.push('\n');
        }
        s
    }
}

fn unreachable_zero() -> String {
    // Level zero is index 0 and returned before this point.
    String::from("\"succ\":0")
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Exports a list of declarations.
pub fn export(decls: &[Decl]) -> String {
    let mut e = Exporter::new();
    for d in decls {
        e.decl(d);
    }
    e.finish()
}

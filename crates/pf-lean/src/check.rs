//! The driver: adds the declarations of an export to an environment one by one, checking
//! each, and turns the outcome into a Lean Kernel Arena verdict.

use rustc_hash::FxHashSet;

use crate::env::{ConstKind, Constant, Declaration, Env, Hint};
use crate::error::{KernelError, ParseError, ill};
use crate::parse::{self, Format};
use crate::store::{ExprId, ExprNode, NameId, Store};
use crate::tc::{DEFAULT_FUEL, TypeChecker, Wk};
use crate::{inductive, quot};

/// The verdict on an export file (Lean Kernel Arena contract).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every declaration is well-typed (exit 0).
    Accept,
    /// A declaration is ill-typed or the file is malformed (exit 1).
    Reject {
        /// The offending declaration (or `None` for a malformed file).
        decl: Option<String>,
        /// Why.
        reason: String,
    },
    /// The file uses a feature the checker does not implement (exit 2).
    Decline {
        /// The declaration that needs it, if any.
        decl: Option<String>,
        /// Which feature.
        reason: String,
    },
}

impl Verdict {
    /// The process exit code of the arena contract.
    pub fn exit_code(&self) -> u8 {
        match self {
            Verdict::Accept => 0,
            Verdict::Reject { .. } => 1,
            Verdict::Decline { .. } => 2,
        }
    }
}

/// Options for a check.
#[derive(Clone, Debug)]
pub struct Options {
    /// Reduction fuel per declaration.
    pub fuel: u64,
    /// Print each declaration to stderr as it is checked (debugging).
    pub trace: bool,
    /// Worker threads for independent declarations (1 = sequential).
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fuel: DEFAULT_FUEL,
            trace: false,
            threads: 1,
        }
    }
}

/// A checked environment: the terms and the constants admitted so far.
pub struct Checked {
    /// Term arenas.
    pub store: Store,
    /// Admitted constants.
    pub env: Env,
    /// Well-known names.
    pub wk: Wk,
    /// Number of declarations checked.
    pub checked: usize,
    /// Detected export format.
    pub format: Option<Format>,
}

/// The outcome of checking an export: the verdict and the environment built up to it.
pub struct Outcome {
    /// Verdict.
    pub verdict: Verdict,
    /// The environment (complete when the verdict is `Accept`).
    pub checked: Checked,
}

/// Stack size of the checking thread (deep terms recurse deeply).
pub(crate) const STACK: usize = 1 << 30;

/// Parses and checks an export, on a thread with a large stack.
pub fn check_export(input: &str, opts: &Options) -> Outcome {
    let input = input.to_string();
    let opts = opts.clone();
    let h = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || check_export_here(&input, &opts));
    match h.map(|h| h.join()) {
        Ok(Ok(o)) => o,
        _ => {
            let mut store = Store::new();
            let wk = Wk::new(&mut store);
            Outcome {
                verdict: Verdict::Decline {
                    decl: None,
                    reason: "checker thread failed".into(),
                },
                checked: Checked {
                    store,
                    env: Env::default(),
                    wk,
                    checked: 0,
                    format: None,
                },
            }
        }
    }
}

/// Parses and checks an export on the current thread.
pub fn check_export_here(input: &str, opts: &Options) -> Outcome {
    let ex = match parse::parse_export(input) {
        Ok(ex) => ex,
        Err(e) => {
            let mut store = Store::new();
            let wk = Wk::new(&mut store);
            return Outcome {
                verdict: parse_verdict(&e),
                checked: Checked {
                    store,
                    env: Env::default(),
                    wk,
                    checked: 0,
                    format: None,
                },
            };
        }
    };
    let mut store = ex.store;
    let wk = Wk::new(&mut store);
    let decls = match ex.format {
        Format::Ndjson(_) => ex.decls,
        _ => crate::schedule::dependency_order(&mut store, ex.decls),
    };
    let mut c = Checked {
        store,
        env: Env::default(),
        wk,
        checked: 0,
        format: Some(ex.format),
    };
    if opts.threads > 1 {
        let verdict = match crate::parallel::check_all(&mut c, &decls, opts, opts.threads) {
            None => {
                c.checked = decls.len();
                accept_verdict(&c)
            }
            Some((i, name, e)) => {
                c.checked = i;
                let line = decls.get(i).map_or(0, |d| d.0);
                failure_verdict(&c, line, name, e)
            }
        };
        return Outcome {
            verdict,
            checked: c,
        };
    }
    for (line, d) in &decls {
        if opts.trace {
            let n = decl_name(d)
                .map(|n| c.store.name_to_string(n))
                .unwrap_or_default();
            eprintln!("line {line}: {} {n}", decl_kind(d));
        }
        if let Err((name, e)) = add_declaration(&mut c, d, opts) {
            let verdict = failure_verdict(&c, *line, name, e);
            return Outcome {
                verdict,
                checked: c,
            };
        }
        c.checked += 1;
    }
    Outcome {
        verdict: accept_verdict(&c),
        checked: c,
    }
}

/// Accept, unless a universe comparison ran out of budget (its answers are then unreliable).
fn accept_verdict(c: &Checked) -> Verdict {
    if c.store.level_budget_hit {
        Verdict::Decline {
            decl: None,
            reason: "universe comparison budget exhausted".into(),
        }
    } else {
        Verdict::Accept
    }
}

fn failure_verdict(c: &Checked, line: usize, name: Option<NameId>, e: KernelError) -> Verdict {
    let decl = name.map(|n| c.store.name_to_string(n));
    // A "no" from an exhausted universe comparison is not a proof of ill-typedness.
    let e = match e {
        KernelError::Ill(m) if c.store.level_budget_hit => {
            KernelError::Resource(format!("universe comparison budget exhausted ({m})"))
        }
        other => other,
    };
    match e {
        KernelError::Ill(reason) => Verdict::Reject {
            decl,
            reason: format!("line {line}: {reason}"),
        },
        KernelError::Unsupported(reason) | KernelError::Resource(reason) => Verdict::Decline {
            decl,
            reason: format!("line {line}: {reason}"),
        },
    }
}

fn parse_verdict(e: &ParseError) -> Verdict {
    if e.unsupported {
        Verdict::Decline {
            decl: None,
            reason: e.to_string(),
        }
    } else {
        Verdict::Reject {
            decl: None,
            reason: format!("malformed export: {e}"),
        }
    }
}

fn decl_kind(d: &Declaration) -> &'static str {
    match d {
        Declaration::Single(_) => "constant",
        Declaration::Quot(_) | Declaration::QuotPackage => "quotient",
        Declaration::LateRec(_) => "recursor",
        Declaration::Inductive(_) => "inductive",
    }
}

fn decl_name(d: &Declaration) -> Option<NameId> {
    match d {
        Declaration::Single(c) | Declaration::Quot(c) | Declaration::LateRec(c) => Some(c.name),
        Declaration::QuotPackage => None,
        Declaration::Inductive(i) => i.types.first().map(|t| t.name),
    }
}

/// Checks one declaration and adds it to the environment.
pub fn add_declaration(
    c: &mut Checked,
    d: &Declaration,
    opts: &Options,
) -> Result<(), (Option<NameId>, KernelError)> {
    let name = decl_name(d);
    let r = match d {
        Declaration::Single(k) => add_single(c, k, opts),
        Declaration::Quot(k) => {
            if c.env.contains(k.name) {
                Err(KernelError::Ill("already declared".into()))
            } else {
                quot::check_quot(&mut c.store, &c.env, c.wk, k).map(|_| c.env.insert(k.clone()))
            }
        }
        Declaration::QuotPackage => quot::generate(&mut c.store, &c.env, c.wk).and_then(|ks| {
            for k in ks {
                if c.env.contains(k.name) {
                    return ill("quotient package declared twice");
                }
                c.env.insert(k);
            }
            Ok(())
        }),
        Declaration::LateRec(r) => {
            inductive::check_late_rec(&mut c.store, &c.env, c.wk, r, opts.fuel)
        }
        Declaration::Inductive(i) => {
            inductive::add_inductive(&mut c.store, &mut c.env, c.wk, i, opts.fuel)
        }
    };
    r.map_err(|e| (name, e))
}

fn add_single(c: &mut Checked, k: &Constant, opts: &Options) -> Result<(), KernelError> {
    precheck_single(c, k)?;
    typecheck_single(&mut c.store, &c.env, c.wk, k, opts)?;
    admit_single(c, k);
    Ok(())
}

/// The cheap structural checks of a single declaration (fresh name, universe parameters,
/// safety, closed terms).
pub(crate) fn precheck_single(c: &Checked, k: &Constant) -> Result<(), KernelError> {
    if c.env.contains(k.name) {
        return ill("already declared");
    }
    let mut seen = FxHashSet::default();
    if !k.lparams.iter().all(|p| seen.insert(*p)) {
        return ill("duplicate universe parameter");
    }
    if k.is_unsafe {
        return Err(KernelError::Unsupported(
            "unsafe or partial declarations".into(),
        ));
    }
    let closed = |s: &Store, e: ExprId| s.info(e).loose_bvar_range == 0 && !s.info(e).has_fvar;
    if !closed(&c.store, k.ty) {
        return ill("type is not a closed term");
    }
    match &k.kind {
        ConstKind::Axiom => Ok(()),
        ConstKind::Def { value, .. } | ConstKind::Thm { value } | ConstKind::Opaque { value } => {
            if closed(&c.store, *value) {
                Ok(())
            } else {
                ill("value is not a closed term")
            }
        }
        _ => ill("unexpected constant kind"),
    }
}

/// Type-checks a single declaration against `env` (which it only reads).
pub(crate) fn typecheck_single(
    store: &mut Store,
    env: &Env,
    wk: Wk,
    k: &Constant,
    opts: &Options,
) -> Result<(), KernelError> {
    let mut tc = TypeChecker::new(store, env, wk, Some(k.lparams.clone()), opts.fuel);
    tc.ensure_sort_of(k.ty)?;
    match &k.kind {
        ConstKind::Def { value, .. } | ConstKind::Thm { value } | ConstKind::Opaque { value } => {
            let v = *value;
            if matches!(k.kind, ConstKind::Thm { .. }) && !tc.is_prop(k.ty)? {
                return ill("theorem type is not a proposition");
            }
            // Syntactic fast path first (no binder opening); the full checker otherwise.
            let vt = match tc.check_open(v)? {
                Some(t) => t,
                None => tc.check(v)?,
            };
            if !tc.is_def_eq(vt, k.ty)? {
                return ill("value does not have the declared type");
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Adds a checked single declaration to the environment.
pub(crate) fn admit_single(c: &mut Checked, k: &Constant) {
    let mut k = k.clone();
    // The legacy text format has no hints: use the definitional height (Lean 3 rule).
    if let Some(Format::TextLegacy) = c.format
        && let ConstKind::Def { value, hint } = &mut k.kind
    {
        *hint = Hint::Regular(height(&c.store, &c.env, *value));
    }
    c.env.insert(k);
}

/// 1 + the largest height of a regular definition `value` mentions.
fn height(s: &Store, env: &Env, value: ExprId) -> u32 {
    let mut best = 0;
    let mut seen = FxHashSet::default();
    let mut stack = vec![value];
    while let Some(e) = stack.pop() {
        if !seen.insert(e) {
            continue;
        }
        match s.node(e) {
            ExprNode::Const(n, _) => {
                if let Some(Constant {
                    kind:
                        ConstKind::Def {
                            hint: Hint::Regular(h),
                            ..
                        },
                    ..
                }) = env.get(n)
                {
                    best = best.max(*h);
                }
            }
            ExprNode::App(a, b) | ExprNode::Lam(a, b) | ExprNode::Pi(a, b) => stack.extend([a, b]),
            ExprNode::Let(a, b, d) => stack.extend([a, b, d]),
            ExprNode::Proj(_, _, x) => stack.push(x),
            _ => {}
        }
    }
    best + 1
}

//! Nested inductive types (Lean 4 `elim_nested_inductive`): an occurrence of the block's
//! types inside the parameters of another inductive type (`List Sexpr`) is replaced by an
//! auxiliary type of the block whose constructors copy the outer type's; the extended mutual
//! block is checked as usual, and the generated recursors are translated back.

use rustc_hash::FxHashMap;

use crate::env::{ConstKind, Constant, Env, InductiveDecl};
use crate::error::{KernelError, ill};
use crate::store::{ExprId, ExprNode, LevelId, LevelNode, NameId, Store};
use crate::subst;
use crate::tc::{TypeChecker, Wk};

/// Upper bound on auxiliary types (fails closed: decline).
pub const MAX_AUX: usize = 256;

/// One auxiliary type: `aux params := J As` with its constructors `aux.c params := J.c As`.
pub struct Aux {
    /// Auxiliary type name.
    pub name: NameId,
    /// `J As` with the block parameters as loose bound variables (outermost = highest index).
    pub j_app: ExprId,
    /// (auxiliary constructor, `J.c As` with loose parameters).
    pub ctors: Vec<(NameId, ExprId)>,
}

/// The block extended with auxiliary types, and how to translate back.
pub struct Expanded {
    /// Original types followed by auxiliary types; constructors with nested occurrences replaced.
    pub work: InductiveDecl,
    /// Auxiliary types in creation order.
    pub aux: Vec<Aux>,
}

struct Expander<'t, 'a> {
    tc: &'t mut TypeChecker<'a>,
    params: Vec<ExprId>,
    nparams: usize,
    block: Vec<NameId>,
    us: Vec<LevelId>,
    lparams: Vec<NameId>,
    cache: FxHashMap<ExprId, usize>,
    aux: Vec<Aux>,
    aux_types: Vec<Constant>,
    aux_ctors: Vec<Vec<Constant>>,
    prefix: NameId,
    memo: FxHashMap<ExprId, ExprId>,
}

/// Expands nested occurrences; `None` when the block has none.
pub fn expand(
    s: &mut Store,
    env: &Env,
    wk: Wk,
    d: &InductiveDecl,
    nparams: usize,
    fuel: u64,
) -> Result<Option<Expanded>, KernelError> {
    let lparams = d.types[0].lparams.clone();
    let us: Vec<LevelId> = lparams
        .iter()
        .map(|&p| s.level(LevelNode::Param(p)))
        .collect();
    let prefix = {
        let anon = s.anon();
        s.name_str(anon, "_nested")
    };
    let mut tc = TypeChecker::new(s, env, wk, Some(lparams.clone()), fuel);
    let mut params = Vec::new();
    let mut t = d.types[0].ty;
    for _ in 0..nparams {
        let ExprNode::Pi(dom, body) = tc.s.node(t) else {
            return ill("missing parameter");
        };
        let x = tc.mk_local(dom, None);
        params.push(x);
        t = subst::instantiate(tc.s, body, &[x]);
    }
    let block: Vec<NameId> = d.types.iter().map(|t| t.name).collect();
    let mut ex = Expander {
        tc: &mut tc,
        params,
        nparams,
        block,
        us,
        lparams,
        cache: FxHashMap::default(),
        aux: Vec::new(),
        aux_types: Vec::new(),
        aux_ctors: Vec::new(),
        prefix,
        memo: FxHashMap::default(),
    };
    // Constructors in the order of the types' constructor lists (this fixes the order of
    // the auxiliary types, hence of the motives).
    let mut ordered = Vec::new();
    for t in &d.types {
        if let ConstKind::Induct { ctors, .. } = &t.kind {
            for cn in ctors {
                if let Some(c) = d.ctors.iter().find(|c| c.name == *cn) {
                    ordered.push(c);
                }
            }
        }
    }
    let mut ctors = Vec::new();
    for c in ordered {
        let mut c2 = c.clone();
        c2.ty = ex.rewrite_ctor_type(c.ty)?;
        ctors.push(c2);
    }
    if ex.aux.is_empty() {
        return Ok(None);
    }
    // Auxiliary constructors may themselves contain nested occurrences.
    let mut i = 0;
    while i < ex.aux_ctors.len() {
        let cs = std::mem::take(&mut ex.aux_ctors[i]);
        let mut out = Vec::new();
        for mut c in cs {
            c.ty = ex.rewrite_ctor_type(c.ty)?;
            out.push(c);
        }
        ex.aux_ctors[i] = out;
        i += 1;
    }
    let mut types = d.types.clone();
    types.extend(ex.aux_types.iter().cloned());
    for cs in &ex.aux_ctors {
        ctors.extend(cs.iter().cloned());
    }
    let aux = std::mem::take(&mut ex.aux);
    Ok(Some(Expanded {
        work: InductiveDecl {
            types,
            ctors,
            recs: d.recs.clone(),
            line: d.line,
        },
        aux,
    }))
}

impl Expander<'_, '_> {
    fn rewrite_ctor_type(&mut self, ty: ExprId) -> Result<ExprId, KernelError> {
        let mut t = ty;
        for i in 0..self.nparams {
            let ExprNode::Pi(_, body) = self.tc.s.node(t) else {
                return ill("constructor has fewer arguments than parameters");
            };
            t = subst::instantiate(self.tc.s, body, &[self.params[i]]);
        }
        let r = self.replace(t)?;
        Ok(self.tc.mk_pi(&self.params.clone(), r))
    }

    fn mentions_block(&self, e: ExprId) -> bool {
        let aux_names: Vec<NameId> = self.aux.iter().map(|a| a.name).collect();
        subst::mentions_const(self.tc.s, e, &self.block)
            || subst::mentions_const(self.tc.s, e, &aux_names)
    }

    /// Top-down replacement of nested occurrences `J As` (pre-order, like Lean's `replace`).
    fn replace(&mut self, e: ExprId) -> Result<ExprId, KernelError> {
        if let Some(&r) = self.memo.get(&e) {
            return Ok(r);
        }
        let r = self.replace_uncached(e)?;
        self.memo.insert(e, r);
        Ok(r)
    }

    fn replace_uncached(&mut self, e: ExprId) -> Result<ExprId, KernelError> {
        self.tc.tick()?;
        if !self.mentions_block(e) {
            return Ok(e);
        }
        if let Some(r) = self.nested_occurrence(e)? {
            return Ok(r);
        }
        let s = &mut *self.tc.s;
        Ok(match s.node(e) {
            ExprNode::App(f, a) => {
                let (f2, a2) = (self.replace(f)?, self.replace(a)?);
                self.tc.s.app(f2, a2)
            }
            ExprNode::Lam(t, b) => {
                let (t2, b2) = (self.replace(t)?, self.replace(b)?);
                self.tc.s.expr(ExprNode::Lam(t2, b2))
            }
            ExprNode::Pi(t, b) => {
                let (t2, b2) = (self.replace(t)?, self.replace(b)?);
                self.tc.s.expr(ExprNode::Pi(t2, b2))
            }
            ExprNode::Let(t, v, b) => {
                let (t2, v2, b2) = (self.replace(t)?, self.replace(v)?, self.replace(b)?);
                self.tc.s.expr(ExprNode::Let(t2, v2, b2))
            }
            ExprNode::Proj(n, i, x) => {
                let x2 = self.replace(x)?;
                self.tc.s.expr(ExprNode::Proj(n, i, x2))
            }
            _ => e,
        })
    }

    fn nested_occurrence(&mut self, e: ExprId) -> Result<Option<ExprId>, KernelError> {
        let (h, args) = self.tc.s.unfold_apps(e);
        let ExprNode::Const(j, jls) = self.tc.s.node(h) else {
            return Ok(None);
        };
        if self.block.contains(&j) || self.aux.iter().any(|a| a.name == j) {
            return Ok(None);
        }
        let Some(jc) = self.tc.env.get(j) else {
            return Ok(None);
        };
        let ConstKind::Induct {
            num_params,
            ctors: jctors,
            ..
        } = &jc.kind
        else {
            return Ok(None);
        };
        let jnp = *num_params as usize;
        if args.len() < jnp || !args[..jnp].iter().any(|&a| self.mentions_block(a)) {
            return Ok(None);
        }
        if args[..jnp]
            .iter()
            .any(|&a| self.tc.s.info(a).loose_bvar_range > 0)
        {
            return ill(
                "invalid nested inductive: the nested occurrence mentions variables that are not parameters",
            );
        }
        let jls: Vec<LevelId> = self.tc.s.level_list(jls).to_vec();
        if jls.len() != jc.lparams.len() {
            return ill("nested occurrence with the wrong number of universe arguments");
        }
        let key = self.tc.s.apps(h, &args[..jnp]);
        let k = match self.cache.get(&key) {
            Some(&k) => k,
            None => {
                if self.aux.len() >= MAX_AUX {
                    return Err(KernelError::Resource(
                        "too many auxiliary nested types".into(),
                    ));
                }
                let (jlp, jty, jctors) = (jc.lparams.clone(), jc.ty, jctors.clone());
                let k = self.aux.len();
                // A fresh name: never one the environment already holds.
                let mut i = k as u64 + 1;
                let mut name = self.tc.s.name(crate::store::NameNode::Num(self.prefix, i));
                while self.tc.env.contains(name)
                    || self.block.contains(&name)
                    || self.tc.env.names().iter().any(|&n| {
                        matches!(self.tc.s.name_node(n), crate::store::NameNode::Str(p, _) if *p == name)
                    })
                {
                    i += 1_000_000;
                    name = self.tc.s.name(crate::store::NameNode::Num(self.prefix, i));
                }
                let params = self.params.clone();
                // aux : (params) -> J's type with J's parameters := As.
                let mut ty = subst::instantiate_lparams(self.tc.s, jty, &jlp, &jls);
                ty = instantiate_pis(self.tc.s, ty, &args[..jnp])?;
                let aux_ty = self.tc.mk_pi(&params, ty);
                let j_app = subst::abstract_fvars(self.tc.s, key, &params);
                let mut ctors = Vec::new();
                let mut aux_ctors = Vec::new();
                for (ci, &jcn) in jctors.iter().enumerate() {
                    let Some(jk) = self.tc.env.get(jcn) else {
                        return ill("nested occurrence of a type with an undeclared constructor");
                    };
                    let suffix = match self.tc.s.name_node(jcn) {
                        crate::store::NameNode::Str(_, s) => s.to_string(),
                        _ => format!("c{ci}"),
                    };
                    let cname = self.tc.s.name_str(name, &suffix);
                    let mut cty = subst::instantiate_lparams(self.tc.s, jk.ty, &jlp, &jls);
                    cty = instantiate_pis(self.tc.s, cty, &args[..jnp])?;
                    let nfields = count_pis(self.tc.s, cty) as u32;
                    let cty = self.tc.mk_pi(&params, cty);
                    let jc_const = self.tc.s.constant(jcn, &jls);
                    let jc_app = self.tc.s.apps(jc_const, &args[..jnp]);
                    let jc_app = subst::abstract_fvars(self.tc.s, jc_app, &params);
                    ctors.push((cname, jc_app));
                    aux_ctors.push(Constant {
                        name: cname,
                        lparams: self.lparams.clone(),
                        ty: cty,
                        kind: ConstKind::Ctor {
                            induct: name,
                            cidx: ci as u32,
                            num_params: self.nparams as u32,
                            num_fields: nfields,
                        },
                        is_unsafe: false,
                    });
                }
                self.aux_types.push(Constant {
                    name,
                    lparams: self.lparams.clone(),
                    ty: aux_ty,
                    kind: ConstKind::Induct {
                        num_params: self.nparams as u32,
                        num_indices: 0,
                        all: Vec::new(),
                        ctors: ctors.iter().map(|c| c.0).collect(),
                        is_rec: false,
                        is_reflexive: false,
                        num_nested: 0,
                    },
                    is_unsafe: false,
                });
                self.aux_ctors.push(aux_ctors);
                self.aux.push(Aux { name, j_app, ctors });
                self.cache.insert(key, k);
                k
            }
        };
        let ac = self.tc.s.constant(self.aux[k].name, &self.us);
        let mut r = self.tc.s.apps(ac, &self.params.clone());
        for &a in &args[jnp..] {
            let a2 = self.replace(a)?;
            r = self.tc.s.app(r, a2);
        }
        Ok(Some(r))
    }
}

fn instantiate_pis(s: &mut Store, mut t: ExprId, args: &[ExprId]) -> Result<ExprId, KernelError> {
    for &a in args {
        let ExprNode::Pi(_, b) = s.node(t) else {
            return ill("nested occurrence applies a type to too many parameters");
        };
        t = subst::instantiate(s, b, &[a]);
    }
    Ok(t)
}

fn count_pis(s: &Store, mut t: ExprId) -> usize {
    let mut n = 0;
    while let ExprNode::Pi(_, b) = s.node(t) {
        n += 1;
        t = b;
    }
    n
}

/// Translates auxiliary constants back: `aux ps` -> `J As[ps]`, `aux.c ps` -> `J.c As[ps]`,
/// and renames auxiliary recursors with `rename`.
pub fn restore(
    s: &mut Store,
    e: ExprId,
    aux: &[Aux],
    nparams: usize,
    rename: &[(NameId, NameId)],
) -> ExprId {
    let mut map: FxHashMap<NameId, ExprId> = FxHashMap::default();
    for a in aux {
        map.insert(a.name, a.j_app);
        for &(c, app) in &a.ctors {
            map.insert(c, app);
        }
    }
    let mut cache = FxHashMap::default();
    restore_go(s, e, &map, nparams, rename, &mut cache)
}

fn restore_go(
    s: &mut Store,
    e: ExprId,
    map: &FxHashMap<NameId, ExprId>,
    np: usize,
    rename: &[(NameId, NameId)],
    cache: &mut FxHashMap<ExprId, ExprId>,
) -> ExprId {
    if let Some(&r) = cache.get(&e) {
        return r;
    }
    let r = match s.node(e) {
        ExprNode::App(..) | ExprNode::Const(..) => {
            let (h, args) = s.unfold_apps(e);
            let args: Vec<ExprId> = args
                .iter()
                .map(|&a| restore_go(s, a, map, np, rename, cache))
                .collect();
            match s.node(h) {
                ExprNode::Const(n, _) if map.contains_key(&n) && args.len() >= np => {
                    let body = map[&n];
                    // The template's loose variables are the parameters, outermost highest.
                    let b = subst::instantiate_rev(s, body, &args[..np]);
                    s.apps(b, &args[np..])
                }
                ExprNode::Const(n, ls) => {
                    let h2 = match rename.iter().find(|(a, _)| *a == n) {
                        Some(&(_, to)) => s.expr(ExprNode::Const(to, ls)),
                        None => h,
                    };
                    s.apps(h2, &args)
                }
                _ => {
                    let h2 = restore_go(s, h, map, np, rename, cache);
                    s.apps(h2, &args)
                }
            }
        }
        ExprNode::Lam(t, b) => {
            let (t2, b2) = (
                restore_go(s, t, map, np, rename, cache),
                restore_go(s, b, map, np, rename, cache),
            );
            s.expr(ExprNode::Lam(t2, b2))
        }
        ExprNode::Pi(t, b) => {
            let (t2, b2) = (
                restore_go(s, t, map, np, rename, cache),
                restore_go(s, b, map, np, rename, cache),
            );
            s.expr(ExprNode::Pi(t2, b2))
        }
        ExprNode::Let(t, v, b) => {
            let (t2, v2, b2) = (
                restore_go(s, t, map, np, rename, cache),
                restore_go(s, v, map, np, rename, cache),
                restore_go(s, b, map, np, rename, cache),
            );
            s.expr(ExprNode::Let(t2, v2, b2))
        }
        ExprNode::Proj(n, i, x) => {
            let x2 = restore_go(s, x, map, np, rename, cache);
            s.expr(ExprNode::Proj(n, i, x2))
        }
        _ => e,
    };
    cache.insert(e, r);
    r
}

//! Weak-head normalisation: beta, zeta, projections, iota (recursors, K, structure eta),
//! quotient reduction, delta, and Nat literal arithmetic.

use num_bigint::BigUint;

use super::TypeChecker;
use crate::env::{ConstKind, QuotKind};
use crate::error::KernelError;
use crate::store::{ExprId, ExprNode, LevelId, NameId};
use crate::subst;

impl TypeChecker<'_> {
    /// Weak-head normal form without delta (definition unfolding).
    pub fn whnf_core(&mut self, e: ExprId) -> Result<ExprId, KernelError> {
        self.whnf_core_opt(e, false)
    }

    /// `whnf_core`; with `cheap_proj` projections only reduce their argument with `whnf_core`.
    pub fn whnf_core_opt(&mut self, e: ExprId, cheap_proj: bool) -> Result<ExprId, KernelError> {
        match self.s.node(e) {
            ExprNode::BVar(_)
            | ExprNode::Sort(_)
            | ExprNode::Pi(..)
            | ExprNode::Lam(..)
            | ExprNode::NatLit(_)
            | ExprNode::StrLit(_)
            | ExprNode::Const(..) => {
                return Ok(e);
            }
            ExprNode::FVar(_) => {
                return match self.local(e).and_then(|l| l.val) {
                    Some(v) => self.whnf_core_opt(v, cheap_proj),
                    None => Ok(e),
                };
            }
            _ => {}
        }
        if let Some(&r) = self.whnf_core_cache.get(&e) {
            return Ok(r);
        }
        self.tick()?;
        let r = match self.s.node(e) {
            ExprNode::Let(_, v, b) => {
                let b = subst::instantiate(self.s, b, &[v]);
                self.whnf_core_opt(b, cheap_proj)?
            }
            ExprNode::Proj(_, idx, x) => match self.reduce_proj(idx, x, cheap_proj)? {
                Some(r) => self.whnf_core_opt(r, cheap_proj)?,
                None => e,
            },
            ExprNode::App(..) => {
                let (f0, args) = self.s.unfold_apps(e);
                let f = self.whnf_core_opt(f0, cheap_proj)?;
                if let ExprNode::Lam(..) = self.s.node(f) {
                    // Beta: consume as many arguments as there are leading lambdas.
                    let mut body = f;
                    let mut n = 0;
                    while n < args.len() {
                        match self.s.node(body) {
                            ExprNode::Lam(_, b) => {
                                body = b;
                                n += 1;
                            }
                            _ => break,
                        }
                    }
                    let b = subst::instantiate_rev(self.s, body, &args[..n]);
                    let r = self.s.apps(b, &args[n..]);
                    self.whnf_core_opt(r, cheap_proj)?
                } else if f == f0 {
                    match self.reduce_recursor(e, cheap_proj)? {
                        Some(r) => self.whnf_core_opt(r, cheap_proj)?,
                        None => e,
                    }
                } else {
                    let r = self.s.apps(f, &args);
                    self.whnf_core_opt(r, cheap_proj)?
                }
            }
            _ => e,
        };
        if !cheap_proj {
            self.whnf_core_cache.insert(e, r);
        }
        Ok(r)
    }

    fn reduce_proj(
        &mut self,
        idx: u32,
        x: ExprId,
        cheap_proj: bool,
    ) -> Result<Option<ExprId>, KernelError> {
        let mut c = if cheap_proj {
            self.whnf_core_opt(x, cheap_proj)?
        } else {
            self.whnf(x)?
        };
        if let ExprNode::StrLit(_) = self.s.node(c) {
            c = self.string_lit_to_ctor(c)?;
        }
        let (head, args) = self.s.unfold_apps(c);
        if let ExprNode::Const(n, _) = self.s.node(head)
            && let Some(k) = self.env.get(n)
            && let ConstKind::Ctor { num_params, .. } = k.kind
        {
            let i = num_params as usize + idx as usize;
            return Ok(args.get(i).copied());
        }
        Ok(None)
    }

    /// Full weak-head normal form (with delta and literal arithmetic).
    pub fn whnf(&mut self, e: ExprId) -> Result<ExprId, KernelError> {
        match self.s.node(e) {
            ExprNode::BVar(_)
            | ExprNode::Sort(_)
            | ExprNode::Pi(..)
            | ExprNode::Lam(..)
            | ExprNode::NatLit(_)
            | ExprNode::StrLit(_) => {
                return Ok(e);
            }
            _ => {}
        }
        if let Some(&r) = self.whnf_cache.get(&e) {
            return Ok(r);
        }
        let mut t = e;
        let r = loop {
            self.tick()?;
            let t1 = self.whnf_core(t)?;
            if let Some(v) = self.reduce_nat(t1)? {
                break v;
            }
            match self.unfold_definition(t1)? {
                Some(next) => t = next,
                None => break t1,
            }
        };
        self.whnf_cache.insert(e, r);
        Ok(r)
    }

    /// Unfolds the head definition of `e` (delta), if it is an unfoldable constant.
    pub fn unfold_definition(&mut self, e: ExprId) -> Result<Option<ExprId>, KernelError> {
        let (head, args) = self.s.unfold_apps(e);
        let (n, ls) = match self.s.node(head) {
            ExprNode::Const(n, ls) => (n, ls),
            _ => return Ok(None),
        };
        let Some(c) = self.env.get(n) else {
            return Ok(None);
        };
        let Some(v) = Self::unfoldable_value(c) else {
            return Ok(None);
        };
        let us: Vec<LevelId> = self.s.level_list(ls).to_vec();
        if us.len() != c.lparams.len() {
            return Ok(None);
        }
        let v = subst::instantiate_lparams(self.s, v, &c.lparams, &us);
        Ok(Some(self.s.apps(v, &args)))
    }

    /// Iota reduction for recursors and quotient eliminators.
    fn reduce_recursor(
        &mut self,
        e: ExprId,
        cheap_proj: bool,
    ) -> Result<Option<ExprId>, KernelError> {
        let (head, args) = self.s.unfold_apps(e);
        let (n, ls) = match self.s.node(head) {
            ExprNode::Const(n, ls) => (n, ls),
            _ => return Ok(None),
        };
        let Some(c) = self.env.get(n) else {
            return Ok(None);
        };
        match &c.kind {
            ConstKind::Quot(QuotKind::Lift) => self.reduce_quot(&args, 5, 3),
            ConstKind::Quot(QuotKind::Ind) => self.reduce_quot(&args, 4, 3),
            ConstKind::Rec { .. } => self.reduce_rec(n, ls, &args, cheap_proj),
            _ => Ok(None),
        }
    }

    fn reduce_quot(
        &mut self,
        args: &[ExprId],
        major_idx: usize,
        f_idx: usize,
    ) -> Result<Option<ExprId>, KernelError> {
        let Some(&major) = args.get(major_idx) else {
            return Ok(None);
        };
        let m = self.whnf(major)?;
        let (mh, margs) = self.s.unfold_apps(m);
        match self.s.node(mh) {
            ExprNode::Const(n, _) if n == self.wk.quot_mk && margs.len() == 3 => {}
            _ => return Ok(None),
        }
        let r = self.s.app(args[f_idx], margs[2]);
        Ok(Some(self.s.apps(r, &args[major_idx + 1..])))
    }

    fn reduce_rec(
        &mut self,
        rn: NameId,
        ls: crate::store::LevelsId,
        args: &[ExprId],
        _cheap: bool,
    ) -> Result<Option<ExprId>, KernelError> {
        let rec = self.constant(rn)?;
        let ConstKind::Rec {
            all,
            num_params,
            num_indices,
            num_motives,
            num_minors,
            rules,
            k,
        } = &rec.kind
        else {
            return Ok(None);
        };
        let (np, nmot, nmin) = (
            *num_params as usize,
            *num_motives as usize,
            *num_minors as usize,
        );
        let major_idx = np + nmot + nmin + *num_indices as usize;
        let Some(&major0) = args.get(major_idx) else {
            return Ok(None);
        };
        let mut major = major0;
        if *k && let Some(m) = self.ctor_when_k(rn, args, major)? {
            major = m;
        }
        major = self.whnf(major)?;
        match self.s.node(major) {
            ExprNode::NatLit(i) => major = self.nat_lit_to_ctor(i),
            ExprNode::StrLit(_) => major = self.string_lit_to_ctor(major)?,
            _ => {}
        }
        let (mut mh, mut margs) = self.s.unfold_apps(major);
        let is_ctor = |tc: &Self, h: ExprId| match tc.s.node(h) {
            ExprNode::Const(n, _) => {
                matches!(tc.env.get(n).map(|c| &c.kind), Some(ConstKind::Ctor { .. }))
            }
            _ => false,
        };
        if !is_ctor(self, mh) {
            // Structure eta: a major premise of a structure type reduces as its constructor.
            let Some(m) = self.ctor_when_structure(all, major)? else {
                return Ok(None);
            };
            (mh, margs) = self.s.unfold_apps(m);
        }
        let ExprNode::Const(cn, _) = self.s.node(mh) else {
            return Ok(None);
        };
        let Some(rule) = rules.iter().find(|r| r.ctor == cn) else {
            return Ok(None);
        };
        let nf = rule.nfields as usize;
        if margs.len() < nf {
            return Ok(None);
        }
        let us: Vec<LevelId> = self.s.level_list(ls).to_vec();
        if us.len() != rec.lparams.len() {
            return Ok(None);
        }
        let rhs = subst::instantiate_lparams(self.s, rule.rhs, &rec.lparams, &us);
        let mut r = self.s.apps(rhs, &args[..np + nmot + nmin]);
        r = self.s.apps(r, &margs[margs.len() - nf..]);
        r = self.s.apps(r, &args[major_idx + 1..]);
        Ok(Some(r))
    }

    /// K-like reduction: a proof of a K-like proposition reduces as its only constructor
    /// when its type matches the constructor's (`to_cnstr_when_K`).
    fn ctor_when_k(
        &mut self,
        rn: NameId,
        args: &[ExprId],
        major: ExprId,
    ) -> Result<Option<ExprId>, KernelError> {
        let rec = self.constant(rn)?;
        let ConstKind::Rec {
            all, num_params, ..
        } = &rec.kind
        else {
            return Ok(None);
        };
        let mt = self.infer(major)?;
        let mt = self.whnf(mt)?;
        let (h, targs) = self.s.unfold_apps(mt);
        let (iname, ils) = match self.s.node(h) {
            ExprNode::Const(n, ls) if all.contains(&n) => (n, ls),
            _ => return Ok(None),
        };
        let ind = self.constant(iname)?;
        let ConstKind::Induct { ctors, .. } = &ind.kind else {
            return Ok(None);
        };
        let Some(&c0) = ctors.first() else {
            return Ok(None);
        };
        let np = *num_params as usize;
        if targs.len() < np {
            return Ok(None);
        }
        let us: Vec<LevelId> = self.s.level_list(ils).to_vec();
        let cc = self.s.constant(c0, &us);
        let new = self.s.apps(cc, &targs[..np]);
        let nt = self.infer(new)?;
        let _ = args;
        if self.is_def_eq(mt, nt)? {
            Ok(Some(new))
        } else {
            Ok(None)
        }
    }

    fn ctor_when_structure(
        &mut self,
        all: &[NameId],
        major: ExprId,
    ) -> Result<Option<ExprId>, KernelError> {
        let mt = self.infer(major)?;
        let mt = self.whnf(mt)?;
        let (h, targs) = self.s.unfold_apps(mt);
        let (iname, ils) = match self.s.node(h) {
            ExprNode::Const(n, ls) if all.contains(&n) => (n, ls),
            _ => return Ok(None),
        };
        let Some((c0, np, nf)) = self.structure_like(iname) else {
            return Ok(None);
        };
        if targs.len() != np || self.is_prop(mt)? {
            return Ok(None);
        }
        let us: Vec<LevelId> = self.s.level_list(ils).to_vec();
        let cc = self.s.constant(c0, &us);
        let mut r = self.s.apps(cc, &targs);
        for i in 0..nf {
            let p = self.s.expr(ExprNode::Proj(iname, i as u32, major));
            r = self.s.app(r, p);
        }
        Ok(Some(r))
    }

    /// `(ctor, num_params, num_fields)` when `n` is a non-recursive single-constructor
    /// inductive without indices.
    pub fn structure_like(&self, n: NameId) -> Option<(NameId, usize, usize)> {
        let c = self.env.get(n)?;
        let ConstKind::Induct {
            num_indices: 0,
            ctors,
            is_rec: false,
            num_params,
            ..
        } = &c.kind
        else {
            return None;
        };
        if ctors.len() != 1 {
            return None;
        }
        let k = self.env.get(ctors[0])?;
        let ConstKind::Ctor { num_fields, .. } = k.kind else {
            return None;
        };
        Some((ctors[0], *num_params as usize, num_fields as usize))
    }

    /// `n` as `Nat.zero` or `Nat.succ (n-1)`.
    pub fn nat_lit_to_ctor(&mut self, i: u32) -> ExprId {
        let v = self.s.nat_value(i).clone();
        if v == BigUint::from(0u32) {
            self.s.constant(self.wk.nat_zero, &[])
        } else {
            let p = self.s.nat_lit(v - 1u32);
            let succ = self.s.constant(self.wk.nat_succ, &[]);
            self.s.app(succ, p)
        }
    }

    /// A string literal as `String.mk [Char.ofNat c, ...]` (or `String.ofList` in newer preludes).
    pub fn string_lit_to_ctor(&mut self, e: ExprId) -> Result<ExprId, KernelError> {
        let ExprNode::StrLit(i) = self.s.node(e) else {
            return Ok(e);
        };
        let chars: Vec<u32> = self.s.str_value(i).chars().map(|c| c as u32).collect();
        let z = self.s.zero();
        let char_ty = self.s.constant(self.wk.char, &[]);
        let nil = self.s.constant(self.wk.list_nil, &[z]);
        let cons = self.s.constant(self.wk.list_cons, &[z]);
        let of_nat = self.s.constant(self.wk.char_of_nat, &[]);
        let mut l = self.s.app(nil, char_ty);
        for &c in chars.iter().rev() {
            let n = self.s.nat_lit(BigUint::from(c));
            let ch = self.s.app(of_nat, n);
            l = self.s.apps(cons, &[char_ty, ch, l]);
        }
        let mk = if self.env.contains(self.wk.string_mk) {
            self.wk.string_mk
        } else {
            self.wk.string_of_list
        };
        let mk = self.s.constant(mk, &[]);
        Ok(self.s.app(mk, l))
    }
}

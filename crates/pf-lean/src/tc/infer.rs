//! Type inference (`infer_type_core` of Lean 4's kernel), with and without checking.

use super::TypeChecker;
use crate::env::ConstKind;
use crate::error::{KernelError, ill};
use crate::level;
use crate::store::{ExprId, ExprNode, LevelId, LevelNode};
use crate::subst;

impl TypeChecker<'_> {
    /// Infers the type of `e`, checking it is well-typed.
    pub fn check(&mut self, e: ExprId) -> Result<ExprId, KernelError> {
        self.infer_core(e, false)
    }

    /// Infers the type of `e`, assuming it is well-typed.
    pub fn infer(&mut self, e: ExprId) -> Result<ExprId, KernelError> {
        self.infer_core(e, true)
    }

    fn infer_core(&mut self, e: ExprId, only: bool) -> Result<ExprId, KernelError> {
        if self.s.info(e).loose_bvar_range > 0 {
            return ill("term has a loose bound variable");
        }
        let cache = if only {
            &self.infer_only_cache
        } else {
            &self.infer_cache
        };
        if let Some(&t) = cache.get(&e) {
            return Ok(t);
        }
        self.tick()?;
        let t = match self.s.node(e) {
            ExprNode::BVar(_) => return ill("unexpected bound variable"),
            ExprNode::FVar(_) => match self.local_type(e) {
                Some(t) => t,
                None => return ill("unknown free variable"),
            },
            ExprNode::Sort(l) => {
                if !only {
                    self.check_level(l)?;
                }
                let sl = self.s.succ(l);
                self.s.sort(sl)
            }
            ExprNode::Const(n, ls) => {
                let c = self.constant(n)?;
                let us: Vec<LevelId> = self.s.level_list(ls).to_vec();
                if us.len() != c.lparams.len() {
                    return ill(format!(
                        "constant `{}` expects {} universe arguments, got {}",
                        self.s.name_to_string(n),
                        c.lparams.len(),
                        us.len()
                    ));
                }
                if !only {
                    for &u in &us {
                        self.check_level(u)?;
                    }
                }
                self.instantiate_type(c, &us)
            }
            ExprNode::App(..) => self.infer_app(e, only)?,
            ExprNode::Lam(..) => self.infer_lambda(e, only)?,
            ExprNode::Pi(..) => self.infer_pi(e, only)?,
            ExprNode::Let(ty, val, body) => {
                if !only {
                    self.ensure_sort_of(ty)?;
                    let vt = self.check(val)?;
                    if !self.is_def_eq(vt, ty)? {
                        return ill("let value does not have the declared type");
                    }
                }
                let b = subst::instantiate(self.s, body, &[val]);
                self.infer_core(b, only)?
            }
            ExprNode::NatLit(_) => {
                self.constant(self.wk.nat).map_err(|_| {
                    KernelError::Ill("Nat literal used but `Nat` is not declared".into())
                })?;
                self.s.constant(self.wk.nat, &[])
            }
            ExprNode::StrLit(_) => {
                self.constant(self.wk.string).map_err(|_| {
                    KernelError::Ill("String literal used but `String` is not declared".into())
                })?;
                self.s.constant(self.wk.string, &[])
            }
            ExprNode::Proj(sn, idx, x) => self.infer_proj(sn, idx, x, only)?,
        };
        let cache = if only {
            &mut self.infer_only_cache
        } else {
            &mut self.infer_cache
        };
        cache.insert(e, t);
        Ok(t)
    }

    /// Fails when `l` mentions a universe parameter not in scope.
    pub fn check_level(&self, l: LevelId) -> Result<(), KernelError> {
        if let Some(ps) = &self.lparams
            && let Some(p) = level::undeclared_param(self.s, l, ps)
        {
            return ill(format!(
                "undeclared universe parameter `{}`",
                self.s.name_to_string(p)
            ));
        }
        Ok(())
    }

    /// Infers the type of `ty` and requires it to be a sort; returns the level.
    pub fn ensure_sort_of(&mut self, ty: ExprId) -> Result<LevelId, KernelError> {
        let t = self.check(ty)?;
        self.ensure_sort(t)
    }

    /// Reduces `t` to a sort, returning its level.
    pub fn ensure_sort(&mut self, t: ExprId) -> Result<LevelId, KernelError> {
        if let ExprNode::Sort(l) = self.s.node(t) {
            return Ok(l);
        }
        let w = self.whnf(t)?;
        match self.s.node(w) {
            ExprNode::Sort(l) => Ok(l),
            _ => ill("type expected (a sort), found a term that does not reduce to `Sort`"),
        }
    }

    /// Reduces `t` to a Pi type.
    pub fn ensure_pi(&mut self, t: ExprId) -> Result<(ExprId, ExprId), KernelError> {
        if let ExprNode::Pi(a, b) = self.s.node(t) {
            return Ok((a, b));
        }
        let w = self.whnf(t)?;
        match self.s.node(w) {
            ExprNode::Pi(a, b) => Ok((a, b)),
            _ => ill("function expected: the type of the applied term is not a Pi type"),
        }
    }

    fn infer_app(&mut self, e: ExprId, only: bool) -> Result<ExprId, KernelError> {
        let (f, args) = self.s.unfold_apps(e);
        let mut ft = self.infer_core(f, only)?;
        let mut j = 0;
        for i in 0..args.len() {
            match self.s.node(ft) {
                ExprNode::Pi(dom, body) => {
                    if !only {
                        let dom = subst::instantiate_rev(self.s, dom, &args[j..i]);
                        let at = self.check(args[i])?;
                        if !self.is_def_eq(at, dom)? {
                            return ill("application argument type mismatch");
                        }
                    }
                    ft = body;
                }
                _ => {
                    let t = subst::instantiate_rev(self.s, ft, &args[j..i]);
                    let (dom, body) = self.ensure_pi(t)?;
                    if !only {
                        let at = self.check(args[i])?;
                        if !self.is_def_eq(at, dom)? {
                            return ill("application argument type mismatch");
                        }
                    }
                    ft = body;
                    j = i;
                }
            }
        }
        Ok(subst::instantiate_rev(self.s, ft, &args[j..]))
    }

    fn infer_lambda(&mut self, mut e: ExprId, only: bool) -> Result<ExprId, KernelError> {
        let mut xs = Vec::new();
        while let ExprNode::Lam(ty, body) = self.s.node(e) {
            let ty = subst::instantiate_rev(self.s, ty, &xs);
            if !only {
                self.ensure_sort_of(ty)?;
            }
            let x = self.mk_local(ty, None);
            xs.push(x);
            e = body;
        }
        let b = subst::instantiate_rev(self.s, e, &xs);
        let bt = self.infer_core(b, only)?;
        Ok(self.mk_pi(&xs, bt))
    }

    fn infer_pi(&mut self, mut e: ExprId, only: bool) -> Result<ExprId, KernelError> {
        let mut xs = Vec::new();
        let mut ls = Vec::new();
        while let ExprNode::Pi(ty, body) = self.s.node(e) {
            let ty = subst::instantiate_rev(self.s, ty, &xs);
            let t = self.infer_core(ty, only)?;
            ls.push(self.ensure_sort(t)?);
            let x = self.mk_local(ty, None);
            xs.push(x);
            e = body;
        }
        let b = subst::instantiate_rev(self.s, e, &xs);
        let bt = self.infer_core(b, only)?;
        let mut r = self.ensure_sort(bt)?;
        for &l in ls.iter().rev() {
            r = self.s.level(LevelNode::IMax(l, r));
        }
        Ok(self.s.sort(r))
    }

    /// True when `e` is a proof (its type is a proposition).
    pub fn is_proof(&mut self, e: ExprId) -> Result<bool, KernelError> {
        let t = self.infer(e)?;
        self.is_prop(t)
    }

    /// True when the type `t` lives in `Prop`.
    pub fn is_prop(&mut self, t: ExprId) -> Result<bool, KernelError> {
        let tt = self.infer(t)?;
        let w = self.whnf(tt)?;
        Ok(match self.s.node(w) {
            ExprNode::Sort(l) => level::is_zero(self.s, l),
            _ => false,
        })
    }

    fn infer_proj(
        &mut self,
        sn: crate::store::NameId,
        idx: u32,
        x: ExprId,
        only: bool,
    ) -> Result<ExprId, KernelError> {
        let xt = self.infer_core(x, only)?;
        let xt = self.whnf(xt)?;
        let (head, args) = self.s.unfold_apps(xt);
        let (iname, ls) = match self.s.node(head) {
            ExprNode::Const(n, ls) => (n, ls),
            _ => return ill("projection of a term whose type is not an inductive type"),
        };
        if iname != sn {
            return ill("projection names a structure different from the type of its argument");
        }
        let ind = self.constant(iname)?;
        let (np, ctors) = match &ind.kind {
            ConstKind::Induct {
                num_params,
                num_indices: 0,
                ctors,
                is_rec: false,
                ..
            } if ctors.len() == 1 => (*num_params, ctors.clone()),
            _ => {
                return ill(format!(
                    "projection from `{}`, which is not a structure",
                    self.s.name_to_string(iname)
                ));
            }
        };
        if args.len() != np as usize {
            return ill("projection: structure type applied to the wrong number of parameters");
        }
        let ctor = self.constant(ctors[0])?;
        let us: Vec<LevelId> = self.s.level_list(ls).to_vec();
        let mut r = self.instantiate_type(ctor, &us);
        for &a in &args {
            let (_, b) = self.ensure_pi(r)?;
            r = subst::instantiate(self.s, b, &[a]);
        }
        let is_prop_type = self.is_prop(xt)?;
        for i in 0..idx {
            let (dom, b) = self.ensure_pi(r)?;
            // A proof cannot be projected to data that later fields depend on.
            if is_prop_type && !self.is_prop(dom)? && subst::has_loose_bvar(self.s, b, 0) {
                return ill("projection from a proof to data a later field depends on");
            }
            let p = self.s.expr(ExprNode::Proj(iname, i, x));
            r = subst::instantiate(self.s, b, &[p]);
        }
        let (dom, _) = match self.ensure_pi(r) {
            Ok(v) => v,
            Err(KernelError::Ill(_)) => return ill(format!("projection index {idx} out of range")),
            Err(e) => return Err(e),
        };
        if is_prop_type && !self.is_prop(dom)? {
            return ill("projection of data out of a proof");
        }
        Ok(dom)
    }
}

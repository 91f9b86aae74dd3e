//! Constructor checks (parameters, universes, strict positivity) and recursor generation
//! (motives, minor premises, computation rules) over free variables for the block's parameters.

use super::{GenRec, TypeInfo};
use crate::env::{ConstKind, Constant, InductiveDecl, RecRule};
use crate::error::{KernelError, ill};
use crate::level;
use crate::store::{ExprId, ExprNode, LevelId, LevelNode, NameId};
use crate::subst;
use crate::tc::TypeChecker;

/// Shared state for constructor checks and recursor generation.
pub(super) struct Ctx {
    types: Vec<NameId>,
    ind_consts: Vec<ExprId>,
    params: Vec<ExprId>,
    us: Vec<LevelId>,
    nparams: usize,
}

impl Ctx {
    pub(super) fn new(
        tc: &mut TypeChecker,
        types: &[NameId],
        us: &[LevelId],
        nparams: usize,
        d: &InductiveDecl,
    ) -> Result<Self, KernelError> {
        let ind_consts = types.iter().map(|&n| tc.s.constant(n, us)).collect();
        let mut params = Vec::new();
        let mut ty = tc.whnf(d.types[0].ty)?;
        for _ in 0..nparams {
            let ExprNode::Pi(dom, body) = tc.s.node(ty) else {
                return ill("missing parameter");
            };
            let x = tc.mk_local(dom, None);
            params.push(x);
            let b = subst::instantiate(tc.s, body, &[x]);
            ty = tc.whnf(b)?;
        }
        Ok(Ctx {
            types: types.to_vec(),
            ind_consts,
            params,
            us: us.to_vec(),
            nparams,
        })
    }

    fn has_ind_occ(&self, tc: &TypeChecker, e: ExprId) -> bool {
        subst::mentions_const(tc.s, e, &self.types)
    }

    /// `I params indices` for a type of the block: the type's position.
    fn valid_ind_app(&self, tc: &TypeChecker, t: ExprId, nidx: &[usize]) -> Option<usize> {
        let (h, args) = tc.s.unfold_apps(t);
        let i = self.ind_consts.iter().position(|&c| c == h)?;
        if args.len() != self.nparams + nidx[i] {
            return None;
        }
        if args[..self.nparams] != self.params[..] {
            return None;
        }
        if args[self.nparams..]
            .iter()
            .any(|&a| self.has_ind_occ(tc, a))
        {
            return None;
        }
        Some(i)
    }

    /// Strict positivity of a constructor field's type; returns (recursive, reflexive).
    fn check_positivity(
        &self,
        tc: &mut TypeChecker,
        t: ExprId,
        nidx: &[usize],
        depth: usize,
    ) -> Result<(bool, bool), KernelError> {
        let t = tc.whnf(t)?;
        if !self.has_ind_occ(tc, t) {
            return Ok((false, false));
        }
        if let ExprNode::Pi(dom, body) = tc.s.node(t) {
            if self.has_ind_occ(tc, dom) {
                return ill("non-positive occurrence of the inductive type being declared");
            }
            let x = tc.mk_local(dom, None);
            let b = subst::instantiate(tc.s, body, &[x]);
            let (r, _) = self.check_positivity(tc, b, nidx, depth + 1)?;
            return Ok((r, r));
        }
        if self.valid_ind_app(tc, t, nidx).is_some() {
            return Ok((true, depth > 0));
        }
        // An occurrence inside another inductive type's arguments is a nested inductive.
        if let Some((h, _)) = tc.s.head_const(t)
            && !self.types.contains(&h)
            && matches!(
                tc.env.get(h).map(|c| &c.kind),
                Some(ConstKind::Induct { .. })
            )
        {
            return Err(KernelError::Unsupported("nested inductive types".into()));
        }
        ill("invalid occurrence of the inductive type being declared")
    }

    /// Checks a constructor; returns (number of fields, has recursive field, has reflexive field).
    pub(super) fn check_ctor(
        &self,
        tc: &mut TypeChecker,
        ti: usize,
        c: &Constant,
        result: LevelId,
        infos: &[TypeInfo],
    ) -> Result<(usize, bool, bool), KernelError> {
        let cn = tc.s.name_to_string(c.name);
        if tc.s.info(c.ty).loose_bvar_range > 0 || tc.s.info(c.ty).has_fvar {
            return ill(format!("constructor `{cn}`: type is not closed"));
        }
        tc.ensure_sort_of(c.ty)?;
        let nidx: Vec<usize> = infos.iter().map(|i| i.nindices).collect();
        let mut t = c.ty;
        let mut i = 0;
        let (mut rec, mut refl) = (false, false);
        while let ExprNode::Pi(dom, body) = tc.s.node(t) {
            let x = if i < self.nparams {
                let pt = tc.local_type(self.params[i]).unwrap_or(dom);
                if !tc.is_def_eq(dom, pt)? {
                    return ill(format!(
                        "constructor `{cn}`: parameter {} does not match the inductive type's",
                        i + 1
                    ));
                }
                self.params[i]
            } else {
                let l = tc.ensure_sort_of(dom)?;
                if !(level::is_zero(tc.s, result) || level::leq(tc.s, l, result)) {
                    return ill(format!(
                        "constructor `{cn}`: field {} lives in a universe too big for the inductive type",
                        i + 1 - self.nparams
                    ));
                }
                let (r, f) = self
                    .check_positivity(tc, dom, &nidx, 0)
                    .map_err(|e| match e {
                        KernelError::Ill(m) => KernelError::Ill(format!(
                            "constructor `{cn}`, field {}: {m}",
                            i + 1 - self.nparams
                        )),
                        other => other,
                    })?;
                rec |= r;
                refl |= f;
                tc.mk_local(dom, None)
            };
            t = subst::instantiate(tc.s, body, &[x]);
            i += 1;
        }
        if i < self.nparams {
            return ill(format!(
                "constructor `{cn}`: fewer arguments than parameters"
            ));
        }
        match self.valid_ind_app(tc, t, &nidx) {
            Some(j) if j == ti => {}
            _ => {
                return ill(format!(
                    "constructor `{cn}`: result type is not the inductive type applied to its parameters"
                ));
            }
        }
        Ok((i - self.nparams, rec, refl))
    }

    /// Opens a constructor type over the parameters: (fields, recursive fields, result type).
    fn open_ctor(
        &self,
        tc: &mut TypeChecker,
        c: &Constant,
        nidx: &[usize],
    ) -> Result<(Vec<ExprId>, Vec<ExprId>, ExprId), KernelError> {
        let mut t = c.ty;
        let (mut fields, mut recs) = (Vec::new(), Vec::new());
        let mut i = 0;
        while let ExprNode::Pi(dom, body) = tc.s.node(t) {
            let x = if i < self.nparams {
                self.params[i]
            } else {
                let x = tc.mk_local(dom, None);
                fields.push(x);
                if self.is_rec_arg(tc, dom, nidx)? {
                    recs.push(x);
                }
                x
            };
            t = subst::instantiate(tc.s, body, &[x]);
            i += 1;
        }
        Ok((fields, recs, t))
    }

    fn is_rec_arg(
        &self,
        tc: &mut TypeChecker,
        t: ExprId,
        nidx: &[usize],
    ) -> Result<bool, KernelError> {
        let mut t = tc.whnf(t)?;
        while let ExprNode::Pi(dom, body) = tc.s.node(t) {
            let x = tc.mk_local(dom, None);
            let b = subst::instantiate(tc.s, body, &[x]);
            t = tc.whnf(b)?;
        }
        Ok(self.valid_ind_app(tc, t, nidx).is_some())
    }

    /// Telescope of a recursive field: (xs, type position, indices).
    fn open_rec_field(
        &self,
        tc: &mut TypeChecker,
        u: ExprId,
        nidx: &[usize],
    ) -> Result<(Vec<ExprId>, usize, Vec<ExprId>), KernelError> {
        let ut = tc.local_type(u).unwrap_or(u);
        let mut t = tc.whnf(ut)?;
        let mut xs = Vec::new();
        while let ExprNode::Pi(dom, body) = tc.s.node(t) {
            let x = tc.mk_local(dom, None);
            xs.push(x);
            let b = subst::instantiate(tc.s, body, &[x]);
            t = tc.whnf(b)?;
        }
        let j = self.valid_ind_app(tc, t, nidx).ok_or_else(|| {
            KernelError::Ill("recursive field is not an inductive application".into())
        })?;
        let (_, args) = tc.s.unfold_apps(t);
        Ok((xs, j, args[self.nparams..].to_vec()))
    }

    pub(super) fn gen_recursors(
        &self,
        tc: &mut TypeChecker,
        infos: &[TypeInfo],
        elim: LevelId,
        rec_lparams: &[NameId],
    ) -> Result<Vec<GenRec>, KernelError> {
        let nidx: Vec<usize> = infos.iter().map(|i| i.nindices).collect();
        // Motives: (indices) -> (t : I params indices) -> Sort elim.
        let mut motives = Vec::new();
        let mut idx_locals = Vec::new();
        let mut majors = Vec::new();
        for (i, _) in infos.iter().enumerate() {
            let ity = tc.constant(self.types[i])?.ty;
            let mut t = subst::instantiate_lparams(
                tc.s,
                ity,
                &tc.constant(self.types[i])?.lparams.clone(),
                &self.us,
            );
            t = tc.whnf(t)?;
            let mut k = 0;
            let mut idxs = Vec::new();
            while let ExprNode::Pi(dom, body) = tc.s.node(t) {
                let x = if k < self.nparams {
                    self.params[k]
                } else {
                    let x = tc.mk_local(dom, None);
                    idxs.push(x);
                    x
                };
                k += 1;
                let b = subst::instantiate(tc.s, body, &[x]);
                t = tc.whnf(b)?;
            }
            let ia = tc.s.apps(self.ind_consts[i], &self.params);
            let ia = tc.s.apps(ia, &idxs);
            let major = tc.mk_local(ia, None);
            let sort = tc.s.sort(elim);
            let mut xs = idxs.clone();
            xs.push(major);
            let mty = tc.mk_pi(&xs, sort);
            motives.push(tc.mk_local(mty, None));
            idx_locals.push(idxs);
            majors.push(major);
        }
        // Minor premises, one per constructor.
        let mut minors = Vec::new();
        for (i, info) in infos.iter().enumerate() {
            for c in &info.ctors {
                let (fields, recs, res) = self.open_ctor(tc, c, &nidx)?;
                let (_, rargs) = tc.s.unfold_apps(res);
                let cc = tc.s.constant(c.name, &self.us);
                let capp = tc.s.apps(cc, &self.params);
                let capp = tc.s.apps(capp, &fields);
                let m = tc.s.apps(motives[i], &rargs[self.nparams..]);
                let goal = tc.s.app(m, capp);
                let mut ihs = Vec::new();
                for &u in &recs {
                    let (xs, j, idx) = self.open_rec_field(tc, u, &nidx)?;
                    let m = tc.s.apps(motives[j], &idx);
                    let ux = tc.s.apps(u, &xs);
                    let body = tc.s.app(m, ux);
                    let ihty = tc.mk_pi(&xs, body);
                    ihs.push(tc.mk_local(ihty, None));
                }
                let inner = tc.mk_pi(&ihs, goal);
                let mty = tc.mk_pi(&fields, inner);
                minors.push(tc.mk_local(mty, None));
            }
        }
        let rec_levels: Vec<LevelId> = rec_lparams
            .iter()
            .map(|&p| tc.s.level(LevelNode::Param(p)))
            .collect();
        let rec_names: Vec<NameId> = self
            .types
            .iter()
            .map(|&n| tc.s.name_str(n, "rec"))
            .collect();
        let mut out = Vec::new();
        let mut minor_idx = 0;
        for (i, info) in infos.iter().enumerate() {
            let m = tc.s.apps(motives[i], &idx_locals[i]);
            let goal = tc.s.app(m, majors[i]);
            let mut xs = self.params.clone();
            xs.extend(&motives);
            xs.extend(&minors);
            xs.extend(&idx_locals[i]);
            xs.push(majors[i]);
            let ty = tc.mk_pi(&xs, goal);
            let mut rules = Vec::new();
            for c in &info.ctors {
                let (fields, recs, _) = self.open_ctor(tc, c, &nidx)?;
                let mut ihs = Vec::new();
                for &u in &recs {
                    let (ys, j, idx) = self.open_rec_field(tc, u, &nidx)?;
                    let rc = tc.s.constant(rec_names[j], &rec_levels);
                    let mut app = tc.s.apps(rc, &self.params);
                    app = tc.s.apps(app, &motives);
                    app = tc.s.apps(app, &minors);
                    app = tc.s.apps(app, &idx);
                    let uy = tc.s.apps(u, &ys);
                    app = tc.s.app(app, uy);
                    ihs.push(tc.mk_lambda(&ys, app));
                }
                let mut body = tc.s.apps(minors[minor_idx], &fields);
                body = tc.s.apps(body, &ihs);
                let mut xs = self.params.clone();
                xs.extend(&motives);
                xs.extend(&minors);
                xs.extend(&fields);
                let rhs = tc.mk_lambda(&xs, body);
                rules.push(RecRule {
                    ctor: c.name,
                    nfields: fields.len() as u32,
                    rhs,
                });
                minor_idx += 1;
            }
            out.push(GenRec {
                name: rec_names[i],
                ty,
                nindices: info.nindices as u32,
                rules,
            });
        }
        Ok(out)
    }
}

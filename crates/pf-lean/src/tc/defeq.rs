//! Definitional equality (`is_def_eq_core` of Lean 4's kernel): quick structural checks,
//! proof irrelevance, lazy delta reduction guided by reducibility hints, Nat offsets and
//! literals, eta, structure eta, string-literal expansion and unit-like types.

use super::TypeChecker;
use crate::env::{ConstKind, Hint};
use crate::error::KernelError;
use crate::level;
use crate::store::{ExprId, ExprNode, LevelId, LevelsId};
use crate::subst;

impl TypeChecker<'_> {
    /// `t == s` up to definitional equality.
    pub fn is_def_eq(&mut self, t: ExprId, s: ExprId) -> Result<bool, KernelError> {
        if t == s {
            return Ok(true);
        }
        let key = if t < s { (t, s) } else { (s, t) };
        if self.eq_cache.contains(&key) {
            return Ok(true);
        }
        if self.neq_cache.contains(&key) {
            return Ok(false);
        }
        self.tick()?;
        let r = self.is_def_eq_core(t, s)?;
        if r {
            self.eq_cache.insert(key);
        } else {
            self.neq_cache.insert(key);
        }
        Ok(r)
    }

    fn levels_eq(&mut self, a: LevelsId, b: LevelsId) -> bool {
        if a == b {
            return true;
        }
        let la: Vec<LevelId> = self.s.level_list(a).to_vec();
        let lb: Vec<LevelId> = self.s.level_list(b).to_vec();
        la.len() == lb.len()
            && la
                .iter()
                .zip(&lb)
                .all(|(&x, &y)| level::equiv(self.s, x, y))
    }

    fn quick(&mut self, t: ExprId, s: ExprId) -> Result<Option<bool>, KernelError> {
        if t == s {
            return Ok(Some(true));
        }
        match (self.s.node(t), self.s.node(s)) {
            (ExprNode::Lam(..), ExprNode::Lam(..)) | (ExprNode::Pi(..), ExprNode::Pi(..)) => {
                Ok(Some(self.is_def_eq_binding(t, s)?))
            }
            (ExprNode::Sort(a), ExprNode::Sort(b)) => Ok(Some(level::equiv(self.s, a, b))),
            (ExprNode::NatLit(_), ExprNode::NatLit(_))
            | (ExprNode::StrLit(_), ExprNode::StrLit(_)) => Ok(Some(false)),
            _ => Ok(None),
        }
    }

    fn is_def_eq_binding(&mut self, mut t: ExprId, mut s: ExprId) -> Result<bool, KernelError> {
        let mut xs = Vec::new();
        while let (ExprNode::Lam(td, tb), ExprNode::Lam(sd, sb))
        | (ExprNode::Pi(td, tb), ExprNode::Pi(sd, sb)) = (self.s.node(t), self.s.node(s))
        {
            let td = subst::instantiate_rev(self.s, td, &xs);
            let sd = subst::instantiate_rev(self.s, sd, &xs);
            if !self.is_def_eq(td, sd)? {
                return Ok(false);
            }
            let x = self.mk_local(td, None);
            xs.push(x);
            t = tb;
            s = sb;
        }
        let t = subst::instantiate_rev(self.s, t, &xs);
        let s = subst::instantiate_rev(self.s, s, &xs);
        self.is_def_eq(t, s)
    }

    fn is_def_eq_core(&mut self, t: ExprId, s: ExprId) -> Result<bool, KernelError> {
        if let Some(r) = self.quick(t, s)? {
            return Ok(r);
        }
        // Proof irrelevance: any two proofs of the same proposition are equal.
        let tt = self.infer(t)?;
        if self.is_prop(tt)? {
            let st = self.infer(s)?;
            return self.is_def_eq(tt, st);
        }
        let tn = self.whnf_core_opt(t, true)?;
        let sn = self.whnf_core_opt(s, true)?;
        if (tn, sn) != (t, s)
            && let Some(r) = self.quick(tn, sn)?
        {
            return Ok(r);
        }
        let (tn, sn) = match self.lazy_delta(tn, sn)? {
            Lazy::Done(r) => return Ok(r),
            Lazy::Stuck(a, b) => (a, b),
        };
        match (self.s.node(tn), self.s.node(sn)) {
            (ExprNode::Const(a, la), ExprNode::Const(b, lb))
                if a == b && self.levels_eq(la, lb) =>
            {
                return Ok(true);
            }
            (ExprNode::FVar(a), ExprNode::FVar(b)) if a == b => return Ok(true),
            (ExprNode::Proj(_, i, a), ExprNode::Proj(_, j, b))
                if i == j && self.is_def_eq(a, b)? =>
            {
                return Ok(true);
            }
            _ => {}
        }
        let tnn = self.whnf_core(tn)?;
        let snn = self.whnf_core(sn)?;
        if (tnn, snn) != (tn, sn) {
            return self.is_def_eq(tnn, snn);
        }
        if self.is_def_eq_app(tn, sn)? {
            return Ok(true);
        }
        if self.try_eta(tn, sn)? || self.try_eta(sn, tn)? {
            return Ok(true);
        }
        if self.try_eta_struct(tn, sn)? || self.try_eta_struct(sn, tn)? {
            return Ok(true);
        }
        if let Some(r) = self.try_string_lit(tn, sn)? {
            return Ok(r);
        }
        self.is_def_eq_unit_like(tn, sn)
    }

    fn is_def_eq_app(&mut self, t: ExprId, s: ExprId) -> Result<bool, KernelError> {
        if !matches!(self.s.node(t), ExprNode::App(..))
            || !matches!(self.s.node(s), ExprNode::App(..))
        {
            return Ok(false);
        }
        let (tf, ta) = self.s.unfold_apps(t);
        let (sf, sa) = self.s.unfold_apps(s);
        if ta.len() != sa.len() || !self.is_def_eq(tf, sf)? {
            return Ok(false);
        }
        for (a, b) in ta.into_iter().zip(sa) {
            if !self.is_def_eq(a, b)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Delta candidate: the hint of `e`'s head definition.
    fn delta_hint(&self, e: ExprId) -> Option<Hint> {
        let (n, _) = self.s.head_const(e)?;
        match &self.env.get(n)?.kind {
            ConstKind::Def { hint, .. } => Some(*hint),
            ConstKind::Thm { .. } => Some(Hint::Opaque),
            _ => None,
        }
    }

    fn unfold_whnf_core(&mut self, e: ExprId) -> Result<ExprId, KernelError> {
        match self.unfold_definition(e)? {
            Some(u) => self.whnf_core_opt(u, true),
            None => Ok(e),
        }
    }

    fn lazy_delta(&mut self, mut t: ExprId, mut s: ExprId) -> Result<Lazy, KernelError> {
        loop {
            self.tick()?;
            if let Some(r) = self.is_def_eq_offset(t, s)? {
                return Ok(Lazy::Done(r));
            }
            if !self.s.info(t).has_fvar && !self.s.info(s).has_fvar {
                if let Some(tv) = self.reduce_nat(t)? {
                    return Ok(Lazy::Done(self.is_def_eq(tv, s)?));
                }
                if let Some(sv) = self.reduce_nat(s)? {
                    return Ok(Lazy::Done(self.is_def_eq(t, sv)?));
                }
            }
            let (dt, ds) = (self.delta_hint(t), self.delta_hint(s));
            match (dt, ds) {
                (None, None) => return Ok(Lazy::Stuck(t, s)),
                (Some(_), None) => t = self.unfold_whnf_core(t)?,
                (None, Some(_)) => s = self.unfold_whnf_core(s)?,
                (Some(ht), Some(hs)) => match compare_hints(ht, hs) {
                    std::cmp::Ordering::Less => t = self.unfold_whnf_core(t)?,
                    std::cmp::Ordering::Greater => s = self.unfold_whnf_core(s)?,
                    std::cmp::Ordering::Equal => {
                        // Same definition on both sides: try the arguments before unfolding.
                        if let (ExprNode::App(..), ExprNode::App(..)) =
                            (self.s.node(t), self.s.node(s))
                            && let (Some((a, la)), Some((b, lb))) =
                                (self.s.head_const(t), self.s.head_const(s))
                            && a == b
                            && matches!(ht, Hint::Regular(_))
                            && self.levels_eq(la, lb)
                            && self.is_def_eq_args(t, s)?
                        {
                            return Ok(Lazy::Done(true));
                        }
                        t = self.unfold_whnf_core(t)?;
                        s = self.unfold_whnf_core(s)?;
                    }
                },
            }
            if let Some(r) = self.quick(t, s)? {
                return Ok(Lazy::Done(r));
            }
        }
    }

    fn is_def_eq_args(&mut self, t: ExprId, s: ExprId) -> Result<bool, KernelError> {
        let (_, ta) = self.s.unfold_apps(t);
        let (_, sa) = self.s.unfold_apps(s);
        if ta.len() != sa.len() {
            return Ok(false);
        }
        for (a, b) in ta.into_iter().zip(sa) {
            if !self.is_def_eq(a, b)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `Nat.succ a == Nat.succ b` and literal/`Nat.zero` comparisons without unfolding.
    fn is_def_eq_offset(&mut self, t: ExprId, s: ExprId) -> Result<Option<bool>, KernelError> {
        if self.is_nat_zero(t) && self.is_nat_zero(s) {
            return Ok(Some(true));
        }
        match (self.nat_pred(t), self.nat_pred(s)) {
            (Some(a), Some(b)) => Ok(Some(self.is_def_eq(a, b)?)),
            _ => Ok(None),
        }
    }

    fn is_nat_zero(&self, e: ExprId) -> bool {
        match self.s.node(e) {
            ExprNode::NatLit(i) => num_traits::Zero::is_zero(self.s.nat_value(i)),
            ExprNode::Const(n, _) => n == self.wk.nat_zero,
            _ => false,
        }
    }

    fn nat_pred(&mut self, e: ExprId) -> Option<ExprId> {
        match self.s.node(e) {
            ExprNode::NatLit(i) => {
                let v = self.s.nat_value(i).clone();
                if num_traits::Zero::is_zero(&v) {
                    None
                } else {
                    Some(self.s.nat_lit(v - 1u32))
                }
            }
            ExprNode::App(f, a) if matches!(self.s.node(f), ExprNode::Const(n, _) if n == self.wk.nat_succ) => {
                Some(a)
            }
            _ => None,
        }
    }

    /// Eta: `fun x => f x == f` when `t` is a lambda and `s` is not.
    fn try_eta(&mut self, t: ExprId, s: ExprId) -> Result<bool, KernelError> {
        if !matches!(self.s.node(t), ExprNode::Lam(..))
            || matches!(self.s.node(s), ExprNode::Lam(..))
        {
            return Ok(false);
        }
        let st = self.infer(s)?;
        let st = self.whnf(st)?;
        let ExprNode::Pi(dom, _) = self.s.node(st) else {
            return Ok(false);
        };
        let ls = subst::lift(self.s, s, 1, 0);
        let b0 = self.s.expr(ExprNode::BVar(0));
        let body = self.s.app(ls, b0);
        let lam = self.s.expr(ExprNode::Lam(dom, body));
        self.is_def_eq(t, lam)
    }

    /// Structure eta: `s == S.mk (t.1) ... (t.n)` when `s` is a constructor application.
    fn try_eta_struct(&mut self, t: ExprId, s: ExprId) -> Result<bool, KernelError> {
        let (h, args) = self.s.unfold_apps(s);
        let ExprNode::Const(cn, _) = self.s.node(h) else {
            return Ok(false);
        };
        let Some(c) = self.env.get(cn) else {
            return Ok(false);
        };
        let ConstKind::Ctor {
            induct,
            num_params,
            num_fields,
            ..
        } = c.kind
        else {
            return Ok(false);
        };
        if args.len() != (num_params + num_fields) as usize || self.structure_like(induct).is_none()
        {
            return Ok(false);
        }
        let tt = self.infer(t)?;
        let st = self.infer(s)?;
        if !self.is_def_eq(tt, st)? {
            return Ok(false);
        }
        for i in 0..num_fields {
            let p = self.s.expr(ExprNode::Proj(induct, i, t));
            if !self.is_def_eq(p, args[(num_params + i) as usize])? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn try_string_lit(&mut self, t: ExprId, s: ExprId) -> Result<Option<bool>, KernelError> {
        match (self.s.node(t), self.s.node(s)) {
            (ExprNode::StrLit(_), ExprNode::App(..)) => {
                let te = self.string_lit_to_ctor(t)?;
                Ok(Some(self.is_def_eq(te, s)?))
            }
            (ExprNode::App(..), ExprNode::StrLit(_)) => {
                let se = self.string_lit_to_ctor(s)?;
                Ok(Some(self.is_def_eq(t, se)?))
            }
            _ => Ok(None),
        }
    }

    /// Unit-like types (one constructor, no fields, no indices): all inhabitants are equal.
    fn is_def_eq_unit_like(&mut self, t: ExprId, s: ExprId) -> Result<bool, KernelError> {
        let tt = self.infer(t)?;
        let tt = self.whnf(tt)?;
        let Some((n, _)) = self.s.head_const(tt) else {
            return Ok(false);
        };
        let Some(c) = self.env.get(n) else {
            return Ok(false);
        };
        let ConstKind::Induct {
            num_indices: 0,
            ctors,
            is_rec: false,
            ..
        } = &c.kind
        else {
            return Ok(false);
        };
        if ctors.len() != 1 {
            return Ok(false);
        }
        match self.env.get(ctors[0]).map(|k| &k.kind) {
            Some(ConstKind::Ctor { num_fields: 0, .. }) => {}
            _ => return Ok(false),
        }
        let st = self.infer(s)?;
        self.is_def_eq(tt, st)
    }
}

enum Lazy {
    Done(bool),
    Stuck(ExprId, ExprId),
}

/// `Less` = unfold the left side first (Lean 4 `compare(h1, h2) < 0`).
fn compare_hints(a: Hint, b: Hint) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a, b) {
        (Hint::Regular(x), Hint::Regular(y)) => y.cmp(&x),
        (Hint::Opaque, Hint::Opaque) | (Hint::Abbrev, Hint::Abbrev) => Equal,
        (Hint::Opaque, _) => Greater,
        (_, Hint::Opaque) => Less,
        (Hint::Abbrev, _) => Less,
        (_, Hint::Abbrev) => Greater,
    }
}

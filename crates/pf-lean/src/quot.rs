//! The quotient package (`Quot`, `Quot.mk`, `Quot.lift`, `Quot.ind`): the kernel builds the
//! expected types itself and requires `Eq` to be the usual equality inductive.

use crate::env::{ConstKind, Constant, Env, QuotKind};
use crate::error::{KernelError, ill};
use crate::store::{ExprId, LevelId, LevelNode, NameId, Store};
use crate::tc::{TypeChecker, Wk};

/// The expected type of a quotient constant, over universe parameters `ps`.
pub fn expected_type(
    tc: &mut TypeChecker,
    kind: QuotKind,
    ps: &[NameId],
) -> Result<ExprId, KernelError> {
    let need = if kind == QuotKind::Lift { 2 } else { 1 };
    if ps.len() != need {
        return ill(format!(
            "quotient constant must have {need} universe parameter(s)"
        ));
    }
    let s = &mut *tc.s;
    let u = s.level(LevelNode::Param(ps[0]));
    let zero = s.zero();
    let prop = s.sort(zero);
    let sort_u = s.sort(u);
    let quot_n = s.name_path("Quot");
    let mk_n = s.name_path("Quot.mk");
    let eq_n = s.name_path("Eq");
    let alpha = tc.mk_local(sort_u, None);
    // r : α → α → Prop
    let a1 = tc.mk_local(alpha, None);
    let a2 = tc.mk_local(alpha, None);
    let rel_ty = tc.mk_pi(&[a1, a2], prop);
    let r = tc.mk_local(rel_ty, None);
    let quot_c = tc.s.constant(quot_n, &[u]);
    let quot_ar = tc.s.apps(quot_c, &[alpha, r]);
    Ok(match kind {
        QuotKind::Type => {
            let r2 = tc.mk_local(rel_ty, None);
            tc.mk_pi(&[alpha, r2], sort_u)
        }
        QuotKind::Ctor => {
            let a = tc.mk_local(alpha, None);
            tc.mk_pi(&[alpha, r, a], quot_ar)
        }
        QuotKind::Lift => {
            let v = tc.s.level(LevelNode::Param(ps[1]));
            let sort_v = tc.s.sort(v);
            let beta = tc.mk_local(sort_v, None);
            let x = tc.mk_local(alpha, None);
            let f_ty = tc.mk_pi(&[x], beta);
            let f = tc.mk_local(f_ty, None);
            let a = tc.mk_local(alpha, None);
            let b = tc.mk_local(alpha, None);
            let rab = tc.s.apps(r, &[a, b]);
            let h = tc.mk_local(rab, None);
            let fa = tc.s.app(f, a);
            let fb = tc.s.app(f, b);
            let eq_c = tc.s.constant(eq_n, &[v]);
            let eq = tc.s.apps(eq_c, &[beta, fa, fb]);
            let resp = tc.mk_pi(&[a, b, h], eq);
            let hr = tc.mk_local(resp, None);
            let q = tc.mk_local(quot_ar, None);
            tc.mk_pi(&[alpha, r, beta, f, hr, q], beta)
        }
        QuotKind::Ind => {
            let q0 = tc.mk_local(quot_ar, None);
            let beta_ty = tc.mk_pi(&[q0], prop);
            let beta = tc.mk_local(beta_ty, None);
            let a = tc.mk_local(alpha, None);
            let mk_c = tc.s.constant(mk_n, &[u]);
            let mk_a = tc.s.apps(mk_c, &[alpha, r, a]);
            let ba = tc.s.app(beta, mk_a);
            let mk_ty = tc.mk_pi(&[a], ba);
            let mk = tc.mk_local(mk_ty, None);
            let q = tc.mk_local(quot_ar, None);
            let bq = tc.s.app(beta, q);
            let concl = tc.mk_pi(&[q], bq);
            tc.mk_pi(&[alpha, r, beta, mk], concl)
        }
    })
}

/// Requires `Eq` to be `inductive Eq.{u} {α : Sort u} (a : α) : α → Prop | refl : Eq a a`.
fn check_eq(s: &mut Store, env: &Env, wk: Wk) -> Result<(), KernelError> {
    let eq_n = s.name_path("Eq");
    let Some(eq) = env.get(eq_n) else {
        return ill("the quotient package requires `Eq` to be declared first");
    };
    let ConstKind::Induct {
        ctors,
        num_params,
        num_indices,
        ..
    } = &eq.kind
    else {
        return ill("`Eq` is not an inductive type");
    };
    if eq.lparams.len() != 1 || ctors.len() != 1 || *num_params != 2 || *num_indices != 1 {
        return ill("`Eq` does not have the shape the quotient package requires");
    }
    let (ps, refl) = (eq.lparams.clone(), ctors[0]);
    let mut tc = TypeChecker::new(s, env, wk, Some(ps.clone()), crate::tc::DEFAULT_FUEL);
    let u: LevelId = tc.s.level(LevelNode::Param(ps[0]));
    let zero = tc.s.zero();
    let prop = tc.s.sort(zero);
    let sort_u = tc.s.sort(u);
    let alpha = tc.mk_local(sort_u, None);
    let a = tc.mk_local(alpha, None);
    let b = tc.mk_local(alpha, None);
    let want = tc.mk_pi(&[alpha, a, b], prop);
    if !tc.is_def_eq(want, eq.ty)? {
        return ill("`Eq` has an unexpected type");
    }
    let eq_c = tc.s.constant(eq_n, &[u]);
    let eaa = tc.s.apps(eq_c, &[alpha, a, a]);
    let want_refl = tc.mk_pi(&[alpha, a], eaa);
    let rc = tc.constant(refl)?;
    if rc.lparams != ps || !tc.is_def_eq(want_refl, rc.ty)? {
        return ill("`Eq.refl` has an unexpected type");
    }
    Ok(())
}

/// Checks one exported quotient constant against the expected type.
pub fn check_quot(s: &mut Store, env: &Env, wk: Wk, c: &Constant) -> Result<(), KernelError> {
    let ConstKind::Quot(kind) = c.kind else {
        return ill("not a quotient constant");
    };
    let want_name = match kind {
        QuotKind::Type => "Quot",
        QuotKind::Ctor => "Quot.mk",
        QuotKind::Lift => "Quot.lift",
        QuotKind::Ind => "Quot.ind",
    };
    if s.name_to_string(c.name) != want_name {
        return ill(format!(
            "quotient constant of kind `{want_name}` has the wrong name"
        ));
    }
    if c.lparams.len() == 2 && c.lparams[0] == c.lparams[1] {
        return ill("duplicate universe parameter");
    }
    check_eq(s, env, wk)?;
    let mut tc = TypeChecker::new(s, env, wk, Some(c.lparams.clone()), crate::tc::DEFAULT_FUEL);
    // The declared type must itself be well-formed (its constants declared).
    tc.ensure_sort_of(c.ty)?;
    let want = expected_type(&mut tc, kind, &c.lparams)?;
    if want != c.ty && !tc.is_def_eq(want, c.ty)? {
        return ill(format!(
            "`{want_name}` does not have the type of the quotient package"
        ));
    }
    Ok(())
}

/// The four generated constants (legacy `#QUOT`).
pub fn generate(s: &mut Store, env: &Env, wk: Wk) -> Result<Vec<Constant>, KernelError> {
    check_eq(s, env, wk)?;
    let u = s.name_path("u");
    let v = s.name_path("v");
    let mut out = Vec::new();
    for (kind, name, ps) in [
        (QuotKind::Type, "Quot", vec![u]),
        (QuotKind::Ctor, "Quot.mk", vec![u]),
        (QuotKind::Lift, "Quot.lift", vec![u, v]),
        (QuotKind::Ind, "Quot.ind", vec![u]),
    ] {
        let mut tc = TypeChecker::new(s, env, wk, Some(ps.clone()), crate::tc::DEFAULT_FUEL);
        let ty = expected_type(&mut tc, kind, &ps)?;
        let name = s.name_path(name);
        out.push(Constant {
            name,
            lparams: ps,
            ty,
            kind: ConstKind::Quot(kind),
            is_unsafe: false,
        });
    }
    Ok(out)
}

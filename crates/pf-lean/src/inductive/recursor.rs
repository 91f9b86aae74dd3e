//! Recursor comparison: exported recursors (in their block or written later) against the
//! generated ones, and translation of nested auxiliary recursors back to the user's types.

use super::GenRec;
use crate::env::{ConstKind, Constant, Env, RecRule};
use crate::error::{KernelError, ill};
use crate::store::{LevelId, LevelNode, NameId, Store};
use crate::subst;
use crate::tc::{TypeChecker, Wk};

/// Compares a recursor exported after its block with the one the checker generated.
pub fn check_late_rec(
    s: &mut Store,
    env: &Env,
    wk: Wk,
    r: &Constant,
    fuel: u64,
) -> Result<(), KernelError> {
    let Some(g) = env.get(r.name) else {
        return ill(format!(
            "`{}` is not a recursor of a declared inductive type",
            s.name_to_string(r.name)
        ));
    };
    let ConstKind::Rec {
        all,
        num_params,
        num_motives,
        num_minors,
        rules,
        k,
        num_indices,
    } = &g.kind
    else {
        return ill("already declared");
    };
    let generated = GenRec {
        name: g.name,
        ty: g.ty,
        nindices: *num_indices,
        rules: rules.clone(),
    };
    // The generated recursor may use a different name for the motive universe.
    let mut rec_lparams = g.lparams.clone();
    let mut generated = generated;
    if r.lparams.len() == g.lparams.len() && r.lparams != g.lparams {
        let us: Vec<LevelId> = r
            .lparams
            .iter()
            .map(|&p| s.level(LevelNode::Param(p)))
            .collect();
        generated.ty = subst::instantiate_lparams(s, generated.ty, &g.lparams, &us);
        for rule in &mut generated.rules {
            rule.rhs = subst::instantiate_lparams(s, rule.rhs, &g.lparams, &us);
        }
        rec_lparams = r.lparams.clone();
    }
    let (all, np, nm, nn, k) = (
        all.clone(),
        *num_params as usize,
        *num_motives,
        *num_minors,
        *k,
    );
    compare_rec(
        s,
        env,
        wk,
        fuel,
        r,
        &generated,
        &rec_lparams,
        &all,
        np,
        nm,
        nn,
        k,
    )
}

pub(super) fn t_ctors(t: &Constant) -> Vec<NameId> {
    match &t.kind {
        ConstKind::Induct { ctors, .. } => ctors.clone(),
        _ => Vec::new(),
    }
}

/// Renames the auxiliary recursors (`T.rec_1`, ...) and translates auxiliary types and
/// constructors back to the nested applications they stand for.
pub(super) fn restore_nested(
    s: &mut Store,
    gens: Vec<GenRec>,
    aux: &[crate::nested::Aux],
    n_orig: usize,
    work_names: &[NameId],
    nparams: usize,
) -> Vec<GenRec> {
    if aux.is_empty() {
        return gens;
    }
    let mut rename = Vec::new();
    for (k, g) in gens.iter().enumerate().skip(n_orig) {
        let to = s.name_str(work_names[0], &format!("rec_{}", k - n_orig + 1));
        rename.push((g.name, to));
    }
    let ctor_back: Vec<(NameId, NameId)> = aux
        .iter()
        .flat_map(|a| a.ctors.iter())
        .filter_map(|&(c, app)| s.head_const(app).map(|(n, _)| (c, n)))
        .collect();
    gens.into_iter()
        .map(|g| {
            let name = rename
                .iter()
                .find(|(a, _)| *a == g.name)
                .map_or(g.name, |&(_, b)| b);
            let ty = crate::nested::restore(s, g.ty, aux, nparams, &rename);
            let rules = g
                .rules
                .into_iter()
                .map(|r| RecRule {
                    ctor: ctor_back
                        .iter()
                        .find(|(a, _)| *a == r.ctor)
                        .map_or(r.ctor, |&(_, b)| b),
                    nfields: r.nfields,
                    rhs: crate::nested::restore(s, r.rhs, aux, nparams, &rename),
                })
                .collect();
            GenRec {
                name,
                ty,
                nindices: g.nindices,
                rules,
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
pub(super) fn compare_rec(
    s: &mut Store,
    env: &Env,
    wk: Wk,
    fuel: u64,
    r: &Constant,
    g: &GenRec,
    rec_lparams: &[NameId],
    all_names: &[NameId],
    nparams: usize,
    nmotives: u32,
    nminors: u32,
    k_target: bool,
) -> Result<(), KernelError> {
    let rn = s.name_to_string(r.name);
    if r.name != g.name {
        return ill(format!(
            "recursor `{rn}` should be named `{}`",
            s.name_to_string(g.name)
        ));
    }
    if r.is_unsafe {
        return Err(KernelError::Unsupported("unsafe recursors".into()));
    }
    if r.lparams != rec_lparams {
        return ill(format!("recursor `{rn}`: wrong universe parameters"));
    }
    let ConstKind::Rec {
        all,
        num_params,
        num_indices,
        num_motives,
        num_minors,
        rules,
        k,
    } = &r.kind
    else {
        return ill(format!("`{rn}` is not a recursor"));
    };
    if *all != all_names
        || *num_params as usize != nparams
        || *num_indices != g.nindices
        || *num_motives != nmotives
        || *num_minors != nminors
        || *k != k_target
    {
        return ill(format!(
            "recursor `{rn}`: metadata (all/numParams/numIndices/numMotives/numMinors/k) does not match"
        ));
    }
    if rules.len() != g.rules.len() {
        return ill(format!("recursor `{rn}`: wrong number of rules"));
    }
    let mut tc = TypeChecker::new(s, env, wk, Some(rec_lparams.to_vec()), fuel);
    if r.ty != g.ty && !tc.is_def_eq(r.ty, g.ty)? {
        return ill(format!(
            "recursor `{rn}`: type differs from the generated recursor"
        ));
    }
    for (a, b) in rules.iter().zip(&g.rules) {
        if a.ctor != b.ctor || a.nfields != b.nfields {
            return ill(format!(
                "recursor `{rn}`: rule for the wrong constructor or field count"
            ));
        }
        if a.rhs != b.rhs {
            if tc.s.info(a.rhs).loose_bvar_range > 0 || tc.s.info(a.rhs).has_fvar {
                return ill(format!(
                    "recursor `{rn}`: rule right-hand side is not closed"
                ));
            }
            if !tc.is_def_eq(a.rhs, b.rhs)? {
                return ill(format!(
                    "recursor `{rn}`: rule for `{}` differs from the generated one",
                    tc.s.name_to_string(a.ctor)
                ));
            }
        }
    }
    Ok(())
}

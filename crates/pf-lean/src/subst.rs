//! Substitution on de Bruijn terms: instantiating bound variables, abstracting free variables,
//! lifting loose indices, and instantiating universe parameters.

use rustc_hash::FxHashMap;

use crate::level;
use crate::store::{ExprId, ExprNode, LevelId, NameId, Store};

/// Rebuilds `e` with children mapped by `f` (a generic one-level map).
fn rebuild(
    s: &mut Store,
    e: ExprId,
    mut f: impl FnMut(&mut Store, ExprId, u32) -> ExprId,
) -> ExprId {
    match s.node(e) {
        ExprNode::App(a, b) => {
            let (a2, b2) = (f(s, a, 0), f(s, b, 0));
            if (a2, b2) == (a, b) { e } else { s.app(a2, b2) }
        }
        ExprNode::Lam(t, b) => {
            let (t2, b2) = (f(s, t, 0), f(s, b, 1));
            if (t2, b2) == (t, b) {
                e
            } else {
                s.expr(ExprNode::Lam(t2, b2))
            }
        }
        ExprNode::Pi(t, b) => {
            let (t2, b2) = (f(s, t, 0), f(s, b, 1));
            if (t2, b2) == (t, b) {
                e
            } else {
                s.expr(ExprNode::Pi(t2, b2))
            }
        }
        ExprNode::Let(t, v, b) => {
            let (t2, v2, b2) = (f(s, t, 0), f(s, v, 0), f(s, b, 1));
            if (t2, v2, b2) == (t, v, b) {
                e
            } else {
                s.expr(ExprNode::Let(t2, v2, b2))
            }
        }
        ExprNode::Proj(n, i, x) => {
            let x2 = f(s, x, 0);
            if x2 == x {
                e
            } else {
                s.expr(ExprNode::Proj(n, i, x2))
            }
        }
        _ => e,
    }
}

/// Adds `n` to every loose bound variable index `>= offset` of `e`.
pub fn lift(s: &mut Store, e: ExprId, n: u32, offset: u32) -> ExprId {
    if n == 0 || s.info(e).loose_bvar_range <= offset {
        return e;
    }
    let mut cache = FxHashMap::default();
    lift_go(s, e, n, offset, &mut cache)
}

fn lift_go(
    s: &mut Store,
    e: ExprId,
    n: u32,
    off: u32,
    cache: &mut FxHashMap<(ExprId, u32), ExprId>,
) -> ExprId {
    if s.info(e).loose_bvar_range <= off {
        return e;
    }
    if let Some(&r) = cache.get(&(e, off)) {
        return r;
    }
    let r = match s.node(e) {
        ExprNode::BVar(i) => s.expr(ExprNode::BVar(i.saturating_add(n))),
        _ => rebuild(s, e, |s, c, d| lift_go(s, c, n, off + d, cache)),
    };
    cache.insert((e, off), r);
    r
}

/// Replaces bound variable `i` (for `i < vals.len()`) by `vals[i]` and lowers the remaining
/// loose indices by `vals.len()`. `vals[0]` replaces the innermost variable.
pub fn instantiate(s: &mut Store, e: ExprId, vals: &[ExprId]) -> ExprId {
    if vals.is_empty() || s.info(e).loose_bvar_range == 0 {
        return e;
    }
    let mut cache = FxHashMap::default();
    inst_go(s, e, vals, 0, &mut cache)
}

/// Like [`instantiate`] with `vals` in reverse order: `vals[last]` replaces variable 0. Used
/// to open a telescope with the free variables introduced for it (outermost first).
pub fn instantiate_rev(s: &mut Store, e: ExprId, vals: &[ExprId]) -> ExprId {
    let rev: Vec<ExprId> = vals.iter().rev().copied().collect();
    instantiate(s, e, &rev)
}

fn inst_go(
    s: &mut Store,
    e: ExprId,
    vals: &[ExprId],
    off: u32,
    cache: &mut FxHashMap<(ExprId, u32), ExprId>,
) -> ExprId {
    if s.info(e).loose_bvar_range <= off {
        return e;
    }
    if let Some(&r) = cache.get(&(e, off)) {
        return r;
    }
    let r = match s.node(e) {
        ExprNode::BVar(i) => {
            let n = vals.len() as u32;
            if i < off {
                e
            } else if i - off < n {
                let v = vals[(i - off) as usize];
                lift(s, v, off, 0)
            } else {
                s.expr(ExprNode::BVar(i - n))
            }
        }
        _ => rebuild(s, e, |s, c, d| inst_go(s, c, vals, off + d, cache)),
    };
    cache.insert((e, off), r);
    r
}

/// Replaces free variables `fvars[j]` by bound variables, the last one becoming index 0 (the
/// inverse of [`instantiate_rev`]).
pub fn abstract_fvars(s: &mut Store, e: ExprId, fvars: &[ExprId]) -> ExprId {
    if fvars.is_empty() || !s.info(e).has_fvar {
        return e;
    }
    let mut cache = FxHashMap::default();
    abs_go(s, e, fvars, 0, &mut cache)
}

fn abs_go(
    s: &mut Store,
    e: ExprId,
    fvars: &[ExprId],
    off: u32,
    cache: &mut FxHashMap<(ExprId, u32), ExprId>,
) -> ExprId {
    if !s.info(e).has_fvar {
        return e;
    }
    if let Some(&r) = cache.get(&(e, off)) {
        return r;
    }
    let r = match s.node(e) {
        ExprNode::FVar(_) => match fvars.iter().rposition(|&x| x == e) {
            Some(j) => s.expr(ExprNode::BVar(off + (fvars.len() - 1 - j) as u32)),
            None => e,
        },
        _ => rebuild(s, e, |s, c, d| abs_go(s, c, fvars, off + d, cache)),
    };
    cache.insert((e, off), r);
    r
}

/// True when bound variable `i` occurs loose in `e` (memoised: terms are DAGs).
pub fn has_loose_bvar(s: &Store, e: ExprId, i: u32) -> bool {
    let mut seen = rustc_hash::FxHashSet::default();
    loose_go(s, e, i, &mut seen)
}

fn loose_go(s: &Store, e: ExprId, i: u32, seen: &mut rustc_hash::FxHashSet<(ExprId, u32)>) -> bool {
    if s.info(e).loose_bvar_range <= i || !seen.insert((e, i)) {
        return false;
    }
    match s.node(e) {
        ExprNode::BVar(j) => j == i,
        ExprNode::App(a, b) => loose_go(s, a, i, seen) || loose_go(s, b, i, seen),
        ExprNode::Lam(t, b) | ExprNode::Pi(t, b) => {
            loose_go(s, t, i, seen) || loose_go(s, b, i + 1, seen)
        }
        ExprNode::Let(t, v, b) => {
            loose_go(s, t, i, seen) || loose_go(s, v, i, seen) || loose_go(s, b, i + 1, seen)
        }
        ExprNode::Proj(_, _, x) => loose_go(s, x, i, seen),
        _ => false,
    }
}

/// Substitutes universe parameters `ps` by `us` throughout `e`.
pub fn instantiate_lparams(s: &mut Store, e: ExprId, ps: &[NameId], us: &[LevelId]) -> ExprId {
    if ps.is_empty() || !s.info(e).has_lparam {
        return e;
    }
    let mut cache = FxHashMap::default();
    ilp_go(s, e, ps, us, &mut cache)
}

fn ilp_go(
    s: &mut Store,
    e: ExprId,
    ps: &[NameId],
    us: &[LevelId],
    cache: &mut FxHashMap<ExprId, ExprId>,
) -> ExprId {
    if !s.info(e).has_lparam {
        return e;
    }
    if let Some(&r) = cache.get(&e) {
        return r;
    }
    let r = match s.node(e) {
        ExprNode::Sort(l) => {
            let l2 = level::instantiate(s, l, ps, us);
            s.sort(l2)
        }
        ExprNode::Const(n, ls) => {
            let ls: Vec<LevelId> = s.level_list(ls).to_vec();
            let ls2: Vec<LevelId> = ls
                .iter()
                .map(|&l| level::instantiate(s, l, ps, us))
                .collect();
            s.constant(n, &ls2)
        }
        _ => rebuild(s, e, |s, c, _| ilp_go(s, c, ps, us, cache)),
    };
    cache.insert(e, r);
    r
}

/// Replaces every occurrence of constant `from` (any levels) applied to anything by
/// `to` — used by the nested-occurrence and positivity checks. Returns true if `c` occurs.
pub fn mentions_const(s: &Store, e: ExprId, c: &[NameId]) -> bool {
    let mut seen = rustc_hash::FxHashSet::default();
    mentions_go(s, e, c, &mut seen)
}

fn mentions_go(
    s: &Store,
    e: ExprId,
    c: &[NameId],
    seen: &mut rustc_hash::FxHashSet<ExprId>,
) -> bool {
    if !seen.insert(e) {
        return false;
    }
    match s.node(e) {
        ExprNode::Const(n, _) => c.contains(&n),
        ExprNode::App(a, b) | ExprNode::Lam(a, b) | ExprNode::Pi(a, b) => {
            mentions_go(s, a, c, seen) || mentions_go(s, b, c, seen)
        }
        ExprNode::Let(t, v, b) => {
            mentions_go(s, t, c, seen) || mentions_go(s, v, c, seen) || mentions_go(s, b, c, seen)
        }
        ExprNode::Proj(_, _, x) => mentions_go(s, x, c, seen),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instantiate_then_abstract_round_trips() {
        let mut s = Store::new();
        let z = s.zero();
        let ty = s.sort(z);
        let b0 = s.expr(ExprNode::BVar(0));
        let b1 = s.expr(ExprNode::BVar(1));
        let body = s.app(b0, b1);
        let x = s.expr(ExprNode::FVar(7));
        let opened = instantiate(&mut s, body, &[x]);
        let b0x = s.expr(ExprNode::BVar(0));
        let expect = s.app(x, b0x);
        assert_eq!(opened, expect);
        let back = abstract_fvars(&mut s, opened, &[x]);
        // The outer loose variable 1 was lowered to 0 by instantiate; abstracting lifts nothing.
        let b1b = s.expr(ExprNode::BVar(0));
        let b0b = s.expr(ExprNode::BVar(0));
        assert_eq!(back, s.app(b0b, b1b));
        let _ = ty;
    }

    #[test]
    fn instantiate_under_binder_lifts_value() {
        let mut s = Store::new();
        let z = s.zero();
        let ty = s.sort(z);
        let b1 = s.expr(ExprNode::BVar(1));
        let lam = s.expr(ExprNode::Lam(ty, b1));
        let v = s.expr(ExprNode::BVar(5));
        let r = instantiate(&mut s, lam, &[v]);
        let b6 = s.expr(ExprNode::BVar(6));
        assert_eq!(r, s.expr(ExprNode::Lam(ty, b6)));
    }
}

//! Universe levels: substitution, and a complete decision procedure for `l1 <= l2` and
//! `l1 == l2` (for all assignments of the parameters to natural numbers).
//!
//! `imax a p` with a parameter `p` is resolved by case analysis (`p = 0` or `p = q + 1`); once no
//! such `imax` remains, a level is a maximum of atoms `p + k` and constants `k`, and `<=` is
//! decided atom by atom.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::store::{LevelId, LevelNode, NameId, Store};

/// Upper bound on case splits for one comparison (fails closed: "not <=").
const MAX_SPLITS: u32 = 4096;

/// Substitutes universe parameters (`ps[i] := us[i]`).
pub fn instantiate(s: &mut Store, l: LevelId, ps: &[NameId], us: &[LevelId]) -> LevelId {
    if !s.level_has_param(l) {
        return l;
    }
    let mut memo = FxHashMap::default();
    inst_go(s, l, ps, us, &mut memo)
}

// Memoised: level terms are DAGs (`max l l` nested deeply would otherwise be exponential).
fn inst_go(
    s: &mut Store,
    l: LevelId,
    ps: &[NameId],
    us: &[LevelId],
    memo: &mut FxHashMap<LevelId, LevelId>,
) -> LevelId {
    if !s.level_has_param(l) {
        return l;
    }
    if let Some(&r) = memo.get(&l) {
        return r;
    }
    let r = match s.level_node(l) {
        LevelNode::Zero => l,
        LevelNode::Param(p) => match ps.iter().position(|&q| q == p) {
            Some(i) => us.get(i).copied().unwrap_or(l),
            None => l,
        },
        LevelNode::Succ(a) => {
            let a = inst_go(s, a, ps, us, memo);
            s.succ(a)
        }
        LevelNode::Max(a, b) => {
            let (a, b) = (inst_go(s, a, ps, us, memo), inst_go(s, b, ps, us, memo));
            s.level(LevelNode::Max(a, b))
        }
        LevelNode::IMax(a, b) => {
            let (a, b) = (inst_go(s, a, ps, us, memo), inst_go(s, b, ps, us, memo));
            s.level(LevelNode::IMax(a, b))
        }
    };
    memo.insert(l, r);
    r
}

/// The first parameter of `l` not in `ps`, if any.
pub fn undeclared_param(s: &Store, l: LevelId, ps: &[NameId]) -> Option<NameId> {
    let mut seen = FxHashSet::default();
    undeclared_go(s, l, ps, &mut seen)
}

fn undeclared_go(
    s: &Store,
    l: LevelId,
    ps: &[NameId],
    seen: &mut FxHashSet<LevelId>,
) -> Option<NameId> {
    if !s.level_has_param(l) || !seen.insert(l) {
        return None;
    }
    match s.level_node(l) {
        LevelNode::Zero => None,
        LevelNode::Param(p) => (!ps.contains(&p)).then_some(p),
        LevelNode::Succ(a) => undeclared_go(s, a, ps, seen),
        LevelNode::Max(a, b) | LevelNode::IMax(a, b) => {
            undeclared_go(s, a, ps, seen).or_else(|| undeclared_go(s, b, ps, seen))
        }
    }
}

/// An atom of a normalised level: `param + k` or the constant `k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Atom {
    param: Option<NameId>,
    k: u64,
}

/// Atoms collected so far, and the (level, level, offset) nodes already visited.
#[derive(Default)]
struct Atoms {
    list: Vec<Atom>,
    seen: FxHashSet<(LevelId, LevelId, u64)>,
}

/// Flattens a level into atoms, or reports a parameter that must be case-split first.
fn atoms(s: &Store, l: LevelId, k: u64, out: &mut Atoms) -> Result<(), NameId> {
    if !out.seen.insert((l, LevelId(u32::MAX), k)) {
        return Ok(());
    }
    match s.level_node(l) {
        LevelNode::Zero => {
            out.list.push(Atom { param: None, k });
            Ok(())
        }
        LevelNode::Param(p) => {
            out.list.push(Atom { param: Some(p), k });
            Ok(())
        }
        LevelNode::Succ(a) => atoms(s, a, k.saturating_add(1), out),
        LevelNode::Max(a, b) => {
            atoms(s, a, k, out)?;
            atoms(s, b, k, out)
        }
        LevelNode::IMax(a, b) => match s.level_node(b) {
            LevelNode::Zero => {
                out.list.push(Atom { param: None, k });
                Ok(())
            }
            LevelNode::Succ(_) => {
                atoms(s, a, k, out)?;
                atoms(s, b, k, out)
            }
            LevelNode::Param(p) => Err(p),
            // imax a (max b c) = max (imax a b) (imax a c)
            LevelNode::Max(b1, b2) => {
                imax_atoms(s, a, b1, k, out)?;
                imax_atoms(s, a, b2, k, out)
            }
            // imax a (imax b c) = max (imax a c) (imax b c)
            LevelNode::IMax(b1, b2) => {
                imax_atoms(s, a, b2, k, out)?;
                imax_atoms(s, b1, b2, k, out)
            }
        },
    }
}

/// Atoms of `imax a b + k` without interning `imax a b`.
fn imax_atoms(s: &Store, a: LevelId, b: LevelId, k: u64, out: &mut Atoms) -> Result<(), NameId> {
    if !out.seen.insert((a, b, k)) {
        return Ok(());
    }
    match s.level_node(b) {
        LevelNode::Zero => {
            out.list.push(Atom { param: None, k });
            Ok(())
        }
        LevelNode::Succ(_) => {
            atoms(s, a, k, out)?;
            atoms(s, b, k, out)
        }
        LevelNode::Param(p) => Err(p),
        LevelNode::Max(b1, b2) => {
            imax_atoms(s, a, b1, k, out)?;
            imax_atoms(s, a, b2, k, out)
        }
        LevelNode::IMax(b1, b2) => {
            imax_atoms(s, a, b2, k, out)?;
            imax_atoms(s, b1, b2, k, out)
        }
    }
}

/// Replaces parameter `p` by `r` in `l`.
fn subst_param(s: &mut Store, l: LevelId, p: NameId, r: LevelId) -> LevelId {
    instantiate(s, l, &[p], &[r])
}

/// `a <= b` for every assignment of the parameters.
pub fn leq(s: &mut Store, a: LevelId, b: LevelId) -> bool {
    let mut budget = MAX_SPLITS;
    leq_split(s, a, b, &mut budget)
}

fn leq_split(s: &mut Store, a: LevelId, b: LevelId, budget: &mut u32) -> bool {
    if a == b {
        return true;
    }
    let mut xa = Atoms::default();
    let mut xb = Atoms::default();
    let split = atoms(s, a, 0, &mut xa)
        .err()
        .or_else(|| atoms(s, b, 0, &mut xb).err());
    match split {
        Some(p) => {
            if *budget == 0 {
                s.level_budget_hit = true;
                return false;
            }
            *budget -= 1;
            let zero = s.zero();
            let pl = s.level(LevelNode::Param(p));
            let sp = s.succ(pl);
            let (a0, b0) = (subst_param(s, a, p, zero), subst_param(s, b, p, zero));
            if !leq_split(s, a0, b0, budget) {
                return false;
            }
            let (a1, b1) = (subst_param(s, a, p, sp), subst_param(s, b, p, sp));
            leq_split(s, a1, b1, budget)
        }
        None => atoms_leq(&xa.list, &xb.list),
    }
}

fn atoms_leq(xa: &[Atom], xb: &[Atom]) -> bool {
    // The value of `b` when every parameter is 0: its largest offset.
    let b_min = xb.iter().map(|x| x.k).max().unwrap_or(0);
    xa.iter().all(|x| match x.param {
        // A constant is below `b` iff it is below b's value at the all-zero assignment.
        None => x.k <= b_min,
        // `p + k` is unbounded in `p`: `b` must contain `p + k'` with `k' >= k`.
        Some(p) => xb.iter().any(|y| y.param == Some(p) && y.k >= x.k),
    })
}

/// `a == b` for every assignment of the parameters.
pub fn equiv(s: &mut Store, a: LevelId, b: LevelId) -> bool {
    a == b || (leq(s, a, b) && leq(s, b, a))
}

/// True when `l` is 0 for every assignment.
pub fn is_zero(s: &mut Store, l: LevelId) -> bool {
    let z = s.zero();
    leq(s, l, z)
}

/// True when `l >= 1` for every assignment (the sort is never `Prop`).
pub fn is_nonzero(s: &mut Store, l: LevelId) -> bool {
    let z = s.zero();
    let one = s.succ(z);
    leq(s, one, l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Store, LevelId, LevelId) {
        let mut s = Store::new();
        let u = s.name_path("u");
        let v = s.name_path("v");
        let lu = s.level(LevelNode::Param(u));
        let lv = s.level(LevelNode::Param(v));
        (s, lu, lv)
    }

    #[test]
    fn max_is_commutative_and_idempotent() {
        let (mut s, u, v) = setup();
        let a = s.level(LevelNode::Max(u, v));
        let b = s.level(LevelNode::Max(v, u));
        assert!(equiv(&mut s, a, b));
        let c = s.level(LevelNode::Max(u, u));
        assert!(equiv(&mut s, c, u));
    }

    #[test]
    fn imax_with_zero_is_zero_and_succ_is_max() {
        let (mut s, u, v) = setup();
        let z = s.zero();
        let a = s.level(LevelNode::IMax(u, z));
        assert!(is_zero(&mut s, a));
        let sv = s.succ(v);
        let b = s.level(LevelNode::IMax(u, sv));
        let m = s.level(LevelNode::Max(u, sv));
        assert!(equiv(&mut s, b, m));
    }

    #[test]
    fn imax_param_needs_case_split() {
        let (mut s, u, v) = setup();
        // imax u v <= max u v, but not conversely (v = 0, u = 1).
        let a = s.level(LevelNode::IMax(u, v));
        let m = s.level(LevelNode::Max(u, v));
        assert!(leq(&mut s, a, m));
        assert!(!leq(&mut s, m, a));
        // imax u u == u
        let c = s.level(LevelNode::IMax(u, u));
        assert!(equiv(&mut s, c, u));
    }

    #[test]
    fn succ_is_not_below_param() {
        let (mut s, u, _) = setup();
        let su = s.succ(u);
        assert!(!leq(&mut s, su, u));
        assert!(leq(&mut s, u, su));
        let z = s.zero();
        let one = s.succ(z);
        assert!(!leq(&mut s, one, u));
        assert!(is_nonzero(&mut s, su));
    }

    #[test]
    fn deeply_shared_levels_are_compared_without_blowup() {
        let (mut s, u, v) = setup();
        let mut l = s.level(LevelNode::IMax(u, v));
        for _ in 0..200 {
            l = s.level(LevelNode::Max(l, l));
        }
        let m = s.level(LevelNode::Max(u, v));
        assert!(leq(&mut s, l, m));
        assert!(!leq(&mut s, m, l));
        let w = s.name_path("w");
        let ps = [w];
        let z = s.zero();
        assert_eq!(instantiate(&mut s, l, &ps, &[z]), l);
        assert!(undeclared_param(&s, l, &ps).is_some());
    }
}

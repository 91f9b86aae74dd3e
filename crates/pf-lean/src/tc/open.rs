//! A fast path for checking terms without opening binders.
//!
//! Opening every binder with a fresh free variable re-instantiates the body each time, which
//! is quadratic on wide, deep terms whose inner parts mention many outer binders. This pass
//! types a closed term directly on de Bruijn indices, with a context of binder types, and
//! succeeds only when every check is syntactic: binder domains infer to a `Sort`, and each
//! argument's type is identical to the function's domain. Anything else (reduction, proof
//! irrelevance, `let`, projections) makes it give up, and the caller falls back to the full
//! checker, so it can only accept what the full checker accepts.

use rustc_hash::FxHashMap;

use super::TypeChecker;
use crate::error::KernelError;
use crate::store::{ExprId, ExprNode, LevelId, LevelNode};
use crate::subst;

/// Step budget of one attempt (the full checker takes over when it runs out).
const BUDGET: u64 = 20_000_000;

/// Interned binder contexts: id 0 is empty; `(parent, type)` -> id.
struct Ctx {
    ids: FxHashMap<(u32, ExprId), u32>,
    nodes: Vec<(u32, ExprId, u32)>,
}

impl Ctx {
    fn push(&mut self, parent: u32, ty: ExprId) -> u32 {
        if let Some(&id) = self.ids.get(&(parent, ty)) {
            return id;
        }
        let depth = if parent == 0 {
            1
        } else {
            self.nodes[parent as usize].2 + 1
        };
        let id = self.nodes.len() as u32;
        self.nodes.push((parent, ty, depth));
        self.ids.insert((parent, ty), id);
        id
    }

    /// Type of bound variable `i` in context `c`, relative to `c`.
    fn lookup(&self, mut c: u32, i: u32) -> Option<(ExprId, u32)> {
        for _ in 0..i {
            if c == 0 {
                return None;
            }
            c = self.nodes[c as usize].0;
        }
        if c == 0 {
            None
        } else {
            Some((self.nodes[c as usize].1, i + 1))
        }
    }
}

struct Open {
    ctx: Ctx,
    cache: FxHashMap<(ExprId, u32), Option<ExprId>>,
    budget: u64,
}

impl TypeChecker<'_> {
    /// Checks a closed term syntactically; `None` means "use the full checker".
    pub fn check_open(&mut self, e: ExprId) -> Result<Option<ExprId>, KernelError> {
        if self.s.info(e).loose_bvar_range > 0 {
            return Ok(None);
        }
        let mut o = Open {
            ctx: Ctx {
                ids: FxHashMap::default(),
                nodes: vec![(0, e, 0)],
            },
            cache: FxHashMap::default(),
            budget: BUDGET,
        };
        self.open_go(&mut o, e, 0)
    }

    fn open_go(&mut self, o: &mut Open, e: ExprId, c: u32) -> Result<Option<ExprId>, KernelError> {
        if o.budget == 0 {
            return Ok(None);
        }
        o.budget -= 1;
        self.s.check_limits()?;
        if let Some(&r) = o.cache.get(&(e, c)) {
            return Ok(r);
        }
        let r = match self.s.node(e) {
            ExprNode::BVar(i) => o
                .ctx
                .lookup(c, i)
                .map(|(t, n)| subst::lift(self.s, t, n, 0)),
            ExprNode::FVar(_) => self.local_type(e),
            ExprNode::Sort(l) => {
                if self.check_level(l).is_err() {
                    None
                } else {
                    let sl = self.s.succ(l);
                    Some(self.s.sort(sl))
                }
            }
            ExprNode::Const(..) | ExprNode::NatLit(_) | ExprNode::StrLit(_) => {
                match self.check(e) {
                    Ok(t) => Some(t),
                    Err(KernelError::Ill(_)) => None,
                    Err(err) => return Err(err),
                }
            }
            ExprNode::App(..) => {
                let (f, args) = self.s.unfold_apps(e);
                let Some(mut ft) = self.open_go(o, f, c)? else {
                    return Ok(None);
                };
                for a in args {
                    let ExprNode::Pi(dom, body) = self.s.node(ft) else {
                        return Ok(None);
                    };
                    let Some(at) = self.open_go(o, a, c)? else {
                        return Ok(None);
                    };
                    if at != dom {
                        return Ok(None);
                    }
                    ft = subst::instantiate(self.s, body, &[a]);
                }
                Some(ft)
            }
            ExprNode::Lam(ty, body) => {
                if self.open_sort(o, ty, c)?.is_none() {
                    return Ok(None);
                }
                let c2 = o.ctx.push(c, ty);
                match self.open_go(o, body, c2)? {
                    Some(bt) => Some(self.s.expr(ExprNode::Pi(ty, bt))),
                    None => None,
                }
            }
            ExprNode::Pi(ty, body) => {
                let Some(l1) = self.open_sort(o, ty, c)? else {
                    return Ok(None);
                };
                let c2 = o.ctx.push(c, ty);
                let Some(l2) = self.open_sort(o, body, c2)? else {
                    return Ok(None);
                };
                let l = self.s.level(LevelNode::IMax(l1, l2));
                Some(self.s.sort(l))
            }
            ExprNode::Let(..) | ExprNode::Proj(..) => None,
        };
        o.cache.insert((e, c), r);
        Ok(r)
    }

    fn open_sort(
        &mut self,
        o: &mut Open,
        ty: ExprId,
        c: u32,
    ) -> Result<Option<LevelId>, KernelError> {
        Ok(match self.open_go(o, ty, c)? {
            Some(t) => match self.s.node(t) {
                ExprNode::Sort(l) => Some(l),
                _ => None,
            },
            None => None,
        })
    }
}

//! Hash-consed arenas for names, universe levels and expressions.
//!
//! Every term is interned, so structural equality is an integer comparison and the kernel's
//! caches key on small ids. Binder names and binder info are not kept: the kernel ignores them
//! (definitional equality is up to alpha-equivalence), and dropping them maximises sharing.

use num_bigint::BigUint;
use rustc_hash::FxHashMap;

use crate::error::KernelError;

/// Interned hierarchical name (`Nat.succ`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NameId(pub u32);
/// Interned universe level.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct LevelId(pub u32);
/// Interned list of universe levels (the `us` of a constant).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct LevelsId(pub u32);
/// Interned expression.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ExprId(pub u32);

/// A name component list: anonymous, `pre.str` or `pre.num`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum NameNode {
    /// The root name.
    Anon,
    /// `pre.s`.
    Str(NameId, Box<str>),
    /// `pre.n`.
    Num(NameId, u64),
}

/// A universe level term.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum LevelNode {
    /// `0`.
    Zero,
    /// `l + 1`.
    Succ(LevelId),
    /// `max a b`.
    Max(LevelId, LevelId),
    /// `imax a b` (0 when `b` is 0, else `max a b`).
    IMax(LevelId, LevelId),
    /// A universe parameter.
    Param(NameId),
}

/// A kernel expression with de Bruijn indices for bound variables.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ExprNode {
    /// Bound variable (de Bruijn index).
    BVar(u32),
    /// `Sort l`.
    Sort(LevelId),
    /// Constant with universe arguments.
    Const(NameId, LevelsId),
    /// Application.
    App(ExprId, ExprId),
    /// `fun (x : ty) => body`.
    Lam(ExprId, ExprId),
    /// `(x : ty) -> body`.
    Pi(ExprId, ExprId),
    /// `let x : ty := val; body`.
    Let(ExprId, ExprId, ExprId),
    /// Natural number literal (index into the literal table).
    NatLit(u32),
    /// String literal (index into the literal table).
    StrLit(u32),
    /// Primitive projection `struct.idx` of structure type `name`.
    Proj(NameId, u32, ExprId),
    /// Free variable introduced by the checker when opening a binder.
    FVar(u32),
}

/// Cached facts about an expression.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExprInfo {
    /// One more than the largest loose bound variable index (0 = closed).
    pub loose_bvar_range: u32,
    /// Contains a free variable.
    pub has_fvar: bool,
    /// Contains a universe parameter.
    pub has_lparam: bool,
}

/// Upper bound on interned expressions (memory limit for untrusted input).
pub const MAX_EXPRS: usize = 100_000_000;

/// The arenas.
#[derive(Clone, Default)]
pub struct Store {
    names: Vec<NameNode>,
    name_map: FxHashMap<NameNode, NameId>,
    levels: Vec<LevelNode>,
    level_map: FxHashMap<LevelNode, LevelId>,
    level_has_param: Vec<bool>,
    lists: Vec<Box<[LevelId]>>,
    list_map: FxHashMap<Box<[LevelId]>, LevelsId>,
    exprs: Vec<ExprNode>,
    infos: Vec<ExprInfo>,
    expr_map: FxHashMap<ExprNode, ExprId>,
    nats: Vec<BigUint>,
    nat_map: FxHashMap<BigUint, u32>,
    strs: Vec<String>,
    str_map: FxHashMap<String, u32>,
    overflow: bool,
    /// Set when a universe comparison ran out of case splits (its "no" is then unreliable,
    /// so a rejection that follows is reported as a decline).
    pub level_budget_hit: bool,
}

impl Store {
    /// A store holding the anonymous name, level zero and the empty level list.
    pub fn new() -> Self {
        let mut s = Store::default();
        s.name(NameNode::Anon);
        s.level(LevelNode::Zero);
        s.levels_of(&[]);
        s
    }

    /// True once the expression limit was hit (further terms are aliased to the first one).
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// Fails when the expression limit was hit.
    pub fn check_limits(&self) -> Result<(), KernelError> {
        if self.overflow {
            Err(KernelError::Resource(
                "expression arena limit exceeded".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// Interns a name.
    pub fn name(&mut self, n: NameNode) -> NameId {
        if let Some(&id) = self.name_map.get(&n) {
            return id;
        }
        let id = NameId(self.names.len() as u32);
        self.names.push(n.clone());
        self.name_map.insert(n, id);
        id
    }

    /// The anonymous name.
    pub fn anon(&self) -> NameId {
        NameId(0)
    }

    /// Interns `pre.s`.
    pub fn name_str(&mut self, pre: NameId, s: &str) -> NameId {
        self.name(NameNode::Str(pre, s.into()))
    }

    /// Interns a dotted name such as `Nat.succ` (components split on `.`).
    pub fn name_path(&mut self, dotted: &str) -> NameId {
        let mut n = self.anon();
        for part in dotted.split('.') {
            n = self.name_str(n, part);
        }
        n
    }

    /// Looks up the node of a name.
    pub fn name_node(&self, n: NameId) -> &NameNode {
        &self.names[n.0 as usize]
    }

    /// Renders a name as dotted text.
    pub fn name_to_string(&self, n: NameId) -> String {
        let mut parts = Vec::new();
        let mut cur = n;
        loop {
            match self.name_node(cur) {
                NameNode::Anon => break,
                NameNode::Str(p, s) => {
                    parts.push(s.to_string());
                    cur = *p;
                }
                NameNode::Num(p, i) => {
                    parts.push(i.to_string());
                    cur = *p;
                }
            }
        }
        if parts.is_empty() {
            return "[anonymous]".into();
        }
        parts.reverse();
        parts.join(".")
    }

    /// Interns a level.
    pub fn level(&mut self, l: LevelNode) -> LevelId {
        if let Some(&id) = self.level_map.get(&l) {
            return id;
        }
        let hp = match l {
            LevelNode::Zero => false,
            LevelNode::Param(_) => true,
            LevelNode::Succ(a) => self.level_has_param[a.0 as usize],
            LevelNode::Max(a, b) | LevelNode::IMax(a, b) => {
                self.level_has_param[a.0 as usize] || self.level_has_param[b.0 as usize]
            }
        };
        let id = LevelId(self.levels.len() as u32);
        self.levels.push(l);
        self.level_has_param.push(hp);
        self.level_map.insert(l, id);
        id
    }

    /// Level zero.
    pub fn zero(&self) -> LevelId {
        LevelId(0)
    }

    /// `l + 1`.
    pub fn succ(&mut self, l: LevelId) -> LevelId {
        self.level(LevelNode::Succ(l))
    }

    /// Looks up a level.
    pub fn level_node(&self, l: LevelId) -> LevelNode {
        self.levels[l.0 as usize]
    }

    /// True when the level mentions a universe parameter.
    pub fn level_has_param(&self, l: LevelId) -> bool {
        self.level_has_param[l.0 as usize]
    }

    /// Interns a list of levels.
    pub fn levels_of(&mut self, ls: &[LevelId]) -> LevelsId {
        if let Some(&id) = self.list_map.get(ls) {
            return id;
        }
        let id = LevelsId(self.lists.len() as u32);
        self.lists.push(ls.into());
        self.list_map.insert(ls.into(), id);
        id
    }

    /// Looks up a list of levels.
    pub fn level_list(&self, id: LevelsId) -> &[LevelId] {
        &self.lists[id.0 as usize]
    }

    /// Interns a natural-number literal.
    pub fn nat_lit(&mut self, n: BigUint) -> ExprId {
        let idx = match self.nat_map.get(&n) {
            Some(&i) => i,
            None => {
                let i = self.nats.len() as u32;
                self.nats.push(n.clone());
                self.nat_map.insert(n, i);
                i
            }
        };
        self.expr(ExprNode::NatLit(idx))
    }

    /// Interns a string literal.
    pub fn str_lit(&mut self, s: String) -> ExprId {
        let idx = match self.str_map.get(&s) {
            Some(&i) => i,
            None => {
                let i = self.strs.len() as u32;
                self.strs.push(s.clone());
                self.str_map.insert(s, i);
                i
            }
        };
        self.expr(ExprNode::StrLit(idx))
    }

    /// The value of a natural literal.
    pub fn nat_value(&self, idx: u32) -> &BigUint {
        &self.nats[idx as usize]
    }

    /// The value of a string literal.
    pub fn str_value(&self, idx: u32) -> &str {
        &self.strs[idx as usize]
    }

    /// Interns an expression, computing its cached facts.
    pub fn expr(&mut self, e: ExprNode) -> ExprId {
        if let Some(&id) = self.expr_map.get(&e) {
            return id;
        }
        if self.exprs.len() >= MAX_EXPRS {
            self.overflow = true;
            return ExprId(0);
        }
        let info = self.compute_info(e);
        let id = ExprId(self.exprs.len() as u32);
        self.exprs.push(e);
        self.infos.push(info);
        self.expr_map.insert(e, id);
        id
    }

    fn compute_info(&self, e: ExprNode) -> ExprInfo {
        let i = |x: ExprId| self.infos[x.0 as usize];
        match e {
            ExprNode::BVar(n) => ExprInfo {
                loose_bvar_range: n.saturating_add(1),
                ..Default::default()
            },
            ExprNode::Sort(l) => ExprInfo {
                has_lparam: self.level_has_param(l),
                ..Default::default()
            },
            ExprNode::Const(_, ls) => ExprInfo {
                has_lparam: self.level_list(ls).iter().any(|&l| self.level_has_param(l)),
                ..Default::default()
            },
            ExprNode::App(f, a) => {
                let (x, y) = (i(f), i(a));
                ExprInfo {
                    loose_bvar_range: x.loose_bvar_range.max(y.loose_bvar_range),
                    has_fvar: x.has_fvar || y.has_fvar,
                    has_lparam: x.has_lparam || y.has_lparam,
                }
            }
            ExprNode::Lam(t, b) | ExprNode::Pi(t, b) => {
                let (x, y) = (i(t), i(b));
                ExprInfo {
                    loose_bvar_range: x.loose_bvar_range.max(y.loose_bvar_range.saturating_sub(1)),
                    has_fvar: x.has_fvar || y.has_fvar,
                    has_lparam: x.has_lparam || y.has_lparam,
                }
            }
            ExprNode::Let(t, v, b) => {
                let (x, y, z) = (i(t), i(v), i(b));
                ExprInfo {
                    loose_bvar_range: x
                        .loose_bvar_range
                        .max(y.loose_bvar_range)
                        .max(z.loose_bvar_range.saturating_sub(1)),
                    has_fvar: x.has_fvar || y.has_fvar || z.has_fvar,
                    has_lparam: x.has_lparam || y.has_lparam || z.has_lparam,
                }
            }
            ExprNode::NatLit(_) | ExprNode::StrLit(_) => ExprInfo::default(),
            ExprNode::Proj(_, _, s) => i(s),
            ExprNode::FVar(_) => ExprInfo {
                has_fvar: true,
                ..Default::default()
            },
        }
    }

    /// Looks up an expression.
    #[inline]
    pub fn node(&self, e: ExprId) -> ExprNode {
        self.exprs[e.0 as usize]
    }

    /// Cached facts of an expression.
    #[inline]
    pub fn info(&self, e: ExprId) -> ExprInfo {
        self.infos[e.0 as usize]
    }

    /// Number of interned expressions.
    pub fn expr_count(&self) -> usize {
        self.exprs.len()
    }

    /// `f a`.
    pub fn app(&mut self, f: ExprId, a: ExprId) -> ExprId {
        self.expr(ExprNode::App(f, a))
    }

    /// `f a1 ... an`.
    pub fn apps(&mut self, f: ExprId, args: &[ExprId]) -> ExprId {
        args.iter().fold(f, |acc, &a| self.app(acc, a))
    }

    /// `Sort l`.
    pub fn sort(&mut self, l: LevelId) -> ExprId {
        self.expr(ExprNode::Sort(l))
    }

    /// A constant.
    pub fn constant(&mut self, n: NameId, ls: &[LevelId]) -> ExprId {
        let ls = self.levels_of(ls);
        self.expr(ExprNode::Const(n, ls))
    }

    /// `e` as head and arguments.
    pub fn unfold_apps(&self, mut e: ExprId) -> (ExprId, Vec<ExprId>) {
        let mut args = Vec::new();
        while let ExprNode::App(f, a) = self.node(e) {
            args.push(a);
            e = f;
        }
        args.reverse();
        (e, args)
    }

    /// The head of an application spine.
    pub fn head(&self, mut e: ExprId) -> ExprId {
        while let ExprNode::App(f, _) = self.node(e) {
            e = f;
        }
        e
    }

    /// Number of arguments of an application spine.
    pub fn num_args(&self, mut e: ExprId) -> usize {
        let mut n = 0;
        while let ExprNode::App(f, _) = self.node(e) {
            n += 1;
            e = f;
        }
        n
    }

    /// The constant name at the head of `e`, if any.
    pub fn head_const(&self, e: ExprId) -> Option<(NameId, LevelsId)> {
        match self.node(self.head(e)) {
            ExprNode::Const(n, ls) => Some((n, ls)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_shares_equal_terms() {
        let mut s = Store::new();
        let a = s.name_path("Nat.succ");
        let b = s.name_path("Nat.succ");
        assert_eq!(a, b);
        assert_eq!(s.name_to_string(a), "Nat.succ");
        let z = s.zero();
        let t1 = s.sort(z);
        let t2 = s.sort(z);
        assert_eq!(t1, t2);
        let v = s.expr(ExprNode::BVar(3));
        let lam = s.expr(ExprNode::Lam(t1, v));
        assert_eq!(s.info(lam).loose_bvar_range, 3);
    }
}

//! The type checker: type inference, weak-head normalisation and definitional equality
//! (the rules of Lean 4's kernel `type_checker`).

mod defeq;
mod infer;
mod nat;
mod open;
mod whnf;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::env::{ConstKind, Constant, Env};
use crate::error::KernelError;
use crate::store::{ExprId, ExprNode, LevelId, NameId, Store};
use crate::subst;

/// Default reduction fuel per declaration (steps of whnf/defeq).
pub const DEFAULT_FUEL: u64 = 50_000_000;

/// Names the kernel treats specially (literals, quotients).
#[derive(Clone, Copy)]
pub struct Wk {
    /// `Nat`.
    pub nat: NameId,
    /// `Nat.zero`.
    pub nat_zero: NameId,
    /// `Nat.succ`.
    pub nat_succ: NameId,
    /// `String`.
    pub string: NameId,
    /// `String.mk`.
    pub string_mk: NameId,
    /// `String.ofList`.
    pub string_of_list: NameId,
    /// `Char`.
    pub char: NameId,
    /// `Char.ofNat`.
    pub char_of_nat: NameId,
    /// `List.nil`.
    pub list_nil: NameId,
    /// `List.cons`.
    pub list_cons: NameId,
    /// `Bool.true`.
    pub bool_true: NameId,
    /// `Bool.false`.
    pub bool_false: NameId,
    /// `Quot.lift`.
    pub quot_lift: NameId,
    /// `Quot.ind`.
    pub quot_ind: NameId,
    /// `Quot.mk`.
    pub quot_mk: NameId,
    /// Binary Nat operations with kernel acceleration, in the order of [`nat::BinOp`].
    pub nat_ops: [NameId; 14],
    /// `Nat.log2`.
    pub nat_log2: NameId,
}

impl Wk {
    /// Interns the well-known names.
    pub fn new(s: &mut Store) -> Self {
        let ops = [
            "Nat.add",
            "Nat.sub",
            "Nat.mul",
            "Nat.div",
            "Nat.mod",
            "Nat.gcd",
            "Nat.beq",
            "Nat.ble",
            "Nat.land",
            "Nat.lor",
            "Nat.xor",
            "Nat.shiftLeft",
            "Nat.shiftRight",
            "Nat.pow",
        ];
        let nat_ops = ops.map(|o| s.name_path(o));
        Wk {
            nat: s.name_path("Nat"),
            nat_zero: s.name_path("Nat.zero"),
            nat_succ: s.name_path("Nat.succ"),
            string: s.name_path("String"),
            string_mk: s.name_path("String.mk"),
            string_of_list: s.name_path("String.ofList"),
            char: s.name_path("Char"),
            char_of_nat: s.name_path("Char.ofNat"),
            list_nil: s.name_path("List.nil"),
            list_cons: s.name_path("List.cons"),
            bool_true: s.name_path("Bool.true"),
            bool_false: s.name_path("Bool.false"),
            quot_lift: s.name_path("Quot.lift"),
            quot_ind: s.name_path("Quot.ind"),
            quot_mk: s.name_path("Quot.mk"),
            nat_ops,
            nat_log2: s.name_path("Nat.log2"),
        }
    }
}

/// A local (free variable) declaration.
#[derive(Clone, Copy)]
struct Local {
    ty: ExprId,
    val: Option<ExprId>,
}

/// Checker state for one declaration (caches are valid while the environment is fixed).
pub struct TypeChecker<'a> {
    /// The term arenas.
    pub s: &'a mut Store,
    /// The environment.
    pub env: &'a Env,
    /// Well-known names.
    pub wk: Wk,
    /// Universe parameters in scope (`None` = do not check).
    pub lparams: Option<Vec<NameId>>,
    locals: FxHashMap<u32, Local>,
    next_fvar: u32,
    infer_cache: FxHashMap<ExprId, ExprId>,
    infer_only_cache: FxHashMap<ExprId, ExprId>,
    whnf_core_cache: FxHashMap<ExprId, ExprId>,
    whnf_cache: FxHashMap<ExprId, ExprId>,
    eq_cache: FxHashSet<(ExprId, ExprId)>,
    neq_cache: FxHashSet<(ExprId, ExprId)>,
    fuel: u64,
}

impl<'a> TypeChecker<'a> {
    /// A checker over `env` with universe parameters `lparams` in scope.
    pub fn new(
        s: &'a mut Store,
        env: &'a Env,
        wk: Wk,
        lparams: Option<Vec<NameId>>,
        fuel: u64,
    ) -> Self {
        TypeChecker {
            s,
            env,
            wk,
            lparams,
            locals: FxHashMap::default(),
            next_fvar: 0,
            infer_cache: FxHashMap::default(),
            infer_only_cache: FxHashMap::default(),
            whnf_core_cache: FxHashMap::default(),
            whnf_cache: FxHashMap::default(),
            eq_cache: FxHashSet::default(),
            neq_cache: FxHashSet::default(),
            fuel,
        }
    }

    /// Spends one unit of fuel.
    pub fn tick(&mut self) -> Result<(), KernelError> {
        if self.fuel == 0 {
            return Err(KernelError::Resource("reduction fuel exhausted".into()));
        }
        self.fuel -= 1;
        self.s.check_limits()
    }

    /// Introduces a free variable of type `ty` (with an optional let value).
    pub fn mk_local(&mut self, ty: ExprId, val: Option<ExprId>) -> ExprId {
        let id = self.next_fvar;
        self.next_fvar += 1;
        self.locals.insert(id, Local { ty, val });
        self.s.expr(ExprNode::FVar(id))
    }

    fn local(&self, e: ExprId) -> Option<Local> {
        match self.s.node(e) {
            ExprNode::FVar(i) => self.locals.get(&i).copied(),
            _ => None,
        }
    }

    /// Type of a free variable.
    pub fn local_type(&self, e: ExprId) -> Option<ExprId> {
        self.local(e).map(|l| l.ty)
    }

    /// Looks up a constant or fails with an "unknown constant" rejection.
    pub fn constant(&self, n: NameId) -> Result<&'a Constant, KernelError> {
        let env: &'a Env = self.env;
        env.get(n).ok_or_else(|| {
            KernelError::Ill(format!("unknown constant `{}`", self.s.name_to_string(n)))
        })
    }

    /// `(x1 : A1) -> ... -> body` over the free variables `xs` (outermost first).
    pub fn mk_pi(&mut self, xs: &[ExprId], body: ExprId) -> ExprId {
        self.bind(xs, body, false)
    }

    /// `fun (x1 : A1) ... => body` over the free variables `xs`.
    pub fn mk_lambda(&mut self, xs: &[ExprId], body: ExprId) -> ExprId {
        self.bind(xs, body, true)
    }

    fn bind(&mut self, xs: &[ExprId], body: ExprId, lam: bool) -> ExprId {
        let mut r = subst::abstract_fvars(self.s, body, xs);
        for i in (0..xs.len()).rev() {
            let ty = self.local_type(xs[i]).unwrap_or(xs[i]);
            let ty = subst::abstract_fvars(self.s, ty, &xs[..i]);
            r = self.s.expr(if lam {
                ExprNode::Lam(ty, r)
            } else {
                ExprNode::Pi(ty, r)
            });
        }
        r
    }

    /// Instantiates a constant's type at universe levels `us`.
    pub fn instantiate_type(&mut self, c: &Constant, us: &[LevelId]) -> ExprId {
        subst::instantiate_lparams(self.s, c.ty, &c.lparams, us)
    }

    /// Value of a definition or theorem (for delta), if unfoldable.
    pub fn unfoldable_value(c: &Constant) -> Option<ExprId> {
        match c.kind {
            ConstKind::Def { value, .. } | ConstKind::Thm { value } => Some(value),
            _ => None,
        }
    }
}

//! Nat literal extension: `Nat.add` etc. on literals computed with big integers (GMP-style),
//! as the Lean 4 kernel does for `Nat` operations applied to numerals.

use num_bigint::BigUint;
use num_traits::{ToPrimitive, Zero};

use super::TypeChecker;
use crate::error::KernelError;
use crate::store::{ExprId, ExprNode};

/// Largest exponent / shift computed (larger ones are left unreduced, like Lean's 2^24 guard).
const MAX_POW: u64 = 1 << 24;

impl TypeChecker<'_> {
    /// The numeral value of `e` after whnf, if it is a literal or `Nat.zero`.
    fn nat_value_of(&mut self, e: ExprId) -> Result<Option<BigUint>, KernelError> {
        let w = self.whnf(e)?;
        Ok(match self.s.node(w) {
            ExprNode::NatLit(i) => Some(self.s.nat_value(i).clone()),
            ExprNode::Const(n, _) if n == self.wk.nat_zero => Some(BigUint::zero()),
            _ => None,
        })
    }

    fn bool_const(&mut self, b: bool) -> ExprId {
        let n = if b {
            self.wk.bool_true
        } else {
            self.wk.bool_false
        };
        self.s.constant(n, &[])
    }

    /// Reduces `Nat.succ n`, `Nat.op a b` and `Nat.log2 a` on closed numerals.
    pub fn reduce_nat(&mut self, e: ExprId) -> Result<Option<ExprId>, KernelError> {
        if self.s.info(e).has_fvar {
            return Ok(None);
        }
        let (h, args) = self.s.unfold_apps(e);
        let ExprNode::Const(n, _) = self.s.node(h) else {
            return Ok(None);
        };
        if !self.env.contains(self.wk.nat) {
            return Ok(None);
        }
        if args.len() == 1 {
            if n == self.wk.nat_succ {
                let Some(v) = self.nat_value_of(args[0])? else {
                    return Ok(None);
                };
                return Ok(Some(self.s.nat_lit(v + 1u32)));
            }
            if n == self.wk.nat_log2 {
                let Some(v) = self.nat_value_of(args[0])? else {
                    return Ok(None);
                };
                let r = if v.is_zero() {
                    BigUint::zero()
                } else {
                    BigUint::from(v.bits() - 1)
                };
                return Ok(Some(self.s.nat_lit(r)));
            }
            return Ok(None);
        }
        if args.len() != 2 {
            return Ok(None);
        }
        let Some(op) = self.wk.nat_ops.iter().position(|&o| o == n) else {
            return Ok(None);
        };
        let Some(a) = self.nat_value_of(args[0])? else {
            return Ok(None);
        };
        let Some(b) = self.nat_value_of(args[1])? else {
            return Ok(None);
        };
        let r = match op {
            0 => a + b,
            1 => {
                if a >= b {
                    a - b
                } else {
                    BigUint::zero()
                }
            }
            2 => a * b,
            3 => {
                if b.is_zero() {
                    BigUint::zero()
                } else {
                    a / b
                }
            }
            4 => {
                if b.is_zero() {
                    a
                } else {
                    a % b
                }
            }
            5 => gcd(a, b),
            6 => return Ok(Some(self.bool_const(a == b))),
            7 => return Ok(Some(self.bool_const(a <= b))),
            8 => a & b,
            9 => a | b,
            10 => a ^ b,
            11 => match b.to_u64() {
                Some(s) if s <= MAX_POW => a << s,
                _ => return Ok(None),
            },
            12 => match b.to_u64() {
                Some(s) => a >> s,
                None => BigUint::zero(),
            },
            13 => match b.to_u64() {
                Some(p) if p <= MAX_POW => a.pow(p as u32),
                _ => return Ok(None),
            },
            _ => return Ok(None),
        };
        Ok(Some(self.s.nat_lit(r)))
    }
}

fn gcd(mut a: BigUint, mut b: BigUint) -> BigUint {
    while !b.is_zero() {
        let r = &a % &b;
        a = b;
        b = r;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcd_matches_euclid() {
        assert_eq!(
            gcd(BigUint::from(12u32), BigUint::from(18u32)),
            BigUint::from(6u32)
        );
        assert_eq!(
            gcd(BigUint::from(0u32), BigUint::from(5u32)),
            BigUint::from(5u32)
        );
    }
}

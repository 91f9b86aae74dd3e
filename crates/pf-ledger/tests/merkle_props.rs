//! Property tests: random trees, every proof verifies, any single bit flip is rejected.

use pf_ledger::hash::{Hash, leaf_hash};
use pf_ledger::merkle::{
    consistency_proof, inclusion_proof, root_of_leaves, verify_consistency, verify_inclusion,
};
use proptest::prelude::*;

fn leaves(n: u64, seed: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(&[seed.to_be_bytes(), i.to_be_bytes()].concat()))
        .collect()
}

fn flip(h: &Hash, bit: usize) -> Hash {
    let mut b = h.0;
    b[bit / 8 % 32] ^= 1 << (bit % 8);
    Hash(b)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn inclusion_proofs_verify_and_bit_flips_fail(n in 1u64..300, idx in any::<u64>(), seed in any::<u64>(), bit in 0usize..256, which in any::<usize>()) {
        let l = leaves(n, seed);
        let i = idx % n;
        let root = root_of_leaves(&l);
        let p = inclusion_proof(l.as_slice(), i, n).unwrap_or_default();
        prop_assert!(verify_inclusion(i, n, &l[i as usize], &p, &root).is_ok());
        // Flip a bit in the leaf, the root, or one proof element.
        let slot = which % (p.len() + 2);
        let (mut leaf, mut r, mut q) = (l[i as usize], root, p.clone());
        match slot {
            0 => leaf = flip(&leaf, bit),
            1 => r = flip(&r, bit),
            k => q[k - 2] = flip(&q[k - 2], bit),
        }
        prop_assert!(verify_inclusion(i, n, &leaf, &q, &r).is_err());
        // A wrong index or size fails too (unless it happens to produce the same path shape and hash, which it cannot).
        if n > 1 {
            let j = (i + 1) % n;
            prop_assert!(verify_inclusion(j, n, &l[i as usize], &p, &root).is_err());
        }
        // Dropping or adding a proof element fails.
        let mut longer = p.clone();
        longer.push(root);
        prop_assert!(verify_inclusion(i, n, &l[i as usize], &longer, &root).is_err());
        if !p.is_empty() {
            prop_assert!(verify_inclusion(i, n, &l[i as usize], &p[..p.len() - 1], &root).is_err());
        }
    }

    #[test]
    fn consistency_proofs_verify_and_bit_flips_fail(n in 2u64..300, m in any::<u64>(), seed in any::<u64>(), bit in 0usize..256, which in any::<usize>()) {
        let l = leaves(n, seed);
        let m = 1 + m % (n - 1);
        let old = root_of_leaves(&l[..m as usize]);
        let new = root_of_leaves(&l);
        let p = consistency_proof(l.as_slice(), m, n).unwrap_or_default();
        prop_assert!(verify_consistency(m, n, &old, &new, &p).is_ok());
        let slot = which % (p.len() + 2);
        let (mut a, mut b, mut q) = (old, new, p.clone());
        match slot {
            0 => a = flip(&a, bit),
            1 => b = flip(&b, bit),
            k => q[k - 2] = flip(&q[k - 2], bit),
        }
        prop_assert!(verify_consistency(m, n, &a, &b, &q).is_err());
        // A forked history (different last leaf) is never consistent.
        let mut forked = l.clone();
        forked[(n - 1) as usize] = leaf_hash(b"fork");
        let forked_root = root_of_leaves(&forked);
        prop_assert!(verify_consistency(m, n, &old, &forked_root, &p).is_err());
    }
}

//! RFC 9162 Merkle tree algorithms: tree heads, inclusion and consistency proofs, and their
//! verification. Pure: hashes come from a [`NodeSource`], so the same code serves proofs from
//! memory, from tiles on disk, or from tiles fetched over HTTP.

use crate::hash::{Hash, empty_root, node_hash};

/// Errors from proof verification. Each names the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// Leaf index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// A hash (root, leaf or proof element) does not have 32 bytes.
    #[error("{what} is {len} bytes, expected 32")]
    BadHashLength {
        /// Which value.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// The proof has the wrong number of elements for these sizes.
    #[error("proof has {got} hashes, expected {want}")]
    WrongProofLength {
        /// Elements supplied.
        got: usize,
        /// Elements the sizes require.
        want: usize,
    },
    /// The recomputed root differs from the expected one.
    #[error("recomputed root does not match the expected root")]
    RootMismatch,
    /// The older tree is larger than the newer tree.
    #[error("tree size {old} is larger than {new}")]
    SizeDecreased {
        /// Older size.
        old: u64,
        /// Newer size.
        new: u64,
    },
    /// Consistency with the empty tree is meaningless; rejected like transparency-dev does.
    #[error("consistency from an empty tree proves nothing")]
    EmptyOldTree,
    /// The range is not a subtree (start aligned to a power of two covering it).
    #[error("[{start}, {end}) is not a valid subtree")]
    NotASubtree {
        /// Start index.
        start: u64,
        /// End index (exclusive).
        end: u64,
    },
}

/// Source of hashes of *complete* subtrees: `node(level, index)` is the root of the perfect
/// subtree over leaves `[index << level, (index + 1) << level)`; level 0 are leaf hashes.
pub trait NodeSource {
    /// Error from the underlying storage.
    type Error;
    /// Hash of the complete subtree at `level`, `index`.
    fn node(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// Leaf hashes held in memory; interior nodes are recomputed on demand (tests, small trees).
impl NodeSource for [Hash] {
    type Error = std::convert::Infallible;
    fn node(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        let lo = (index << level) as usize;
        let hi = lo + (1usize << level);
        Ok(root_of_leaves(&self[lo..hi]))
    }
}

/// Largest power of two strictly less than `n` (`n >= 2`), the RFC 9162 §2.1.1 split point.
pub fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// MTH over a slice of leaf hashes (RFC 9162 §2.1.1), computed bottom-up in O(n).
pub fn root_of_leaves(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return empty_root();
    }
    let mut level: Vec<Hash> = leaves.to_vec();
    // Pairing adjacent nodes and promoting an odd last node gives the same tree as the
    // recursive largest-power-of-two split.
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            match pair {
                [l, r] => next.push(node_hash(l, r)),
                [one] => next.push(*one),
                _ => {}
            }
        }
        level = next;
    }
    level[0]
}

/// MTH(D[lo:hi]) for a range that is a node of some RFC 9162 tree (lo aligned to the split).
pub fn range_root<S: NodeSource + ?Sized>(src: &S, lo: u64, hi: u64) -> Result<Hash, S::Error> {
    let n = hi - lo;
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        return src.node(n.trailing_zeros(), lo >> n.trailing_zeros());
    }
    // Fold the perfect subtrees of the range from the right edge inwards.
    let k = split_point(n);
    let left = range_root(src, lo, lo + k)?;
    let right = range_root(src, lo + k, hi)?;
    Ok(node_hash(&left, &right))
}

/// Tree head (root hash) of the first `size` leaves.
pub fn tree_root<S: NodeSource + ?Sized>(src: &S, size: u64) -> Result<Hash, S::Error> {
    range_root(src, 0, size)
}

/// Roots of the right-edge ranges `[start, size)` of a tree: `size` splits into perfect
/// subtrees P1 > P2 > ... (its binary digits); the range from the start of Pj to the end is
/// the fold Pj..Pm. Computed once per proof, so right-edge siblings cost O(1) each and a
/// proof O(log n) node look-ups instead of O(log^2 n).
struct EdgeRoots {
    size: u64,
    starts: Vec<u64>,
    roots: Vec<Hash>,
}

impl EdgeRoots {
    fn new<S: NodeSource + ?Sized>(src: &S, size: u64) -> Result<EdgeRoots, S::Error> {
        let mut starts = Vec::new();
        let mut nodes = Vec::new();
        let mut lo = 0u64;
        for b in (0..64u32).rev() {
            if size >> b & 1 == 1 {
                starts.push(lo);
                nodes.push(src.node(b, lo >> b)?);
                lo += 1u64 << b;
            }
        }
        let mut roots = nodes.clone();
        for j in (0..roots.len().saturating_sub(1)).rev() {
            roots[j] = node_hash(&nodes[j], &roots[j + 1]);
        }
        Ok(EdgeRoots {
            size,
            starts,
            roots,
        })
    }

    fn range<S: NodeSource + ?Sized>(&self, src: &S, lo: u64, hi: u64) -> Result<Hash, S::Error> {
        if hi == self.size
            && let Ok(j) = self.starts.binary_search(&lo)
        {
            return Ok(self.roots[j]);
        }
        range_root(src, lo, hi)
    }
}

/// Inclusion proof PATH(index, D[0:size]) (RFC 9162 §2.1.3.1), leaf sibling first.
///
/// Callers check `index < size`; this returns an empty path otherwise.
pub fn inclusion_proof<S: NodeSource + ?Sized>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, S::Error> {
    let mut proof = Vec::new();
    if index >= size {
        return Ok(proof);
    }
    let edge = EdgeRoots::new(src, size)?;
    let (mut lo, mut hi) = (0u64, size);
    // Walk down from the root, remembering the sibling at each split; reverse at the end.
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            proof.push(edge.range(src, lo + k, hi)?);
            hi = lo + k;
        } else {
            proof.push(range_root(src, lo, lo + k)?);
            lo += k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Consistency proof PROOF(old, D[0:new]) (RFC 9162 §2.1.4.1). Empty when `old == new`,
/// `old == 0` or `old > new`.
pub fn consistency_proof<S: NodeSource + ?Sized>(
    src: &S,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, S::Error> {
    let mut proof = Vec::new();
    if old == 0 || old >= new {
        return Ok(proof);
    }
    // SUBPROOF(m, D[lo:hi], b), iteratively; siblings are collected top-down then reversed.
    let edge = EdgeRoots::new(src, new)?;
    let (mut lo, mut hi, mut m, mut whole) = (0u64, new, old, true);
    loop {
        let n = hi - lo;
        if m == n {
            if !whole {
                proof.push(edge.range(src, lo, hi)?);
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            proof.push(edge.range(src, lo + k, hi)?);
            hi = lo + k;
        } else {
            proof.push(range_root(src, lo, lo + k)?);
            lo += k;
            m -= k;
            whole = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

fn hash_arg(what: &'static str, b: &[u8]) -> Result<Hash, ProofError> {
    Hash::from_slice(b).ok_or(ProofError::BadHashLength { what, len: b.len() })
}

/// Verifies an inclusion proof with byte-slice inputs (as received from the wire).
pub fn verify_inclusion_bytes(
    index: u64,
    size: u64,
    leaf: &[u8],
    proof: &[Vec<u8>],
    root: &[u8],
) -> Result<(), ProofError> {
    let leaf = hash_arg("leaf hash", leaf)?;
    let proof = proof
        .iter()
        .map(|p| hash_arg("proof hash", p))
        .collect::<Result<Vec<_>, _>>()?;
    let root = hash_arg("root hash", root)?;
    verify_inclusion(index, size, &leaf, &proof, &root)
}

/// Root implied by an inclusion proof (RFC 9162 §2.1.3.2 steps 1-5).
pub fn root_from_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let want = inclusion_proof_len(index, size);
    if proof.len() != want {
        return Err(ProofError::WrongProofLength {
            got: proof.len(),
            want,
        });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            // Climb past levels where this node is a lone right-edge child.
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongProofLength {
            got: proof.len(),
            want,
        });
    }
    Ok(r)
}

/// Verifies that `leaf` is at `index` in the tree of `size` leaves with head `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if root_from_inclusion(index, size, leaf, proof)? == *root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Number of hashes in an inclusion proof for `index` in a tree of `size` (`index < size`).
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    // Levels where the path has a sibling: the full height of the inner (perfect) part plus
    // one per right-edge split above it.
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = (index >> inner).count_ones();
    (inner + border) as usize
}

/// Verifies a consistency proof with byte-slice inputs (as received from the wire).
pub fn verify_consistency_bytes(
    old: u64,
    new: u64,
    old_root: &[u8],
    new_root: &[u8],
    proof: &[Vec<u8>],
) -> Result<(), ProofError> {
    if old == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    if old > new {
        return Err(ProofError::SizeDecreased { old, new });
    }
    if old == new {
        // Nothing to recompute: the heads must be byte-identical and the proof empty.
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                got: proof.len(),
                want: 0,
            });
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    let proof = proof
        .iter()
        .map(|p| hash_arg("proof hash", p))
        .collect::<Result<Vec<_>, _>>()?;
    let old_root = hash_arg("old root", old_root)?;
    let new_root = hash_arg("new root", new_root)?;
    verify_consistency(old, new, &old_root, &new_root, &proof)
}

/// Verifies that the tree of `old` leaves with head `old_root` is a prefix of the tree of
/// `new` leaves with head `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    if old > new {
        return Err(ProofError::SizeDecreased { old, new });
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                got: proof.len(),
                want: 0,
            });
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    let want = consistency_proof_len(old, new);
    if proof.len() != want {
        return Err(ProofError::WrongProofLength {
            got: proof.len(),
            want,
        });
    }
    // Step 2: when `old` is a perfect tree its head is the first node of the path.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    for c in &path[1..] {
        if snode == 0 {
            return Err(ProofError::WrongProofLength {
                got: proof.len(),
                want,
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongProofLength {
            got: proof.len(),
            want,
        });
    }
    if fr != *old_root || sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Number of hashes in a consistency proof from `old` to `new` (`0 < old < new`).
pub fn consistency_proof_len(old: u64, new: u64) -> usize {
    // Levels below the first differing bit form the inner part; the old tree's perfect
    // subtrees there are skipped when `old - 1` has trailing ones.
    let shift = (old).trailing_zeros();
    let inner = 64 - ((old - 1) ^ (new - 1)).leading_zeros();
    let border = ((new - 1) >> inner).count_ones();
    let first = usize::from(!old.is_power_of_two());
    inner as usize - shift as usize + border as usize + first
}

/// Verifies inclusion of `leaf` at `index` in the subtree `[start, end)` whose hash is `root`
/// (C2SP / MTC subtree inclusion: a valid subtree has the shape of a tree of `end - start`).
pub fn verify_subtree_inclusion(
    index: u64,
    start: u64,
    end: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    check_subtree(start, end)?;
    if index < start || index >= end {
        return Err(ProofError::IndexOutOfRange { index, size: end });
    }
    verify_inclusion(index - start, end - start, leaf, proof, root)
}

/// Checks that `[start, end)` is a subtree: non-empty and `start` a multiple of the smallest
/// power of two not below `end - start`.
pub fn check_subtree(start: u64, end: u64) -> Result<(), ProofError> {
    if end <= start {
        return Err(ProofError::NotASubtree { start, end });
    }
    let Some(width) = (end - start).checked_next_power_of_two() else {
        return Err(ProofError::NotASubtree { start, end });
    };
    if !start.is_multiple_of(width) {
        return Err(ProofError::NotASubtree { start, end });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("leaf {i}").as_bytes()))
            .collect()
    }

    fn recursive_mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => empty_root(),
            1 => d[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&recursive_mth(&d[..k]), &recursive_mth(&d[k..]))
            }
        }
    }

    #[test]
    fn bottom_up_root_equals_recursive_definition() {
        for n in 0..70 {
            let l = leaves(n);
            assert_eq!(root_of_leaves(&l), recursive_mth(&l), "n={n}");
            assert_eq!(tree_root(l.as_slice(), n).ok(), Some(recursive_mth(&l)));
        }
    }

    #[test]
    fn every_inclusion_proof_verifies_and_has_predicted_length() {
        for n in 1..40u64 {
            let l = leaves(n);
            let root = root_of_leaves(&l);
            for i in 0..n {
                let p = inclusion_proof(l.as_slice(), i, n).unwrap_or_default();
                assert_eq!(p.len(), inclusion_proof_len(i, n), "i={i} n={n}");
                verify_inclusion(i, n, &l[i as usize], &p, &root).expect("verifies");
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_has_predicted_length() {
        for n in 1..40u64 {
            let l = leaves(n);
            let new_root = root_of_leaves(&l);
            for m in 1..=n {
                let old_root = root_of_leaves(&l[..m as usize]);
                let p = consistency_proof(l.as_slice(), m, n).unwrap_or_default();
                if m < n {
                    assert_eq!(p.len(), consistency_proof_len(m, n), "m={m} n={n}");
                }
                verify_consistency(m, n, &old_root, &new_root, &p).expect("verifies");
            }
        }
    }

    #[test]
    fn inclusion_rejects_index_past_end() {
        let l = leaves(4);
        let root = root_of_leaves(&l);
        assert!(matches!(
            verify_inclusion(4, 4, &l[0], &[], &root),
            Err(ProofError::IndexOutOfRange { .. })
        ));
    }

    #[test]
    fn subtree_validity() {
        assert!(check_subtree(4, 8).is_ok());
        assert!(check_subtree(4, 6).is_ok());
        assert!(check_subtree(2, 6).is_err());
        assert!(check_subtree(3, 3).is_err());
    }
}

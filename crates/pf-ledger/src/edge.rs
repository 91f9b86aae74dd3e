//! The right edge of a tiled tree: the partial tile at every level plus the partial entry
//! bundle. It is all the sequencer keeps in memory; appending yields the tiles to write and the
//! new root (tlog-tiles "Partial Tiles").

use crate::hash::{Hash, empty_root, leaf_hash};
use crate::merkle::root_of_leaves;
use crate::tiles::{
    TILE_WIDTH, TileError, TileId, encode_bundle, encode_hash_tile, full_tiles, partial_width,
    top_level,
};

/// Partial tiles of a tree of `size` leaves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RightEdge {
    size: u64,
    /// `levels[l]` holds the `floor(size / 256^l) mod 256` hashes of the partial tile at level `l`.
    levels: Vec<Vec<Hash>>,
    /// Entries of the partial entry bundle (`size mod 256` of them).
    entries: Vec<Vec<u8>>,
}

/// Tiles produced by appending a batch, in write order (lower levels first).
pub type TileWrites = Vec<(TileId, Vec<u8>)>;

impl RightEdge {
    /// The edge of the empty tree.
    pub fn empty() -> RightEdge {
        RightEdge::default()
    }

    /// Rebuilds the edge from partial tiles read back from storage; widths must match `size`.
    pub fn from_parts(
        size: u64,
        levels: Vec<Vec<Hash>>,
        entries: Vec<Vec<u8>>,
    ) -> Result<RightEdge, String> {
        let want_levels = if size == 0 {
            0
        } else {
            usize::from(top_level(size)) + 1
        };
        if levels.len() != want_levels {
            return Err(format!(
                "expected {want_levels} tile levels for size {size}, got {}",
                levels.len()
            ));
        }
        for (l, hs) in levels.iter().enumerate() {
            let w = usize::from(partial_width(l as u8, size));
            if hs.len() != w {
                return Err(format!(
                    "partial tile at level {l} has {} hashes, expected {w}",
                    hs.len()
                ));
            }
        }
        if entries.len() as u64 != size % TILE_WIDTH {
            return Err(format!(
                "partial entry bundle has {} entries, expected {}",
                entries.len(),
                size % TILE_WIDTH
            ));
        }
        Ok(RightEdge {
            size,
            levels,
            entries,
        })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Hashes of the partial tile at `level` (empty if none).
    pub fn partial(&self, level: u8) -> &[Hash] {
        self.levels
            .get(usize::from(level))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Entries of the partial entry bundle.
    pub fn partial_entries(&self) -> &[Vec<u8>] {
        &self.entries
    }

    /// The partial tiles that exist for this size (what a reader of the current checkpoint needs).
    pub fn partial_tiles(&self) -> Vec<TileId> {
        let mut out = Vec::new();
        for l in 0..self.levels.len() as u8 {
            let w = partial_width(l, self.size);
            if w > 0 {
                out.push(TileId::hashes(l, full_tiles(l, self.size), w));
            }
        }
        if !self.entries.is_empty() {
            out.push(TileId::entries(
                full_tiles(0, self.size),
                self.entries.len() as u16,
            ));
        }
        out
    }

    /// Root hash of the tree (see [`edge_root`]).
    pub fn root(&self) -> Hash {
        edge_root(self.size, self.levels.iter().map(Vec::as_slice))
    }

    /// Appends entries; returns every tile that changed (full tiles completed by this batch and
    /// the final partial tiles), entry bundles included. Fails before changing anything if an
    /// entry is too large for a bundle.
    pub fn append(&mut self, batch: &[Vec<u8>]) -> Result<TileWrites, TileError> {
        if let Some(e) = batch
            .iter()
            .find(|e| e.len() > crate::tiles::MAX_ENTRY_BYTES)
        {
            return Err(TileError::EntryTooLarge(e.len()));
        }
        let mut writes: TileWrites = Vec::new();
        let mut touched_levels = 0usize;
        for entry in batch {
            self.entries.push(entry.clone());
            let mut h = leaf_hash(entry);
            let mut level = 0usize;
            self.size += 1;
            if self.entries.len() as u64 == TILE_WIDTH {
                let index = (self.size - 1) / TILE_WIDTH;
                writes.push((
                    TileId::entries(index, TILE_WIDTH as u16),
                    encode_bundle(&self.entries)?,
                ));
                self.entries.clear();
            }
            // Push the hash into its level; a tile that fills is written and its root moves up.
            loop {
                if self.levels.len() <= level {
                    self.levels.push(Vec::with_capacity(TILE_WIDTH as usize));
                }
                touched_levels = touched_levels.max(level + 1);
                self.levels[level].push(h);
                if self.levels[level].len() as u64 != TILE_WIDTH {
                    break;
                }
                let shift = 8 * (level as u32 + 1);
                let index = (self.size - 1) >> shift;
                writes.push((
                    TileId::hashes(level as u8, index, TILE_WIDTH as u16),
                    encode_hash_tile(&self.levels[level]),
                ));
                h = root_of_leaves(&self.levels[level]);
                self.levels[level].clear();
                level += 1;
            }
        }
        for (l, hs) in self.levels.iter().enumerate().take(touched_levels) {
            if !hs.is_empty() {
                let id = TileId::hashes(l as u8, full_tiles(l as u8, self.size), hs.len() as u16);
                writes.push((id, encode_hash_tile(hs)));
            }
        }
        if !batch.is_empty() && !self.entries.is_empty() {
            let id = TileId::entries(full_tiles(0, self.size), self.entries.len() as u16);
            writes.push((id, encode_bundle(&self.entries)?));
        }
        Ok(writes)
    }
}

/// Root hash of a tree of `size` from its partial tiles, lowest level first: each level's
/// partial tile is hashed together with the root of the levels below it as a final element
/// (the RFC 9162 split points fall on tile boundaries).
pub fn edge_root<'a>(size: u64, levels: impl Iterator<Item = &'a [Hash]>) -> Hash {
    if size == 0 {
        return empty_root();
    }
    let mut below: Option<Hash> = None;
    let mut buf = Vec::with_capacity(TILE_WIDTH as usize + 1);
    for hs in levels {
        buf.clear();
        buf.extend_from_slice(hs);
        buf.extend(below);
        if !buf.is_empty() {
            below = Some(root_of_leaves(&buf));
        }
    }
    below.unwrap_or_else(empty_root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::root_of_leaves;

    #[test]
    fn root_matches_plain_merkle_root_across_tile_boundaries() {
        let mut edge = RightEdge::empty();
        let mut leaves = Vec::new();
        let mut n = 0u64;
        for batch in [1usize, 2, 252, 1, 300, 65000, 600] {
            let entries: Vec<Vec<u8>> = (0..batch)
                .map(|i| format!("e{}", n + i as u64).into_bytes())
                .collect();
            leaves.extend(entries.iter().map(|e| leaf_hash(e)));
            n += batch as u64;
            edge.append(&entries).expect("append");
            assert_eq!(edge.size(), n);
            assert_eq!(edge.root(), root_of_leaves(&leaves), "size {n}");
        }
    }

    #[test]
    fn append_emits_full_and_partial_tiles() {
        let mut edge = RightEdge::empty();
        let entries: Vec<Vec<u8>> = (0..257).map(|i: u32| i.to_be_bytes().to_vec()).collect();
        let w = edge.append(&entries).expect("append");
        let paths: Vec<String> = w.iter().map(|(t, _)| t.path()).collect();
        assert_eq!(
            paths,
            vec![
                "tile/entries/000",
                "tile/0/000",
                "tile/0/001.p/1",
                "tile/1/000.p/1",
                "tile/entries/001.p/1"
            ]
        );
        assert_eq!(edge.partial_tiles().len(), 3);
    }

    #[test]
    fn from_parts_checks_widths() {
        assert!(RightEdge::from_parts(3, vec![vec![Hash::default(); 3]], vec![vec![]; 3]).is_ok());
        assert!(RightEdge::from_parts(3, vec![vec![Hash::default(); 2]], vec![vec![]; 3]).is_err());
        assert!(RightEdge::from_parts(0, vec![], vec![]).is_ok());
    }
}

//! Tiles that are checked before use: the right-edge partial tiles are checked against a
//! checkpoint's root, and every full tile against its hash in the tile above, so corrupted or
//! truncated tiles are detected and never used or served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::edge::edge_root;
use crate::hash::{Hash, leaf_hash};
use crate::tiles::{
    TILE_WIDTH, TileError, TileId, TileKind, full_tiles, parse_bundle, parse_hash_tile,
    partial_width, tile_for, top_level,
};
use crate::view::{TileRead, ViewError};

/// Fetches a raw tile or entry bundle body (`None` if absent).
pub type Fetch = Arc<dyn Fn(&TileId) -> Result<Option<Vec<u8>>, String> + Send + Sync>;

/// Why a tile could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileCheckError {
    /// Fetching failed.
    #[error("fetching {path}: {reason}")]
    Fetch {
        /// Tile path.
        path: String,
        /// Cause.
        reason: String,
    },
    /// A tile the tree needs is absent.
    #[error("tile {0} is missing")]
    Missing(String),
    /// A tile is malformed (wrong length, bad bundle).
    #[error(transparent)]
    Malformed(#[from] TileError),
    /// A tile's content does not hash to what the tree commits to.
    #[error("tile {0} does not match the tree hash it is committed to (corrupted)")]
    Corrupt(String),
    /// The right-edge tiles do not produce the checkpoint's root.
    #[error("tiles for size {size} do not hash to the checkpoint root (corrupted or truncated)")]
    RootMismatch {
        /// Tree size.
        size: u64,
    },
    /// The tile is not part of this tree.
    #[error("tile {0} is beyond the tree")]
    OutOfRange(String),
    /// A node was requested that the tiles cannot supply.
    #[error(transparent)]
    View(#[from] ViewError),
}

/// Verified access to the tiles of one tree size. Cloning shares the cache.
#[derive(Clone)]
pub struct VerifiedTiles {
    size: u64,
    edge: Arc<Vec<Arc<TileTree>>>,
    fetch: Fetch,
    cache: TileCache,
}

/// Verified full tiles by (level, index); full tiles never change, so entries stay valid.
type TileCache = Arc<Mutex<HashMap<(u8, u64), Arc<TileTree>>>>;

/// A tile's hashes and every complete inner node above them (levels 0..=8 of the subtree),
/// so proof nodes inside a tile are looked up instead of re-hashed.
#[derive(Debug)]
pub struct TileTree {
    levels: Vec<Vec<Hash>>,
    hashes: Arc<Vec<Hash>>,
}

impl TileTree {
    /// Builds the inner levels over `hashes` (complete pairs only).
    pub fn new(hashes: Vec<Hash>) -> TileTree {
        let mut levels = vec![hashes.clone()];
        while let Some(prev) = levels.last().filter(|l| l.len() > 1) {
            let next: Vec<Hash> = prev
                .chunks_exact(2)
                .map(|p| crate::hash::node_hash(&p[0], &p[1]))
                .collect();
            levels.push(next);
        }
        TileTree {
            levels,
            hashes: Arc::new(hashes),
        }
    }

    /// Node of `2^sub` hashes starting at `offset`, if complete in this tile.
    pub fn node(&self, sub: u32, offset: usize) -> Option<Hash> {
        self.levels
            .get(sub as usize)
            .and_then(|l| l.get(offset >> sub))
            .copied()
    }
}

/// Full tiles kept in memory (8 KiB each).
const CACHE_TILES: usize = 4096;

impl VerifiedTiles {
    /// Uses partial tiles already known to be right (the sequencer's own edge).
    pub fn trusted(size: u64, edge: Vec<Vec<Hash>>, fetch: Fetch) -> VerifiedTiles {
        VerifiedTiles {
            size,
            edge: Arc::new(
                edge.into_iter()
                    .map(|e| Arc::new(TileTree::new(e)))
                    .collect(),
            ),
            fetch,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Same cache and fetcher, new tree size and edge (after an append).
    pub fn advance(&self, size: u64, edge: Vec<Vec<Hash>>) -> VerifiedTiles {
        VerifiedTiles {
            size,
            edge: Arc::new(
                edge.into_iter()
                    .map(|e| Arc::new(TileTree::new(e)))
                    .collect(),
            ),
            fetch: self.fetch.clone(),
            cache: self.cache.clone(),
        }
    }

    /// Fetches the partial tiles of a tree of `size` and checks they hash to `root`.
    pub fn for_checkpoint(
        size: u64,
        root: &Hash,
        fetch: Fetch,
    ) -> Result<VerifiedTiles, TileCheckError> {
        let mut edge = Vec::new();
        if size > 0 {
            for l in 0..=top_level(size) {
                let w = partial_width(l, size);
                if w == 0 {
                    edge.push(Vec::new());
                    continue;
                }
                let id = TileId::hashes(l, full_tiles(l, size), w);
                let body = fetch_tile(&fetch, &id)?;
                edge.push(parse_hash_tile(&id, &body)?);
            }
        }
        if edge_root(size, edge.iter().map(Vec::as_slice)) != *root {
            return Err(TileCheckError::RootMismatch { size });
        }
        Ok(VerifiedTiles::trusted(size, edge, fetch))
    }

    /// Tree size these tiles describe.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The verified tile tree holding `tile`: a full tile, or this size's partial tile.
    fn tile_tree(&self, tile: TileId) -> Result<Arc<TileTree>, TileCheckError> {
        let TileKind::Hashes(level) = tile.kind else {
            return Err(TileCheckError::OutOfRange(tile.path()));
        };
        let full = full_tiles(level, self.size);
        if tile.index < full {
            self.full_tile(level, tile.index)
        } else if tile.index == full && tile.width <= partial_width(level, self.size) {
            self.edge
                .get(usize::from(level))
                .cloned()
                .ok_or_else(|| TileCheckError::OutOfRange(tile.path()))
        } else {
            Err(TileCheckError::OutOfRange(tile.path()))
        }
    }

    /// Verified hashes of a hash tile (a full tile, or any prefix of one).
    pub fn hashes(&self, tile: TileId) -> Result<Arc<Vec<Hash>>, TileCheckError> {
        let tree = self.tile_tree(tile)?;
        let w = usize::from(tile.width);
        match tree.hashes.get(..w) {
            Some(h) if h.len() == tree.hashes.len() => Ok(tree.hashes.clone()),
            Some(h) => Ok(Arc::new(h.to_vec())),
            None => Err(TileCheckError::OutOfRange(tile.path())),
        }
    }

    fn full_tile(&self, level: u8, index: u64) -> Result<Arc<TileTree>, TileCheckError> {
        if let Some(t) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(&(level, index)).cloned())
        {
            return Ok(t);
        }
        let id = TileId::hashes(level, index, TILE_WIDTH as u16);
        let body = fetch_tile(&self.fetch, &id)?;
        let tree = TileTree::new(parse_hash_tile(&id, &body)?);
        // tlog-tiles: each hash of a level l+1 tile is the root of a full level l tile.
        let parent = self.hashes(tile_for(level + 1, index, self.size))?;
        let committed = parent
            .get((index % TILE_WIDTH) as usize)
            .ok_or_else(|| TileCheckError::Corrupt(id.path()))?;
        if tree.node(8, 0) != Some(*committed) {
            return Err(TileCheckError::Corrupt(id.path()));
        }
        let t = Arc::new(tree);
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= CACHE_TILES {
                c.clear();
            }
            c.insert((level, index), t.clone());
        }
        Ok(t)
    }

    /// Verified entries of bundle `index` (full, or the partial one for this size); `partial`
    /// supplies the partial bundle's entries when the caller already holds them.
    pub fn bundle(
        &self,
        index: u64,
        partial: Option<&[Vec<u8>]>,
    ) -> Result<Vec<Vec<u8>>, TileCheckError> {
        let full = full_tiles(0, self.size);
        let width = if index < full {
            TILE_WIDTH as u16
        } else if index == full && partial_width(0, self.size) > 0 {
            partial_width(0, self.size)
        } else {
            return Err(TileCheckError::OutOfRange(TileId::entries(index, 1).path()));
        };
        let id = TileId::entries(index, width);
        let entries = match partial.filter(|_| index == full) {
            Some(p) => p.to_vec(),
            None => parse_bundle(&id, &fetch_tile(&self.fetch, &id)?)?,
        };
        let hashes = self.hashes(TileId::hashes(0, index, width))?;
        if entries.len() != hashes.len()
            || entries
                .iter()
                .zip(hashes.iter())
                .any(|(e, h)| leaf_hash(e) != *h)
        {
            return Err(TileCheckError::Corrupt(id.path()));
        }
        Ok(entries)
    }
}

fn fetch_tile(fetch: &Fetch, id: &TileId) -> Result<Vec<u8>, TileCheckError> {
    match fetch(id) {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(TileCheckError::Missing(id.path())),
        Err(reason) => Err(TileCheckError::Fetch {
            path: id.path(),
            reason,
        }),
    }
}

impl TileRead for VerifiedTiles {
    type Error = TileCheckError;
    fn read_hashes(&self, tile: TileId) -> Result<Arc<Vec<Hash>>, TileCheckError> {
        self.hashes(tile)
    }

    fn tile_node(&self, tile: TileId, sub: u32, offset: usize) -> Result<Hash, TileCheckError> {
        let tree = self.tile_tree(tile)?;
        if offset + (1usize << sub) > usize::from(tile.width) {
            return Err(TileCheckError::OutOfRange(tile.path()));
        }
        tree.node(sub, offset)
            .ok_or_else(|| TileCheckError::OutOfRange(tile.path()))
    }
}

//! Reading a tiled tree: a [`NodeSource`] over hash tiles, so the Merkle core can compute roots
//! and proofs from tiles wherever they come from (local storage, memory, HTTP).

use std::sync::Arc;

use crate::hash::Hash;
use crate::merkle::{NodeSource, root_of_leaves};
use crate::tiles::{TILE_HEIGHT, TILE_WIDTH, TileId, tile_for};

/// Something that yields the (already verified) hashes of a hash tile.
pub trait TileRead {
    /// Error type of the source.
    type Error: From<ViewError>;
    /// Hashes of `tile` (exactly `tile.width` of them).
    fn read_hashes(&self, tile: TileId) -> Result<Arc<Vec<Hash>>, Self::Error>;

    /// Root of the `2^sub` hashes of `tile` starting at `offset` (a complete node inside the
    /// tile). Sources that cache tiles' inner nodes override this.
    fn tile_node(&self, tile: TileId, sub: u32, offset: usize) -> Result<Hash, Self::Error> {
        let hashes = self.read_hashes(tile)?;
        let end = offset + (1usize << sub);
        let slice = hashes.get(offset..end).ok_or(ViewError::Missing {
            level: sub,
            index: offset as u64,
            size: tile.index,
        })?;
        Ok(root_of_leaves(slice))
    }
}

/// A node was asked for that the tiles cannot supply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// The node is not complete in the tree the tiles describe.
    #[error("node at level {level} index {index} is not in a tree of size {size}")]
    Missing {
        /// Tree level.
        level: u32,
        /// Node index.
        index: u64,
        /// Tree size of the tiles.
        size: u64,
    },
}

/// Complete-subtree hashes of a tree whose tiles exist for `tiles_size` leaves.
pub struct TreeView<'a, R: ?Sized> {
    reader: &'a R,
    tiles_size: u64,
}

impl<'a, R: TileRead + ?Sized> TreeView<'a, R> {
    /// A view reading the tiles published for a tree of `tiles_size` leaves.
    pub fn new(reader: &'a R, tiles_size: u64) -> Self {
        TreeView { reader, tiles_size }
    }
}

impl<R: TileRead + ?Sized> NodeSource for TreeView<'_, R> {
    type Error = R::Error;

    fn node(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        let missing = || ViewError::Missing {
            level,
            index,
            size: self.tiles_size,
        };
        // A node at tree level h is the root of 2^(h mod 8) consecutive hashes of tile level h/8.
        let tile_level = level / TILE_HEIGHT;
        let sub = level % TILE_HEIGHT;
        let count = 1u64 << sub;
        let pos = index.checked_shl(sub).ok_or_else(missing)?;
        let end = pos.checked_add(count).ok_or_else(missing)?;
        let shift = TILE_HEIGHT * tile_level;
        if shift >= 64 || end > (self.tiles_size >> shift) {
            return Err(missing().into());
        }
        let tile = tile_for(tile_level as u8, pos, self.tiles_size);
        self.reader
            .tile_node(tile, sub, (pos % TILE_WIDTH) as usize)
    }
}

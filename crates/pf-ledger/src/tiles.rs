//! C2SP tlog-tiles: tile coordinates and paths (`tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>`),
//! entry bundles (big-endian u16 length-prefixed entries) and which tiles a tree size needs.

use crate::hash::{HASH_SIZE, Hash};

/// Hashes per full tile (tile height 8, tlog-tiles "Merkle Tree").
pub const TILE_WIDTH: u64 = 256;
/// Tree levels spanned by one tile level.
pub const TILE_HEIGHT: u32 = 8;
/// Largest entry an entry bundle can hold (u16 length prefix).
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;

/// Why a tile path or tile body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    /// The path does not follow the tlog-tiles encoding.
    #[error("invalid tile path {path:?}: {reason}")]
    BadPath {
        /// The path.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A hash tile's length is not `width * 32`.
    #[error("tile {path} has {got} bytes, expected {want}")]
    BadLength {
        /// Tile path.
        path: String,
        /// Bytes found.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// An entry bundle is truncated or holds the wrong number of entries.
    #[error("entry bundle {path} is malformed: {reason}")]
    BadBundle {
        /// Bundle path.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An entry is larger than [`MAX_ENTRY_BYTES`].
    #[error("entry of {0} bytes exceeds the 65535-byte bundle limit")]
    EntryTooLarge(usize),
}

/// What a tile holds: Merkle hashes at a tile level, or log entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TileKind {
    /// Hash tile at tile level `L` (tree level `8L`).
    Hashes(u8),
    /// Entry bundle (same coordinates as level-0 hash tiles).
    Entries,
}

/// One tile resource: kind, index within its level and width (1..=256; 256 = full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    /// Hash level or entry bundle.
    pub kind: TileKind,
    /// Index of the tile within its level.
    pub index: u64,
    /// Number of hashes (or entries); 256 for a full tile.
    pub width: u16,
}

/// Encodes a tile index as 3-digit groups, all but the last prefixed with `x`
/// (tlog-tiles: 1234067 becomes `x001/x234/067`).
pub fn encode_index(n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    let mut rest = n / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

impl TileId {
    /// A hash tile.
    pub fn hashes(level: u8, index: u64, width: u16) -> TileId {
        TileId {
            kind: TileKind::Hashes(level),
            index,
            width,
        }
    }

    /// An entry bundle.
    pub fn entries(index: u64, width: u16) -> TileId {
        TileId {
            kind: TileKind::Entries,
            index,
            width,
        }
    }

    /// True when the tile holds 256 hashes or entries.
    pub fn is_full(&self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }

    /// The resource path, relative to the log prefix.
    pub fn path(&self) -> String {
        let level = match self.kind {
            TileKind::Hashes(l) => l.to_string(),
            TileKind::Entries => "entries".to_string(),
        };
        let mut p = format!("tile/{level}/{}", encode_index(self.index));
        if !self.is_full() {
            p.push_str(&format!(".p/{}", self.width));
        }
        p
    }

    /// Parses a resource path such as `tile/0/x001/234.p/7` or `tile/entries/000`.
    pub fn parse(path: &str) -> Result<TileId, TileError> {
        let bad = |reason| TileError::BadPath {
            path: path.to_string(),
            reason,
        };
        let rest = path
            .strip_prefix("tile/")
            .ok_or(bad("must start with tile/"))?;
        let (level, rest) = rest.split_once('/').ok_or(bad("missing level"))?;
        let kind = if level == "entries" {
            TileKind::Entries
        } else {
            if level.is_empty()
                || !level.bytes().all(|c| c.is_ascii_digit())
                || (level.len() > 1 && level.starts_with('0'))
            {
                return Err(bad("level must be a decimal without leading zeroes"));
            }
            let l: u8 = level.parse().map_err(|_| bad("level out of range"))?;
            if l > 63 {
                return Err(bad("level must be at most 63"));
            }
            TileKind::Hashes(l)
        };
        let (index_part, width) = match rest.split_once(".p/") {
            Some((i, w)) => {
                if w.is_empty() || !w.bytes().all(|c| c.is_ascii_digit()) || w.starts_with('0') {
                    return Err(bad(
                        "partial width must be a decimal without leading zeroes",
                    ));
                }
                let w: u16 = w.parse().map_err(|_| bad("partial width out of range"))?;
                if !(1..=255).contains(&w) {
                    return Err(bad("partial width must be 1..=255"));
                }
                (i, w)
            }
            None => (rest, TILE_WIDTH as u16),
        };
        let groups: Vec<&str> = index_part.split('/').collect();
        let mut index: u64 = 0;
        for (i, g) in groups.iter().enumerate() {
            let last = i + 1 == groups.len();
            let digits = if last {
                *g
            } else {
                g.strip_prefix('x')
                    .ok_or(bad("non-final index groups must start with x"))?
            };
            if digits.len() != 3 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad("index groups must be 3 digits"));
            }
            let d: u64 = digits.parse().map_err(|_| bad("bad index digits"))?;
            index = index
                .checked_mul(1000)
                .and_then(|x| x.checked_add(d))
                .ok_or(bad("index overflows"))?;
        }
        // The encoding is canonical: reject leading zero groups such as x000/001.
        if encode_index(index) != index_part {
            return Err(bad("index is not canonically encoded"));
        }
        Ok(TileId { kind, index, width })
    }

    /// Number of leaves a hash of this tile covers (256^level).
    pub fn leaves_per_hash(level: u8) -> Option<u64> {
        1u64.checked_shl(TILE_HEIGHT * u32::from(level))
    }
}

/// Width of the partial tile at `level` for a tree of `size` (`floor(size/256^l) mod 256`).
pub fn partial_width(level: u8, size: u64) -> u16 {
    let shift = TILE_HEIGHT * u32::from(level);
    if shift >= 64 {
        return 0;
    }
    ((size >> shift) % TILE_WIDTH) as u16
}

/// Number of full tiles at `level` for a tree of `size`.
pub fn full_tiles(level: u8, size: u64) -> u64 {
    let shift = TILE_HEIGHT * (u32::from(level) + 1);
    if shift >= 64 { 0 } else { size >> shift }
}

/// Highest tile level that holds any hash for a tree of `size` (0 for size < 256^1).
pub fn top_level(size: u64) -> u8 {
    let mut l = 0u8;
    while u32::from(l + 1) * TILE_HEIGHT < 64 && (size >> (TILE_HEIGHT * u32::from(l + 1))) > 0 {
        l += 1;
    }
    l
}

/// The tile at `level` holding hash position `pos` (index within that level) for a tree of
/// `size`: full if that tile is complete, else the partial tile for `size`.
pub fn tile_for(level: u8, pos: u64, size: u64) -> TileId {
    let index = pos / TILE_WIDTH;
    if index < full_tiles(level, size) {
        TileId::hashes(level, index, TILE_WIDTH as u16)
    } else {
        TileId::hashes(level, index, partial_width(level, size))
    }
}

/// Splits a hash tile body into hashes, checking its length against the tile's width.
pub fn parse_hash_tile(tile: &TileId, body: &[u8]) -> Result<Vec<Hash>, TileError> {
    let want = usize::from(tile.width) * HASH_SIZE;
    if body.len() != want {
        return Err(TileError::BadLength {
            path: tile.path(),
            got: body.len(),
            want,
        });
    }
    Ok(body
        .chunks_exact(HASH_SIZE)
        .filter_map(Hash::from_slice)
        .collect())
}

/// Concatenates hashes into a tile body.
pub fn encode_hash_tile(hashes: &[Hash]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hashes.len() * HASH_SIZE);
    for h in hashes {
        out.extend_from_slice(&h.0);
    }
    out
}

/// Encodes entries as a bundle: each a big-endian u16 length then the bytes.
pub fn encode_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, TileError> {
    let mut out = Vec::new();
    for e in entries {
        let e = e.as_ref();
        let len = u16::try_from(e.len()).map_err(|_| TileError::EntryTooLarge(e.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Decodes an entry bundle, which must hold exactly the tile's width of entries.
pub fn parse_bundle(tile: &TileId, body: &[u8]) -> Result<Vec<Vec<u8>>, TileError> {
    let bad = |reason| TileError::BadBundle {
        path: tile.path(),
        reason,
    };
    let mut out = Vec::with_capacity(usize::from(tile.width));
    let mut rest = body;
    while !rest.is_empty() {
        let [a, b, tail @ ..] = rest else {
            return Err(bad("truncated length prefix"));
        };
        let len = usize::from(u16::from_be_bytes([*a, *b]));
        if tail.len() < len {
            return Err(bad("truncated entry"));
        }
        out.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    if out.len() != usize::from(tile.width) {
        return Err(bad("entry count differs from the bundle width"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_encoding_matches_spec_example() {
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(1000), "x001/000");
    }

    #[test]
    fn paths_round_trip() {
        for t in [
            TileId::hashes(0, 1234067, 256),
            TileId::hashes(2, 5, 17),
            TileId::entries(999, 3),
            TileId::entries(1000, 256),
        ] {
            assert_eq!(TileId::parse(&t.path()), Ok(t), "{}", t.path());
        }
        assert_eq!(TileId::hashes(1, 5, 17).path(), "tile/1/005.p/17");
    }

    #[test]
    fn bad_paths_are_rejected() {
        for p in [
            "tile/0/x000/001",
            "tile/00/001",
            "tile/64/000",
            "tile/0/1",
            "tile/0/001.p/0",
            "tile/0/001.p/256",
            "tile/0/001.p/07",
            "tile/0/001/002",
            "tiles/0/000",
            "tile/entries/x1/000",
        ] {
            assert!(TileId::parse(p).is_err(), "{p}");
        }
    }

    #[test]
    fn spec_example_tree_of_70000() {
        // "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial
        // level 0 tile of width 112, one full level 1 tile, one partial level 1 tile of width
        // 17, and one partial level 2 tile of width 1."
        assert_eq!(full_tiles(0, 70000), 273);
        assert_eq!(partial_width(0, 70000), 112);
        assert_eq!(full_tiles(1, 70000), 1);
        assert_eq!(partial_width(1, 70000), 17);
        assert_eq!(partial_width(2, 70000), 1);
        assert_eq!(top_level(70000), 2);
        assert_eq!(partial_width(1, 256), 1);
        assert_eq!(partial_width(0, 256), 0);
    }

    #[test]
    fn bundles_round_trip_and_reject_truncation() {
        let e: Vec<Vec<u8>> = vec![b"a".to_vec(), vec![], vec![7; 300]];
        let t = TileId::entries(0, 3);
        let b = encode_bundle(&e).expect("encode");
        assert_eq!(parse_bundle(&t, &b).expect("parse"), e);
        assert!(parse_bundle(&t, &b[..b.len() - 1]).is_err());
        assert!(parse_bundle(&TileId::entries(0, 2), &b).is_err());
        assert!(encode_bundle(&[vec![0u8; 70000]]).is_err());
    }
}

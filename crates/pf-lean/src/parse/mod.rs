//! Readers for lean4export output: NDJSON (format 3.0.0 and 3.1.0) and the older text format.
//!
//! Both formats define names, levels and expressions by integer index before use. Indices may
//! be sparse or appear out of order (hand-written exports do this); a reference must only name
//! an index already defined earlier in the file. Redefining an index with a different value is
//! an error; redefining it with the same value is tolerated.

mod ndjson;
mod tables;
mod text;

pub use tables::Tables;

use crate::env::Declaration;
use crate::error::ParseError;
use crate::store::Store;

/// Upper bound on the size of an export file accepted by [`parse_export`] (bytes).
pub const MAX_EXPORT_BYTES: usize = 2 << 30;
/// Upper bound on one line (bytes).
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// Which export format a file uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// NDJSON with the given `format.version` (3.0.0 or 3.1.0).
    Ndjson(String),
    /// Text format with a version header (2.0.0, 0.1.2).
    Text(String),
    /// Text format without header (the first Lean 4 exporter, Lean 3 layout).
    TextLegacy,
}

/// A parsed export: the interned terms and the declarations in file order.
pub struct Export {
    /// Arenas holding every name, level and expression.
    pub store: Store,
    /// Declarations in file order, with their 1-based line numbers.
    pub decls: Vec<(usize, Declaration)>,
    /// Detected format.
    pub format: Format,
}

/// Parses an export file, detecting its format from the first line.
pub fn parse_export(input: &str) -> Result<Export, ParseError> {
    if input.len() > MAX_EXPORT_BYTES {
        return Err(ParseError::new(
            0,
            format!("export larger than {MAX_EXPORT_BYTES} bytes"),
        ));
    }
    let first = input.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let t = first.trim_start();
    if t.starts_with('{') {
        ndjson::parse(input)
    } else {
        text::parse(input)
    }
}

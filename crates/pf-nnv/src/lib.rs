//! `pf-nnv` is Provability Fabric's neural-network verifier: it reads feed-forward ReLU networks
//! (NNet, ONNX), reads a property (VNN-LIB subset, Marabou property text) describing an unsafe
//! input/output region, and decides whether any input in the region reaches it. Bounds are sound
//! under floating-point rounding (outward-rounded interval and back-substituted linear
//! relaxations, an optimised joint bound of the output constraints re-evaluated soundly, LP
//! infeasibility certified by a re-checked dual), the search is a parallel
//! best-first branch and bound over input splits and ReLU phase splits, and every `sat` answer
//! carries a counterexample re-evaluated on the network before it is reported.

pub mod alpha;
pub mod bounds;
pub mod error;
pub mod falsify;
pub mod lp;
pub mod lpcert;
pub mod network;
pub mod nnet;
pub mod onnx;
pub mod phase;
pub mod property;
pub mod search;
pub mod sound;

use std::path::Path;

pub use error::{CheckError, ModelError, PropertyError};
pub use network::{Dense, Layer, Network, Normalization};
pub use property::{Case, OutputConstraint, Property, load_property};
pub use search::{Counterexample, Options, Outcome, Statistics, Verdict, check};

/// Read a model file, choosing the reader by extension (`.nnet` or `.onnx`).
pub fn load_network(path: &Path) -> Result<Network, ModelError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let limit = onnx::MAX_ONNX_BYTES as u64;
    let meta = std::fs::metadata(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.len() > limit {
        return Err(ModelError::TooLarge {
            size: meta.len(),
            limit,
        });
    }
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    match ext.as_deref() {
        Some("nnet") => {
            let text = String::from_utf8(bytes).map_err(|e| ModelError::NNet {
                line: 1,
                column: 1,
                message: format!("not UTF-8 text: {e}"),
            })?;
            nnet::parse_nnet(&text)
        }
        Some("onnx") => onnx::parse_onnx(&bytes),
        _ => Err(ModelError::UnknownFormat(path.to_path_buf())),
    }
}

//! Typed errors of model reading, property parsing and checking.

use std::path::PathBuf;

/// Why a model file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is larger than we accept.
    #[error("model file is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Size found.
        size: u64,
        /// Limit.
        limit: u64,
    },
    /// Malformed NNet text.
    #[error("NNet line {line}, column {column}: {message}")]
    NNet {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What was expected.
        message: String,
    },
    /// Malformed ONNX protobuf or graph.
    #[error("ONNX: {0}")]
    Onnx(String),
    /// An ONNX operator (or operator form) this verifier does not support: we decline.
    #[error("unsupported ONNX operator {op} (node {node:?}): {detail}")]
    Unsupported {
        /// Operator type.
        op: String,
        /// Node name.
        node: String,
        /// Why it is declined.
        detail: String,
    },
    /// Layer sizes do not fit together.
    #[error("shape error: {0}")]
    Shape(String),
    /// A NaN or infinite parameter.
    #[error("non-finite value in {0}")]
    NonFinite(String),
    /// The file extension names no known format.
    #[error("unknown model format for {0} (expected .nnet or .onnx)")]
    UnknownFormat(PathBuf),
}

/// Why a property file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PropertyError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Malformed text.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What was expected.
        message: String,
    },
    /// Well-formed text outside the supported fragment, or inconsistent with itself.
    #[error("line {line}, column {column}: {message}")]
    Semantic {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The property as a whole is unusable (no position applies).
    #[error("{0}")]
    Invalid(String),
}

/// Why a check could not start.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Property and network dimensions differ.
    #[error(
        "property has {prop_inputs} inputs / {prop_outputs} outputs but the network has {net_inputs} / {net_outputs}"
    )]
    DimensionMismatch {
        /// Inputs named by the property.
        prop_inputs: usize,
        /// Outputs named by the property.
        prop_outputs: usize,
        /// Network inputs.
        net_inputs: usize,
        /// Network outputs.
        net_outputs: usize,
    },
}

//! Typed errors: malformed exports, kernel rejections, declines and resource limits.

/// A malformed export file, with the 1-based line where reading stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong and what was expected.
    pub msg: String,
    /// The input is well-formed but uses a format version this reader does not support.
    pub unsupported: bool,
}

impl ParseError {
    /// A parse error at `line`.
    pub fn new(line: usize, msg: impl Into<String>) -> Self {
        ParseError {
            line,
            msg: msg.into(),
            unsupported: false,
        }
    }

    /// An unsupported (but possibly valid) format version at `line`.
    pub fn unsupported(line: usize, msg: impl Into<String>) -> Self {
        ParseError {
            line,
            msg: msg.into(),
            unsupported: true,
        }
    }
}

/// Why the kernel refused (or could not decide) a declaration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// A typing rule was violated: the declaration is not well-typed.
    #[error("{0}")]
    Ill(String),
    /// A feature the checker does not implement (the verdict is "decline").
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A fuel or memory limit was hit (the verdict is "decline").
    #[error("resource limit: {0}")]
    Resource(String),
}

/// Shorthand for an ill-typed result.
pub fn ill<T>(msg: impl Into<String>) -> Result<T, KernelError> {
    Err(KernelError::Ill(msg.into()))
}

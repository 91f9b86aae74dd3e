//! `pf-spec`: the AgentSpec — the YAML file that says what an agent may do, under which
//! policies and resource limits, and which proof obligations back it.
//!
//! [`load`] reads a spec file, rejects malformed YAML, unknown fields and wrong types with a
//! located diagnostic, then runs semantic checks ([`lint`]) for names, versions, duplicate
//! entries, ranges and referenced files. [`canonical`] gives the canonical JSON form and digest
//! used to bind bundles, proofs and policies to one exact spec; [`schema`] generates the
//! published JSON Schema from the same Rust types.

pub mod canonical;
pub mod diagnostics;
mod emit;
mod fuzzy;
pub mod lint;
pub mod model;
mod parse;
pub mod quantity;
pub mod schema;
pub mod template;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use canonical::{canonical_json, digest};
pub use diagnostics::{Diagnostic, Location, Problem, Severity, SpecErrors};
pub use emit::to_yaml;
pub use lint::lint;
pub use model::*;
pub use parse::{MAX_SPEC_BYTES, parse_str};

/// A spec that passed every error-level check, with its warnings and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// The parsed spec.
    pub spec: AgentSpec,
    /// The file it was read from.
    pub path: PathBuf,
    /// The directory referenced files are relative to.
    pub base_dir: PathBuf,
    /// Warnings (never errors: those reject the spec).
    pub warnings: Vec<Diagnostic>,
}

/// Parses and lints spec text; `base_dir` enables checks that referenced files exist.
pub fn check_str(
    name: &str,
    text: &str,
    base_dir: Option<&Path>,
) -> Result<(AgentSpec, Vec<Diagnostic>), SpecErrors> {
    let spec = parse_str(name, text)?;
    let diagnostics = lint(&spec, name, text, base_dir);
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(SpecErrors {
            name: name.to_string(),
            diagnostics,
        });
    }
    Ok((spec, diagnostics))
}

/// Reads, parses and lints a spec file (at most [`MAX_SPEC_BYTES`]).
pub fn load(path: &Path) -> Result<LoadedSpec, SpecErrors> {
    let name = path.display().to_string();
    let fail = |problem| SpecErrors {
        name: name.clone(),
        diagnostics: vec![Diagnostic::error(problem)],
    };
    let file = std::fs::File::open(path).map_err(|e| fail(Problem::Io(e.to_string())))?;
    let mut bytes = Vec::new();
    file.take(MAX_SPEC_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(Problem::Io(e.to_string())))?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        let size = std::fs::metadata(path)
            .map(|m| m.len())
            .unwrap_or(bytes.len() as u64);
        return Err(fail(Problem::TooLarge {
            size,
            limit: MAX_SPEC_BYTES,
        }));
    }
    let text =
        String::from_utf8(bytes).map_err(|e| fail(Problem::Io(format!("not UTF-8 text: {e}"))))?;
    let base_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (spec, warnings) = check_str(&name, &text, Some(&base_dir))?;
    Ok(LoadedSpec {
        spec,
        path: path.to_path_buf(),
        base_dir,
        warnings,
    })
}

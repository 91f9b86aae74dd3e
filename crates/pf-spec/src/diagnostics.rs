//! Typed diagnostics: one variant per failed check, each with a location in the spec file.

use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

/// How serious a diagnostic is: errors reject the spec, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The spec is rejected.
    Error,
    /// The spec is accepted, but something is probably wrong.
    Warning,
}

/// What went wrong, one variant per check.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    /// The file is not valid YAML.
    #[error("YAML syntax error: {0}")]
    YamlSyntax(String),
    /// A mapping has the same key twice.
    #[error("duplicate key `{key}` (first at line {first_line})")]
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// Line of the first occurrence.
        first_line: usize,
    },
    /// A field name the schema does not know.
    #[error("unknown field `{field}` in {context}")]
    UnknownField {
        /// The unknown field.
        field: String,
        /// Where it appeared (a path such as `capabilities[0].constraints`).
        context: String,
        /// Fields allowed at this place.
        expected: Vec<String>,
    },
    /// A value of the wrong type or an unknown enum value.
    #[error("invalid value at `{path}`: {detail}")]
    WrongType {
        /// Path of the value.
        path: String,
        /// What the decoder said.
        detail: String,
    },
    /// The agent name is not a DNS label.
    #[error(
        "invalid agent name `{0}`: use 1-63 lowercase letters, digits and `-`, starting and ending with a letter or digit"
    )]
    InvalidName(String),
    /// The version is not semantic versioning.
    #[error("invalid version `{value}`: {reason}")]
    InvalidSemver {
        /// The value given.
        value: String,
        /// Why it is not semver.
        reason: String,
    },
    /// Two entries of a list share a name.
    #[error("duplicate {what} name `{name}` (first defined at line {first_line})")]
    DuplicateName {
        /// `capability`, `proof`, `policy` or `signer`.
        what: &'static str,
        /// The repeated name.
        name: String,
        /// Line of the first definition.
        first_line: usize,
    },
    /// A referenced file does not exist (or is not a regular file).
    #[error("{what} `{path}` not found (looked in {resolved})")]
    MissingFile {
        /// What the file is for.
        what: &'static str,
        /// The path as written.
        path: String,
        /// The resolved path that was checked.
        resolved: String,
    },
    /// A referenced path escapes the spec's directory or is absolute.
    #[error("{what} path `{path}` must be relative and stay inside the spec's directory")]
    PathEscapes {
        /// What the file is for.
        what: &'static str,
        /// The path as written.
        path: String,
    },
    /// A number outside its allowed range.
    #[error("`{field}` = {value} is out of range: {expected}")]
    OutOfRange {
        /// The field.
        field: String,
        /// The value given.
        value: String,
        /// The allowed range in words.
        expected: String,
    },
    /// A regular expression that does not compile.
    #[error("invalid regular expression in `{field}`: {reason}")]
    InvalidRegex {
        /// The field.
        field: String,
        /// Why it does not compile.
        reason: String,
    },
    /// A duration such as `60s` that does not parse.
    #[error(
        "invalid duration `{value}` in `{field}`: expected a number with a unit (ms, s, m, h), e.g. `30s`"
    )]
    InvalidDuration {
        /// The field.
        field: String,
        /// The value given.
        value: String,
    },
    /// A CPU or memory quantity that does not parse.
    #[error("invalid {what} quantity `{value}`: {expected}")]
    InvalidQuantity {
        /// `cpu` or `memory`.
        what: &'static str,
        /// The value given.
        value: String,
        /// What would be accepted.
        expected: &'static str,
    },
    /// An `arguments` JSON Schema that is not itself a valid schema.
    #[error("invalid JSON Schema in `{field}`: {reason}")]
    InvalidJsonSchema {
        /// The field.
        field: String,
        /// What the meta-schema check said.
        reason: String,
    },
    /// A reference to a capability the spec does not declare.
    #[error("`{field}` names unknown capability `{name}`")]
    UnknownCapability {
        /// The field holding the reference.
        field: String,
        /// The name that does not resolve.
        name: String,
    },
    /// A field that the entry's type requires is absent.
    #[error("{entry} of type `{kind}` needs `{field}`")]
    MissingField {
        /// The entry (e.g. `proof \`x\``).
        entry: String,
        /// The entry's type.
        kind: String,
        /// The missing field.
        field: &'static str,
    },
    /// A field that does not apply to the entry's type.
    #[error("`{field}` does not apply to {entry} of type `{kind}`")]
    FieldNotApplicable {
        /// The entry.
        entry: String,
        /// The entry's type.
        kind: String,
        /// The field that does not apply.
        field: &'static str,
    },
    /// A Lean proof given only as source, which the checker cannot read.
    #[error(
        "proof `{0}` names Lean source but no `export`: the verification engine re-checks lean4export output, not source"
    )]
    LeanSourceWithoutExport(String),
    /// A Lean proof that names no theorem, so there is nothing whose axioms could be checked.
    #[error(
        "proof `{0}` names no `theorem`: the checker re-checks the export but the obligation cannot pass without a theorem"
    )]
    LeanWithoutTheorem(String),
    /// A file larger than the reader accepts.
    #[error("file is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Actual size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The file could not be read.
    #[error("cannot read file: {0}")]
    Io(String),
}

impl Problem {
    /// Stable machine-readable code, e.g. `pf::spec::unknown-field`.
    pub fn code(&self) -> &'static str {
        match self {
            Problem::YamlSyntax(_) => "pf::spec::yaml-syntax",
            Problem::DuplicateKey { .. } => "pf::spec::duplicate-key",
            Problem::UnknownField { .. } => "pf::spec::unknown-field",
            Problem::WrongType { .. } => "pf::spec::wrong-type",
            Problem::InvalidName(_) => "pf::spec::invalid-name",
            Problem::InvalidSemver { .. } => "pf::spec::invalid-semver",
            Problem::DuplicateName { .. } => "pf::spec::duplicate-name",
            Problem::MissingFile { .. } => "pf::spec::missing-file",
            Problem::PathEscapes { .. } => "pf::spec::path-escapes",
            Problem::OutOfRange { .. } => "pf::spec::out-of-range",
            Problem::InvalidRegex { .. } => "pf::spec::invalid-regex",
            Problem::InvalidDuration { .. } => "pf::spec::invalid-duration",
            Problem::InvalidQuantity { .. } => "pf::spec::invalid-quantity",
            Problem::InvalidJsonSchema { .. } => "pf::spec::invalid-json-schema",
            Problem::UnknownCapability { .. } => "pf::spec::unknown-capability",
            Problem::MissingField { .. } => "pf::spec::missing-field",
            Problem::FieldNotApplicable { .. } => "pf::spec::field-not-applicable",
            Problem::LeanSourceWithoutExport(_) => "pf::spec::lean-source-without-export",
            Problem::LeanWithoutTheorem(_) => "pf::spec::lean-without-theorem",
            Problem::TooLarge { .. } => "pf::spec::too-large",
            Problem::Io(_) => "pf::spec::io",
        }
    }
}

/// A 1-based line and column in the spec file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Byte offset from the start of the file.
    pub offset: usize,
}

/// One finding about a spec, with where it is and what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{problem}")]
pub struct Diagnostic {
    /// What went wrong.
    pub problem: Problem,
    /// Error or warning.
    pub severity: Severity,
    /// Where, when known.
    pub location: Option<Location>,
    /// Length in bytes of the highlighted text.
    pub len: usize,
    /// A suggestion for fixing it.
    pub help: Option<String>,
    /// The file name and text, for rendering.
    pub src: Option<Arc<NamedSource<String>>>,
}

impl Diagnostic {
    /// A new error-severity diagnostic without location.
    pub fn error(problem: Problem) -> Self {
        Diagnostic {
            problem,
            severity: Severity::Error,
            location: None,
            len: 0,
            help: None,
            src: None,
        }
    }

    /// The same diagnostic as a warning.
    pub fn warning(self) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..self
        }
    }

    /// Adds a help text.
    pub fn with_help(self, help: impl Into<String>) -> Self {
        Diagnostic {
            help: Some(help.into()),
            ..self
        }
    }

    /// True for error severity.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col: severity: message`, the one-line form for logs and JSON tools.
    pub fn one_line(&self) -> String {
        let file = self
            .src
            .as_ref()
            .map(|s| s.name().to_string())
            .unwrap_or_default();
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match self.location {
            Some(l) => format!("{file}:{}:{}: {sev}: {}", l.line, l.column, self.problem),
            None => format!("{file}: {sev}: {}", self.problem),
        }
    }
}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(self.problem.code()))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.src.as_deref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let loc = self.location?;
        self.src.as_ref()?;
        let span = SourceSpan::new(loc.offset.into(), self.len);
        Some(Box::new(std::iter::once(
            miette::LabeledSpan::new_with_span(Some("here".into()), span),
        )))
    }
}

/// Every problem found in a spec file; returned when it has at least one error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{name}: {errors} error(s), {warnings} warning(s)", errors = self.error_count(), warnings = self.diagnostics.len() - self.error_count())]
pub struct SpecErrors {
    /// The file name as given.
    pub name: String,
    /// Findings, errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl SpecErrors {
    /// Number of error-severity diagnostics.
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }
}

impl miette::Diagnostic for SpecErrors {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new("pf::spec::invalid"))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        Some(Box::new(
            self.diagnostics
                .iter()
                .map(|d| d as &dyn miette::Diagnostic),
        ))
    }
}

/// Maps 1-based line/column (columns in characters) to byte offsets in a text.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, line_starts }
    }

    /// The location of a 1-based line and character column, clamped to the text.
    pub(crate) fn location(&self, line: usize, column: usize) -> Location {
        let line = line.clamp(1, self.line_starts.len());
        let start = self.line_starts[line - 1];
        let rest = &self.text[start..];
        let line_text = rest.split('\n').next().unwrap_or("");
        let byte_col: usize = line_text
            .chars()
            .take(column.saturating_sub(1))
            .map(char::len_utf8)
            .sum();
        Location {
            line,
            column: column.max(1),
            offset: start + byte_col,
        }
    }

    /// Length in bytes of the token starting at `offset` (a word or quoted scalar, at least 1).
    pub(crate) fn token_len(&self, offset: usize) -> usize {
        let rest = self.text.get(offset..).unwrap_or("");
        let len = rest
            .char_indices()
            .find(|(_, c)| c.is_whitespace() || matches!(c, ':' | ',' | '}' | ']' | '#'))
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        len.max(usize::from(!rest.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_maps_multibyte_columns_to_byte_offsets() {
        let idx = LineIndex::new("a: 1\nné: x\n");
        let loc = idx.location(2, 3);
        assert_eq!(loc.offset, 5 + "né".len());
        assert_eq!(idx.token_len(loc.offset), 1);
    }
}

//! Paths inside a bundle: relative, `/`-separated, normalised, and safe to extract anywhere.

use std::fmt;

/// Name of the manifest entry; always the first entry of the archive and reserved for it.
pub const MANIFEST_PATH: &str = "manifest.json";

/// Name under which the agent spec is stored in every bundle.
pub const SPEC_PATH: &str = "agent.yaml";

/// Longest path accepted, in bytes (ustar splits paths into a 155-byte prefix and 100-byte name).
pub const MAX_PATH_LEN: usize = 255;

/// Why a path cannot name a bundle entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Empty path.
    #[error("path is empty")]
    Empty,
    /// Not valid UTF-8.
    #[error("path is not valid UTF-8")]
    NotUtf8,
    /// Longer than [`MAX_PATH_LEN`].
    #[error("path is {len} bytes long, the limit is {MAX_PATH_LEN}")]
    TooLong {
        /// Length in bytes.
        len: usize,
    },
    /// Starts with `/` (or a drive letter / UNC prefix).
    #[error("path is absolute; bundle paths are relative to the bundle root")]
    Absolute,
    /// Contains a `..` component.
    #[error("path contains a `..` component (path traversal)")]
    ParentComponent,
    /// Contains `.` or an empty component (`a//b`, trailing `/`).
    #[error("path is not normalised (`.` or empty component); write it as a/b/c")]
    NotNormalised,
    /// Contains a backslash, colon, NUL or other control character.
    #[error("path contains the forbidden character {0:?}")]
    ForbiddenChar(char),
    /// The manifest name is reserved.
    #[error("`{MANIFEST_PATH}` is reserved for the bundle manifest")]
    Reserved,
}

/// A validated bundle path (see [`BundlePath::parse`] for the rules).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BundlePath(String);

impl BundlePath {
    /// Validates `s` as a bundle path for a user file.
    ///
    /// Rules: non-empty, at most [`MAX_PATH_LEN`] bytes, `/`-separated, relative, no `.`, `..` or
    /// empty components, no `\`, `:`, NUL or control characters (so the same path is safe and
    /// means the same on Unix and Windows), and not the reserved [`MANIFEST_PATH`].
    pub fn parse(s: &str) -> Result<Self, PathError> {
        validate(s)?;
        if s == MANIFEST_PATH {
            return Err(PathError::Reserved);
        }
        Ok(Self(s.to_string()))
    }

    /// Normalises a path as a user writes it (drops `.` and empty components, so
    /// `./proofs//a.lean` becomes `proofs/a.lean`), then validates it with [`BundlePath::parse`].
    /// `..`, absolute paths and forbidden characters are still rejected, never resolved.
    pub fn normalize(s: &str) -> Result<Self, PathError> {
        if s.starts_with('/') {
            return Err(PathError::Absolute);
        }
        let joined = s
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect::<Vec<_>>()
            .join("/");
        Self::parse(&joined)
    }

    /// Validates raw bytes read from an archive header.
    pub fn parse_bytes(b: &[u8]) -> Result<Self, PathError> {
        let s = std::str::from_utf8(b).map_err(|_| PathError::NotUtf8)?;
        Self::parse(s)
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks the syntactic rules shared by user paths and the manifest name.
pub(crate) fn validate(s: &str) -> Result<(), PathError> {
    if s.is_empty() {
        return Err(PathError::Empty);
    }
    if s.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong { len: s.len() });
    }
    if s.starts_with('/') {
        return Err(PathError::Absolute);
    }
    if let Some(c) = s
        .chars()
        .find(|c| *c == '\\' || *c == ':' || c.is_control())
    {
        // A drive letter (`C:`) or UNC prefix (`\\`) would be absolute on Windows.
        return Err(PathError::ForbiddenChar(c));
    }
    for comp in s.split('/') {
        match comp {
            ".." => return Err(PathError::ParentComponent),
            "" | "." => return Err(PathError::NotNormalised),
            _ => {}
        }
    }
    Ok(())
}

impl fmt::Display for BundlePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BundlePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_relative_paths() {
        for p in [
            "agent.yaml",
            "proofs/behavior.lean",
            "a/b/c.d",
            ".hidden/x",
            "a..b",
            "...x",
        ] {
            assert_eq!(BundlePath::parse(p).map(|b| b.0), Ok(p.to_string()), "{p}");
        }
    }

    #[test]
    fn normalize_drops_dot_and_empty_components_only() {
        let n = |s: &str| BundlePath::normalize(s).map(|p| p.0);
        assert_eq!(n("./proofs//a.lean"), Ok("proofs/a.lean".to_string()));
        assert_eq!(n("a/./b/"), Ok("a/b".to_string()));
        assert_eq!(n("a/../b"), Err(PathError::ParentComponent));
        assert_eq!(n("/a"), Err(PathError::Absolute));
        assert_eq!(n("./"), Err(PathError::Empty));
        assert_eq!(n("a\\b"), Err(PathError::ForbiddenChar('\\')));
    }

    #[test]
    fn rejects_each_unsafe_form_with_its_reason() {
        let cases = [
            ("", PathError::Empty),
            ("/etc/passwd", PathError::Absolute),
            ("../x", PathError::ParentComponent),
            ("a/../../x", PathError::ParentComponent),
            ("a/..", PathError::ParentComponent),
            ("./a", PathError::NotNormalised),
            ("a//b", PathError::NotNormalised),
            ("a/", PathError::NotNormalised),
            ("a\\..\\b", PathError::ForbiddenChar('\\')),
            ("C:/x", PathError::ForbiddenChar(':')),
            ("a\0b", PathError::ForbiddenChar('\0')),
            ("a\nb", PathError::ForbiddenChar('\n')),
            (MANIFEST_PATH, PathError::Reserved),
        ];
        for (p, want) in cases {
            assert_eq!(BundlePath::parse(p), Err(want), "{p:?}");
        }
        assert_eq!(
            BundlePath::parse(&"a".repeat(256)),
            Err(PathError::TooLong { len: 256 })
        );
        assert_eq!(BundlePath::parse_bytes(b"\xff"), Err(PathError::NotUtf8));
    }
}

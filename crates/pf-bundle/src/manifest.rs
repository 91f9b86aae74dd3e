//! The bundle manifest: canonical JSON listing every file with its size and sha256.

use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::path::{BundlePath, SPEC_PATH};

/// Value of [`Manifest::format`] for this version of the format.
pub const MANIFEST_FORMAT: &str = "pf-bundle/v1";

/// Longest accepted spec name or version, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// One file of the bundle.
// Fields are declared in lexicographic order: serde_json writes them in declaration order, which
// makes the serialisation canonical (sorted keys, no whitespace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path inside the bundle.
    pub path: String,
    /// SHA-256 of the file contents.
    pub sha256: Sha256Digest,
    /// Size in bytes.
    pub size: u64,
}

/// Which spec the bundle packs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecRef {
    /// Path of the spec inside the bundle (always [`SPEC_PATH`]).
    pub file: String,
    /// Agent name from the spec.
    pub name: String,
    /// Agent version from the spec.
    pub version: String,
}

/// The manifest stored as the first archive entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Every file except the manifest, sorted by path (byte order), no duplicates.
    pub files: Vec<FileEntry>,
    /// Format identifier, [`MANIFEST_FORMAT`].
    pub format: String,
    /// The packed spec.
    pub spec: SpecRef,
}

/// Why a manifest is not acceptable.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of the manifest shape.
    #[error("manifest is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    /// Valid JSON but not the canonical serialisation (key order, whitespace, escapes).
    #[error("manifest is not in canonical form (sorted keys, no whitespace)")]
    NotCanonical,
    /// Unknown format identifier.
    #[error("manifest format is {0:?}, expected {MANIFEST_FORMAT:?}")]
    Format(String),
    /// A listed path is invalid.
    #[error("manifest lists invalid path {path:?}: {source}")]
    Path {
        /// Offending path.
        path: String,
        /// Rule broken.
        source: crate::path::PathError,
    },
    /// Files are not strictly sorted (also catches duplicates).
    #[error("manifest files are not strictly sorted: {path:?} follows {previous:?}")]
    NotSorted {
        /// Entry out of place.
        path: String,
        /// Entry before it.
        previous: String,
    },
    /// The spec file is not listed or is not [`SPEC_PATH`].
    #[error("manifest spec file must be {SPEC_PATH:?} and listed among the files (found {0:?})")]
    SpecFile(String),
    /// Spec name or version empty, too long or with control characters.
    #[error(
        "manifest spec {field} {value:?} is invalid (1..={MAX_NAME_LEN} bytes, no control characters)"
    )]
    SpecField {
        /// `name` or `version`.
        field: &'static str,
        /// Value found.
        value: String,
    },
}

impl Manifest {
    /// Canonical JSON bytes (the bytes stored in the archive and hashed for the manifest digest).
    pub fn to_canonical_json(&self) -> Vec<u8> {
        // Serialising plain structs of strings and integers into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses manifest bytes, requiring the canonical form and checking every invariant.
    pub fn from_canonical_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        let m: Manifest = serde_json::from_slice(bytes)?;
        if m.to_canonical_json() != bytes {
            return Err(ManifestError::NotCanonical);
        }
        m.check()?;
        Ok(m)
    }

    /// Checks the invariants: format, valid sorted unique paths, spec listed, name/version sane.
    pub fn check(&self) -> Result<(), ManifestError> {
        if self.format != MANIFEST_FORMAT {
            return Err(ManifestError::Format(self.format.clone()));
        }
        check_spec_field("name", &self.spec.name)?;
        check_spec_field("version", &self.spec.version)?;
        let mut previous: Option<&str> = None;
        for f in &self.files {
            BundlePath::parse(&f.path).map_err(|source| ManifestError::Path {
                path: f.path.clone(),
                source,
            })?;
            if let Some(p) = previous
                && p.as_bytes() >= f.path.as_bytes()
            {
                return Err(ManifestError::NotSorted {
                    path: f.path.clone(),
                    previous: p.to_string(),
                });
            }
            previous = Some(&f.path);
        }
        if self.spec.file != SPEC_PATH || self.entry(SPEC_PATH).is_none() {
            return Err(ManifestError::SpecFile(self.spec.file.clone()));
        }
        Ok(())
    }

    /// The entry for `path`, if listed.
    pub fn entry(&self, path: &str) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|f| f.path.as_bytes().cmp(path.as_bytes()))
            .ok()
            .and_then(|i| self.files.get(i))
    }

    /// Sum of all file sizes.
    pub fn total_size(&self) -> u64 {
        self.files
            .iter()
            .map(|f| f.size)
            .fold(0, u64::saturating_add)
    }

    /// The file name a bundle of this spec gets: `NAME-VERSION.pfb` (also the in-toto subject name).
    pub fn bundle_file_name(&self) -> String {
        format!("{}-{}.pfb", self.spec.name, self.spec.version)
    }
}

/// Checks a spec name or version.
pub(crate) fn check_spec_field(field: &'static str, value: &str) -> Result<(), ManifestError> {
    if value.is_empty() || value.len() > MAX_NAME_LEN || value.chars().any(char::is_control) {
        return Err(ManifestError::SpecField {
            field,
            value: value.chars().take(MAX_NAME_LEN + 8).collect(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            files: vec![
                FileEntry {
                    path: "agent.yaml".into(),
                    sha256: Sha256Digest::of(b"a"),
                    size: 1,
                },
                FileEntry {
                    path: "proofs/p.lean".into(),
                    sha256: Sha256Digest::of(b"bb"),
                    size: 2,
                },
            ],
            format: MANIFEST_FORMAT.into(),
            spec: SpecRef {
                file: SPEC_PATH.into(),
                name: "ai-agent".into(),
                version: "1.0.0".into(),
            },
        }
    }

    #[test]
    fn canonical_json_has_sorted_keys_and_no_whitespace() {
        let json = String::from_utf8(sample().to_canonical_json()).unwrap_or_default();
        assert!(
            json.starts_with(r#"{"files":[{"path":"agent.yaml","sha256":""#),
            "{json}"
        );
        assert!(json.ends_with(r#""format":"pf-bundle/v1","spec":{"file":"agent.yaml","name":"ai-agent","version":"1.0.0"}}"#), "{json}");
        assert!(!json.contains(' ') && !json.contains('\n'));
        let back = Manifest::from_canonical_json(json.as_bytes());
        assert_eq!(back.ok(), Some(sample()));
    }

    #[test]
    fn non_canonical_spelling_is_rejected() {
        let v: serde_json::Value =
            serde_json::from_slice(&sample().to_canonical_json()).unwrap_or_default();
        let pretty = serde_json::to_vec_pretty(&v).unwrap_or_default();
        assert!(matches!(
            Manifest::from_canonical_json(&pretty),
            Err(ManifestError::NotCanonical)
        ));
    }

    #[test]
    fn unsorted_or_duplicate_files_are_rejected() {
        let mut m = sample();
        m.files.swap(0, 1);
        assert!(matches!(m.check(), Err(ManifestError::NotSorted { .. })));
        let mut m = sample();
        m.files.push(m.files[1].clone());
        assert!(matches!(m.check(), Err(ManifestError::NotSorted { .. })));
    }

    #[test]
    fn spec_must_be_listed_and_fields_sane() {
        let mut m = sample();
        m.files.remove(0);
        assert!(matches!(m.check(), Err(ManifestError::SpecFile(_))));
        let mut m = sample();
        m.spec.name = String::new();
        assert!(matches!(
            m.check(),
            Err(ManifestError::SpecField { field: "name", .. })
        ));
        let mut m = sample();
        m.format = "pf-bundle/v9".into();
        assert!(matches!(m.check(), Err(ManifestError::Format(_))));
        let mut m = sample();
        m.files[1].path = "../x".into();
        assert!(matches!(m.check(), Err(ManifestError::Path { .. })));
    }
}

//! Helpers shared by the integration tests: sample bundles and hand-made (malicious) archives.
#![allow(dead_code)]

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use pf_bundle::manifest::{FileEntry, MANIFEST_FORMAT, Manifest, SpecRef};
use pf_bundle::{BuiltBundle, BundleBuilder, Sha256Digest};

pub const SPEC: &[u8] = b"name: ai-agent\nversion: 1.0.0\nproofs:\n  - { name: behavior_verification, type: lean, file: proofs/behavior.lean }\n";

/// The sample files (besides the spec).
pub fn sample_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "proofs/behavior.lean",
            b"theorem ok : True := trivial\n".to_vec(),
        ),
        (
            "models/policy.onnx",
            (0..4096u32).map(|i| (i * 31 % 251) as u8).collect(),
        ),
        ("README.md", b"# sample agent\n".to_vec()),
    ]
}

/// A valid sample bundle.
pub fn sample_bundle() -> BuiltBundle {
    sample_bundle_with("1.0.0", &sample_files())
}

/// A valid bundle at `version` with `files`.
pub fn sample_bundle_with(version: &str, files: &[(&str, Vec<u8>)]) -> BuiltBundle {
    let mut b = BundleBuilder::new("ai-agent", version).expect("builder");
    b.spec(SPEC.to_vec()).expect("spec");
    for (p, bytes) in files {
        b.add_file(p, bytes.clone()).expect("add");
    }
    b.build().expect("build")
}

/// Canonical manifest JSON listing `files` (which must include `agent.yaml` to be valid).
pub fn manifest_for(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut entries: Vec<FileEntry> = files
        .iter()
        .map(|(p, b)| FileEntry {
            path: p.to_string(),
            sha256: Sha256Digest::of(b),
            size: b.len() as u64,
        })
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|a, b| a.path == b.path);
    Manifest {
        files: entries,
        format: MANIFEST_FORMAT.to_string(),
        spec: SpecRef {
            file: "agent.yaml".into(),
            name: "ai-agent".into(),
            version: "1.0.0".into(),
        },
    }
    .to_canonical_json()
}

/// One raw tar entry: path bytes written verbatim into the header, a type byte, and data.
pub struct Raw<'a> {
    pub path: &'a [u8],
    pub kind: u8,
    pub data: &'a [u8],
    /// Size written in the header (defaults to data length).
    pub size: Option<u64>,
    pub link: &'a [u8],
}

impl<'a> Raw<'a> {
    pub fn file(path: &'a str, data: &'a [u8]) -> Self {
        Self {
            path: path.as_bytes(),
            kind: b'0',
            data,
            size: None,
            link: b"",
        }
    }
    pub fn kind(path: &'a str, kind: u8, data: &'a [u8]) -> Self {
        Self {
            path: path.as_bytes(),
            kind,
            data,
            size: None,
            link: b"",
        }
    }
}

/// Uncompressed ustar stream with hand-written headers (bypassing the tar crate's path checks).
pub fn raw_tar(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_ustar();
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..e.path.len()].copy_from_slice(e.path);
            old.linkname[..e.link.len()].copy_from_slice(e.link);
        }
        h.set_size(e.size.unwrap_or(e.data.len() as u64));
        h.set_mode(0o644);
        h.set_mtime(0);
        h.as_old_mut().linkflag = [e.kind];
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(e.data);
        let pad = (512 - e.data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

/// gzip of `bytes`.
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).expect("gzip write");
    e.finish().expect("gzip finish")
}

/// gzip of a raw tar of `entries`.
pub fn archive(entries: &[Raw<'_>]) -> Vec<u8> {
    gz(&raw_tar(entries))
}

/// gunzip.
pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out).expect("gunzip");
    out
}

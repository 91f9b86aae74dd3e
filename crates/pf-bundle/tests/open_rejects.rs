//! Opening untrusted archives: each malicious or malformed shape is rejected with its own error.

mod common;

use common::*;
use pf_bundle::path::PathError;
use pf_bundle::{Limits, OpenError, open};

const SPEC_PATH: &str = "agent.yaml";

/// A manifest listing the spec and `a.txt`, with matching entries; tests then break one thing.
fn good_parts() -> (Vec<u8>, &'static [u8]) {
    (
        manifest_for(&[(SPEC_PATH, SPEC), ("z.txt", b"hello")]),
        b"hello",
    )
}

fn open_default(bytes: &[u8]) -> Result<pf_bundle::OpenedBundle, OpenError> {
    open(bytes, &Limits::default())
}

#[test]
fn hand_made_archive_matching_the_manifest_opens() {
    let (m, a) = good_parts();
    let ok = open_default(&archive(&[
        Raw::file("manifest.json", &m),
        Raw::file(SPEC_PATH, SPEC),
        Raw::file("z.txt", a),
    ]));
    let b = ok.expect("valid archive opens");
    assert_eq!(b.files.get("z.txt").map(Vec::as_slice), Some(&b"hello"[..]));
}

#[test]
fn parent_directory_traversal_is_rejected() {
    let m = manifest_for(&[(SPEC_PATH, SPEC)]);
    let r = open_default(&archive(&[
        Raw::file("manifest.json", &m),
        Raw::file("../evil", b"x"),
    ]));
    assert!(
        matches!(&r, Err(OpenError::InvalidPath { path, source: PathError::ParentComponent }) if path == "../evil"),
        "{r:?}"
    );
    let r = open_default(&archive(&[
        Raw::file("manifest.json", &m),
        Raw::file("a/../../evil", b"x"),
    ]));
    assert!(
        matches!(
            &r,
            Err(OpenError::InvalidPath {
                source: PathError::ParentComponent,
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn absolute_path_is_rejected() {
    let m = manifest_for(&[(SPEC_PATH, SPEC)]);
    let r = open_default(&archive(&[
        Raw::file("manifest.json", &m),
        Raw::file("/etc/cron.d/x", b"x"),
    ]));
    assert!(
        matches!(&r, Err(OpenError::InvalidPath { path, source: PathError::Absolute }) if path == "/etc/cron.d/x"),
        "{r:?}"
    );
}

#[test]
fn absolute_path_as_first_entry_is_rejected_as_a_path() {
    let r = open_default(&archive(&[Raw::file("/manifest.json", b"{}")]));
    assert!(
        matches!(
            &r,
            Err(OpenError::InvalidPath {
                source: PathError::Absolute,
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn links_devices_directories_and_extension_headers_are_rejected() {
    let m = manifest_for(&[(SPEC_PATH, SPEC)]);
    let cases: [(u8, &str); 9] = [
        (b'2', "symlink"),
        (b'1', "hardlink"),
        (b'3', "character device"),
        (b'4', "block device"),
        (b'5', "directory"),
        (b'6', "fifo"),
        (b'x', "PAX extended header"),
        (b'g', "PAX global header"),
        (b'L', "GNU long-name extension"),
    ];
    for (kind, name) in cases {
        let mut link = Raw::kind("agent.yaml", kind, b"");
        link.link = b"/etc/passwd";
        let r = open_default(&archive(&[Raw::file("manifest.json", &m), link]));
        assert!(
            matches!(&r, Err(OpenError::UnsupportedEntryType { path, kind }) if path == "agent.yaml" && kind == name),
            "type {:?}: {r:?}",
            kind as char
        );
    }
}

#[test]
fn symlink_in_place_of_the_manifest_is_rejected() {
    let mut link = Raw::kind("manifest.json", b'2', b"");
    link.link = b"../../etc/passwd";
    let r = open_default(&archive(&[link]));
    assert!(
        matches!(&r, Err(OpenError::UnsupportedEntryType { kind, .. }) if kind == "symlink"),
        "{r:?}"
    );
}

#[test]
fn duplicate_file_entry_is_rejected() {
    let (m, a) = good_parts();
    let r = open_default(&archive(&[
        Raw::file("manifest.json", &m),
        Raw::file(SPEC_PATH, SPEC),
        Raw::file("z.txt", a),
        Raw::file("z.txt", a),
    ]));
    assert!(
        matches!(&r, Err(OpenError::DuplicateEntry(p)) if p == "z.txt"),
        "{r:?}"
    );
}

#[test]
fn second_manifest_entry_is_rejected_as_duplicate() {
    let (m, a) = good_parts();
    let r = open_default(&archive(&[
        Raw::file("manifest.json", &m),
        Raw::file("manifest.json", &m),
        Raw::file(SPEC_PATH, SPEC),
        Raw::file("z.txt", a),
    ]));
    assert!(
        matches!(&r, Err(OpenError::DuplicateEntry(p)) if p == "manifest.json"),
        "{r:?}"
    );
}

#[test]
fn entry_missing_from_manifest_is_rejected() {
    let (m, a) = good_parts();
    let r = open_default(&archive(&[
        Raw::file("manifest.json", &m),
        Raw::file(SPEC_PATH, SPEC),
        Raw::file("z.txt", a),
        Raw::file("b.txt", b"smuggled"),
    ]));
    assert!(
        matches!(&r, Err(OpenError::UnlistedEntry(p)) if p == "b.txt"),
        "{r:?}"
    );
}

#[test]
fn manifest_entry_missing_from_archive_is_rejected() {
    let (m, _) = good_parts();
    let r = open_default(&archive(&[
        Raw::file("manifest.json", &m),
        Raw::file(SPEC_PATH, SPEC),
    ]));
    assert!(
        matches!(&r, Err(OpenError::MissingEntry(p)) if p == "z.txt"),
        "{r:?}"
    );
}

#[test]
fn changed_content_is_a_digest_mismatch_naming_the_entry() {
    let (m, _) = good_parts();
    let r = open_default(&archive(&[
        Raw::file("manifest.json", &m),
        Raw::file(SPEC_PATH, SPEC),
        Raw::file("z.txt", b"jello"),
    ]));
    assert!(
        matches!(&r, Err(OpenError::DigestMismatch { path, .. }) if path == "z.txt"),
        "{r:?}"
    );
}

#[test]
fn changed_length_is_a_size_mismatch() {
    let (m, _) = good_parts();
    let r = open_default(&archive(&[
        Raw::file("manifest.json", &m),
        Raw::file(SPEC_PATH, SPEC),
        Raw::file("z.txt", b"hello!"),
    ]));
    assert!(
        matches!(&r, Err(OpenError::SizeMismatch { path, expected: 5, actual: 6 }) if path == "z.txt"),
        "{r:?}"
    );
}

#[test]
fn manifest_must_come_first() {
    let (m, a) = good_parts();
    let r = open_default(&archive(&[
        Raw::file(SPEC_PATH, SPEC),
        Raw::file("manifest.json", &m),
        Raw::file("z.txt", a),
    ]));
    assert!(
        matches!(&r, Err(OpenError::ManifestNotFirst(p)) if p == SPEC_PATH),
        "{r:?}"
    );
}

#[test]
fn entries_must_follow_manifest_order() {
    let (m, a) = good_parts();
    let r = open_default(&archive(&[
        Raw::file("manifest.json", &m),
        Raw::file("z.txt", a),
        Raw::file(SPEC_PATH, SPEC),
    ]));
    assert!(
        matches!(&r, Err(OpenError::OutOfOrder { path, .. }) if path == SPEC_PATH),
        "{r:?}"
    );
}

#[test]
fn empty_archive_has_no_manifest() {
    let r = open_default(&archive(&[]));
    assert!(matches!(r, Err(OpenError::ManifestMissing)), "{r:?}");
}

#[test]
fn non_canonical_manifest_is_rejected() {
    let m = manifest_for(&[(SPEC_PATH, SPEC)]);
    let v: serde_json::Value = serde_json::from_slice(&m).expect("json");
    let pretty = serde_json::to_vec_pretty(&v).expect("json");
    let r = open_default(&archive(&[
        Raw::file("manifest.json", &pretty),
        Raw::file(SPEC_PATH, SPEC),
    ]));
    assert!(
        matches!(
            r,
            Err(OpenError::Manifest(
                pf_bundle::manifest::ManifestError::NotCanonical
            ))
        ),
        "{r:?}"
    );
}

#[test]
fn entry_count_limit_is_enforced() {
    let (m, a) = good_parts();
    let limits = Limits {
        max_entries: 1,
        ..Limits::default()
    };
    let r = open(
        &archive(&[
            Raw::file("manifest.json", &m),
            Raw::file(SPEC_PATH, SPEC),
            Raw::file("z.txt", a),
        ]),
        &limits,
    );
    assert!(
        matches!(&r, Err(OpenError::TooManyEntries { limit: 1, .. })),
        "{r:?}"
    );
}

#[test]
fn per_file_limit_is_checked_from_the_header_before_reading() {
    let m = manifest_for(&[(SPEC_PATH, SPEC)]);
    let limits = Limits {
        max_file_size: 8,
        ..Limits::default()
    };
    let r = open(
        &archive(&[Raw::file("manifest.json", &m), Raw::file(SPEC_PATH, SPEC)]),
        &limits,
    );
    assert!(
        matches!(&r, Err(OpenError::FileTooLarge { path, limit: 8, .. }) if path == SPEC_PATH),
        "{r:?}"
    );
}

#[test]
fn total_size_limit_is_enforced() {
    let (m, a) = good_parts();
    let limits = Limits {
        max_total_size: SPEC.len() as u64 + 2,
        ..Limits::default()
    };
    let r = open(
        &archive(&[
            Raw::file("manifest.json", &m),
            Raw::file(SPEC_PATH, SPEC),
            Raw::file("z.txt", a),
        ]),
        &limits,
    );
    assert!(
        matches!(&r, Err(OpenError::TotalTooLarge { path, .. }) if path == "z.txt"),
        "{r:?}"
    );
}

#[test]
fn manifest_size_limit_is_enforced() {
    let m = manifest_for(&[(SPEC_PATH, SPEC)]);
    let limits = Limits {
        max_manifest_size: 10,
        ..Limits::default()
    };
    let r = open(
        &archive(&[Raw::file("manifest.json", &m), Raw::file(SPEC_PATH, SPEC)]),
        &limits,
    );
    assert!(
        matches!(&r, Err(OpenError::FileTooLarge { path, .. }) if path == "manifest.json"),
        "{r:?}"
    );
}

#[test]
fn highly_compressed_file_trips_the_ratio_limit() {
    // 16 MiB of zeros compresses ~1000:1; the manifest even lists it correctly.
    let zeros = vec![0u8; 16 << 20];
    let m = manifest_for(&[(SPEC_PATH, SPEC), ("zeros.bin", &zeros)]);
    let bomb = archive(&[
        Raw::file("manifest.json", &m),
        Raw::file(SPEC_PATH, SPEC),
        Raw::file("zeros.bin", &zeros),
    ]);
    let r = open_default(&bomb);
    assert!(
        matches!(&r, Err(OpenError::Bomb { what: "compression ratio", at: Some(p), .. }) if p == "zeros.bin"),
        "{r:?}"
    );
}

#[test]
fn endless_zero_padding_after_the_end_marker_trips_the_total_limit() {
    let m = manifest_for(&[(SPEC_PATH, SPEC)]);
    let mut tar = raw_tar(&[Raw::file("manifest.json", &m), Raw::file(SPEC_PATH, SPEC)]);
    tar.extend(std::iter::repeat_n(0u8, 4 << 20));
    let limits = Limits {
        max_total_size: 64 * 1024,
        max_entries: 4,
        max_manifest_size: 4096,
        max_compression_ratio: u64::MAX,
        ..Limits::default()
    };
    let r = open(&gz(&tar), &limits);
    assert!(
        matches!(
            &r,
            Err(OpenError::Bomb {
                what: "total size",
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn data_after_the_end_marker_or_after_the_gzip_member_is_rejected() {
    let m = manifest_for(&[(SPEC_PATH, SPEC)]);
    let mut tar = raw_tar(&[Raw::file("manifest.json", &m), Raw::file(SPEC_PATH, SPEC)]);
    tar.extend_from_slice(b"hidden payload");
    assert!(matches!(
        open_default(&gz(&tar)),
        Err(OpenError::TrailingData)
    ));

    let mut two = archive(&[Raw::file("manifest.json", &m), Raw::file(SPEC_PATH, SPEC)]);
    two.extend_from_slice(&gz(b"second member"));
    assert!(matches!(open_default(&two), Err(OpenError::TrailingData)));
}

#[test]
fn corrupt_or_truncated_gzip_is_rejected() {
    let good = sample_bundle().bytes;
    let truncated = &good[..good.len() - 9];
    assert!(
        matches!(open_default(truncated), Err(OpenError::Corrupt { .. })),
        "truncated"
    );
    let mut flipped = good.clone();
    let n = flipped.len();
    flipped[n - 5] ^= 0x01; // inside the ISIZE trailer field (RFC 1952 §2.3.1)
    assert!(
        matches!(open_default(&flipped), Err(OpenError::Corrupt { .. })),
        "trailer"
    );
    assert!(matches!(
        open_default(b"not gzip at all"),
        Err(OpenError::Corrupt { .. })
    ));
}

#[test]
fn bad_header_checksum_is_corrupt() {
    let (m, a) = good_parts();
    let mut tar = raw_tar(&[
        Raw::file("manifest.json", &m),
        Raw::file(SPEC_PATH, SPEC),
        Raw::file("z.txt", a),
    ]);
    tar[0] ^= 0x20; // 'm' -> 'M' without fixing the checksum
    assert!(matches!(
        open_default(&gz(&tar)),
        Err(OpenError::Corrupt { .. })
    ));
}

#[test]
fn archive_above_the_size_limit_is_refused_unread() {
    let good = sample_bundle().bytes;
    let limits = Limits {
        max_archive_size: 100,
        ..Limits::default()
    };
    assert!(matches!(
        open(&good, &limits),
        Err(OpenError::ArchiveTooLarge { limit: 100, .. })
    ));
}

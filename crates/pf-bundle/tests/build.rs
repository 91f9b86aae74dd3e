//! Building bundles: determinism, fixed header fields, round trip, and input validation.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use pf_bundle::path::PathError;
use pf_bundle::{BuildError, BundleBuilder, Limits, Sha256Digest, build_from_dir, open};

#[test]
fn insertion_order_does_not_change_the_bytes() {
    let files = sample_files();
    let mut reversed = files.clone();
    reversed.reverse();
    let a = sample_bundle_with("1.0.0", &files);
    let b = sample_bundle_with("1.0.0", &reversed);
    assert_eq!(a.bytes, b.bytes);
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.digest, Sha256Digest::of(&a.bytes));
}

#[test]
fn any_content_or_version_change_changes_the_digest() {
    let base = sample_bundle();
    let v2 = sample_bundle_with("1.0.1", &sample_files());
    let mut files = sample_files();
    files[0].1[0] ^= 1;
    let changed = sample_bundle_with("1.0.0", &files);
    assert_ne!(base.digest, v2.digest);
    assert_ne!(base.digest, changed.digest);
}

#[test]
fn round_trip_returns_the_same_files_and_manifest() {
    let built = sample_bundle();
    let opened = open(&built.bytes, &Limits::default()).expect("opens");
    assert_eq!(opened.digest, built.digest);
    assert_eq!(opened.manifest, built.manifest);
    assert_eq!(opened.manifest_digest, built.manifest_digest);
    assert_eq!(opened.spec_bytes(), SPEC);
    for (p, bytes) in sample_files() {
        assert_eq!(opened.files.get(p), Some(&bytes), "{p}");
    }
    assert_eq!(opened.files.len(), 4);
    assert_eq!(opened.manifest.bundle_file_name(), "ai-agent-1.0.0.pfb");
}

#[test]
fn headers_are_fixed_ustar_with_manifest_first_then_sorted_paths() {
    let built = sample_bundle();
    // RFC 1952 §2.3: ID1 ID2 CM FLG MTIME(4) XFL OS; no name, mtime 0, OS 255.
    assert_eq!(&built.bytes[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(&built.bytes[4..8], &[0, 0, 0, 0]);
    assert_eq!(built.bytes[9], 255);
    let tar_bytes = gunzip(&built.bytes);
    let mut ar = tar::Archive::new(tar_bytes.as_slice());
    let mut names = Vec::new();
    for e in ar.entries().expect("entries").raw(true) {
        let e = e.expect("entry");
        let h = e.header();
        assert!(h.as_ustar().is_some(), "ustar header");
        assert_eq!(h.mtime().expect("mtime"), 0);
        assert_eq!(h.uid().expect("uid"), 0);
        assert_eq!(h.gid().expect("gid"), 0);
        assert_eq!(h.mode().expect("mode"), 0o644);
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        assert_eq!(h.entry_type(), tar::EntryType::Regular);
        names.push(String::from_utf8(e.path_bytes().into_owned()).expect("utf8"));
    }
    assert_eq!(
        names,
        [
            "manifest.json",
            "README.md",
            "agent.yaml",
            "models/policy.onnx",
            "proofs/behavior.lean"
        ]
    );
}

/// Writes the sample tree under `root`, creating files in the given order with the given mode.
fn write_tree(root: &Path, order: &[usize], mode: u32, mtime_secs: u64) {
    let files = sample_files();
    fs::write(root.join("agent.yaml"), SPEC).expect("write spec");
    for &i in order {
        let (p, bytes) = &files[i];
        let full = root.join(p);
        fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        fs::write(&full, bytes).expect("write");
        let f = fs::File::options().write(true).open(&full).expect("open");
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime_secs))
            .expect("mtime");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&full, fs::Permissions::from_mode(mode)).expect("chmod");
        }
        #[cfg(not(unix))]
        let _ = mode;
    }
}

fn refs() -> Vec<&'static str> {
    sample_files().iter().map(|(p, _)| *p).collect()
}

#[test]
fn building_from_disk_ignores_mtimes_permissions_and_creation_order() {
    let a = tempfile::tempdir().expect("tmp");
    let b = tempfile::tempdir().expect("tmp");
    write_tree(a.path(), &[0, 1, 2], 0o644, 1_000_000);
    write_tree(b.path(), &[2, 0, 1], 0o755, 1_700_000_000);
    let ba = build_from_dir(
        a.path(),
        &a.path().join("agent.yaml"),
        &refs(),
        "ai-agent",
        "1.0.0",
        Limits::default(),
    )
    .expect("build a");
    let mut shuffled = refs();
    shuffled.rotate_left(1);
    let bb = build_from_dir(
        b.path(),
        &b.path().join("agent.yaml"),
        &shuffled,
        "ai-agent",
        "1.0.0",
        Limits::default(),
    )
    .expect("build b");
    assert_eq!(ba.bytes, bb.bytes);
    assert_eq!(
        ba.bytes,
        sample_bundle().bytes,
        "disk and in-memory builds agree"
    );
}

#[test]
fn spec_file_is_stored_as_agent_yaml_whatever_its_name() {
    let d = tempfile::tempdir().expect("tmp");
    write_tree(d.path(), &[0, 1, 2], 0o644, 0);
    fs::rename(d.path().join("agent.yaml"), d.path().join("my-spec.yml")).expect("rename");
    let built = build_from_dir(
        d.path(),
        &d.path().join("my-spec.yml"),
        &refs(),
        "ai-agent",
        "1.0.0",
        Limits::default(),
    )
    .expect("build");
    assert_eq!(built.bytes, sample_bundle().bytes);
}

#[test]
fn unsafe_reference_paths_are_rejected_before_touching_the_disk() {
    let d = tempfile::tempdir().expect("tmp");
    write_tree(d.path(), &[0, 1, 2], 0o644, 0);
    let spec = d.path().join("agent.yaml");
    for (p, want) in [
        ("../outside", PathError::ParentComponent),
        ("/etc/passwd", PathError::Absolute),
        ("proofs/../../x", PathError::ParentComponent),
        ("manifest.json", PathError::Reserved),
    ] {
        let r = build_from_dir(
            d.path(),
            &spec,
            &[p],
            "ai-agent",
            "1.0.0",
            Limits::default(),
        );
        assert!(
            matches!(&r, Err(BuildError::Path { path, source }) if path == p && *source == want),
            "{p}: {r:?}"
        );
    }
}

#[cfg(unix)]
#[test]
fn symlink_escaping_the_root_is_rejected_but_one_inside_is_followed() {
    let outside = tempfile::tempdir().expect("tmp");
    fs::write(outside.path().join("secret"), b"top secret").expect("write");
    let d = tempfile::tempdir().expect("tmp");
    write_tree(d.path(), &[0, 1, 2], 0o644, 0);
    std::os::unix::fs::symlink(outside.path().join("secret"), d.path().join("leak"))
        .expect("symlink");
    std::os::unix::fs::symlink(d.path().join("README.md"), d.path().join("readme-link"))
        .expect("symlink");
    let spec = d.path().join("agent.yaml");
    let r = build_from_dir(
        d.path(),
        &spec,
        &["leak"],
        "ai-agent",
        "1.0.0",
        Limits::default(),
    );
    assert!(
        matches!(&r, Err(BuildError::OutsideRoot { path, .. }) if path == "leak"),
        "{r:?}"
    );
    let ok = build_from_dir(
        d.path(),
        &spec,
        &["readme-link"],
        "ai-agent",
        "1.0.0",
        Limits::default(),
    )
    .expect("inside");
    let opened = open(&ok.bytes, &Limits::default()).expect("open");
    assert_eq!(
        opened.files.get("readme-link").map(Vec::as_slice),
        Some(&b"# sample agent\n"[..])
    );
}

#[test]
fn missing_and_non_regular_references_are_errors() {
    let d = tempfile::tempdir().expect("tmp");
    write_tree(d.path(), &[0, 1, 2], 0o644, 0);
    let spec = d.path().join("agent.yaml");
    let r = build_from_dir(
        d.path(),
        &spec,
        &["nope.txt"],
        "ai-agent",
        "1.0.0",
        Limits::default(),
    );
    assert!(matches!(r, Err(BuildError::Read { .. })), "{r:?}");
    let r = build_from_dir(
        d.path(),
        &spec,
        &["proofs"],
        "ai-agent",
        "1.0.0",
        Limits::default(),
    );
    assert!(matches!(r, Err(BuildError::NotAFile(_))), "{r:?}");
}

#[test]
fn builder_rejects_duplicates_missing_spec_bad_names_and_limits() {
    let mut b = BundleBuilder::new("a", "1").expect("builder");
    b.add_file("x", vec![1]).expect("first");
    assert!(matches!(b.add_file("x", vec![2]), Err(BuildError::Duplicate(p)) if p == "x"));
    assert!(
        matches!(b.build(), Err(BuildError::NoSpec)),
        "no spec added"
    );
    assert!(BundleBuilder::new("", "1").is_err());
    assert!(BundleBuilder::new("a\nb", "1").is_err());

    let mut small = BundleBuilder::new("a", "1")
        .expect("builder")
        .limits(Limits {
            max_file_size: 4,
            ..Limits::default()
        });
    small.spec(b"name: a".to_vec()).expect("spec");
    assert!(matches!(small.build(), Err(BuildError::Limit(_))));

    let mut zeros = BundleBuilder::new("a", "1").expect("builder");
    zeros.spec(vec![0; 32 << 20]).expect("spec");
    assert!(matches!(zeros.build(), Err(BuildError::Limit(m)) if m.contains("compression ratio")));
}

#[test]
fn long_paths_fit_ustar_prefix_or_fail_cleanly() {
    let deep = format!("{}/{}", "d".repeat(150), "f".repeat(90));
    let mut b = BundleBuilder::new("a", "1").expect("builder");
    b.spec(b"s".to_vec()).expect("spec");
    b.add_file(&deep, b"deep".to_vec()).expect("add");
    let built = b.build().expect("fits prefix+name");
    let opened = open(&built.bytes, &Limits::default()).expect("open");
    assert_eq!(
        opened.files.get(&deep).map(Vec::as_slice),
        Some(&b"deep"[..])
    );

    let unsplittable = "x".repeat(200);
    let mut b = BundleBuilder::new("a", "1").expect("builder");
    b.spec(b"s".to_vec()).expect("spec");
    b.add_file(&unsplittable, b"x".to_vec())
        .expect("valid path");
    assert!(matches!(
        b.build(),
        Err(BuildError::Path {
            source: PathError::TooLong { .. },
            ..
        })
    ));
}

#[test]
fn extract_writes_every_file_into_a_fresh_directory() {
    let opened = open(&sample_bundle().bytes, &Limits::default()).expect("open");
    let d = tempfile::tempdir().expect("tmp");
    let dest = d.path().join("out");
    opened.extract_to(&dest).expect("extract");
    for (p, bytes) in sample_files() {
        assert_eq!(fs::read(dest.join(p)).expect("read"), bytes);
    }
    assert_eq!(fs::read(dest.join("agent.yaml")).expect("read"), SPEC);
    assert!(
        opened.extract_to(&dest).is_err(),
        "refuses an existing destination"
    );
}

#[test]
fn built_bundle_writes_under_its_conventional_name() {
    let built = sample_bundle();
    assert_eq!(built.file_name(), "ai-agent-1.0.0.pfb");
    let d = tempfile::tempdir().expect("tmp");
    let path = d.path().join(built.file_name());
    built.write(&path).expect("write");
    assert_eq!(fs::read(&path).expect("read"), built.bytes);
    let opened = pf_bundle::open_file(&path, &Limits::default()).expect("open_file");
    assert_eq!(opened.digest, built.digest);
}

#[test]
fn reference_spellings_are_normalised_and_deduplicated() {
    let d = tempfile::tempdir().expect("tmp");
    write_tree(d.path(), &[0, 1, 2], 0o644, 0);
    let mut spelled: Vec<String> = refs().iter().map(|p| format!("./{p}")).collect();
    spelled.push("proofs//behavior.lean".to_string());
    spelled.push("README.md".to_string());
    let built = build_from_dir(
        d.path(),
        &d.path().join("agent.yaml"),
        &spelled,
        "ai-agent",
        "1.0.0",
        Limits::default(),
    )
    .expect("build");
    assert_eq!(built.bytes, sample_bundle().bytes);
}

//! Property tests: build/open round trip, determinism, and `open` never panicking on mutations
//! (the same entry point as the cargo-fuzz target in `fuzz/`).

mod common;

use std::collections::BTreeMap;

use common::*;
use pf_bundle::{BundleBuilder, Limits, open};
use proptest::prelude::*;

/// Valid bundle paths: 1-3 components of safe characters.
fn path() -> impl Strategy<Value = String> {
    proptest::collection::vec("[A-Za-z0-9_][A-Za-z0-9_.-]{0,11}", 1..4)
        .prop_map(|c| c.join("/"))
        .prop_filter("reserved or dot components", |p| {
            p != "manifest.json" && p != "agent.yaml" && p.split('/').all(|c| c != "." && c != "..")
        })
}

/// A set of files. Paths that are prefixes of each other as directories (`a` and `a/b`) are fine
/// in the archive; only `extract_to` would reject them.
fn files() -> impl Strategy<Value = BTreeMap<String, Vec<u8>>> {
    proptest::collection::btree_map(path(), proptest::collection::vec(any::<u8>(), 0..600), 0..8)
}

fn build(files: &BTreeMap<String, Vec<u8>>, order: &[usize]) -> Vec<u8> {
    let list: Vec<(&String, &Vec<u8>)> = files.iter().collect();
    let mut b = BundleBuilder::new("prop-agent", "0.1.0").expect("builder");
    b.spec(b"name: prop-agent\n".to_vec()).expect("spec");
    for &i in order {
        let (p, bytes) = list[i];
        b.add_file(p, bytes.clone()).expect("add");
    }
    b.build().expect("build").bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn build_then_open_returns_the_same_files(files in files()) {
        let order: Vec<usize> = (0..files.len()).collect();
        let bytes = build(&files, &order);
        let opened = open(&bytes, &Limits::default()).expect("own bundle opens");
        prop_assert_eq!(opened.files.len(), files.len() + 1);
        for (p, b) in &files {
            prop_assert_eq!(opened.files.get(p), Some(b));
        }
    }

    #[test]
    fn insertion_order_never_changes_the_archive(files in files(), seed in any::<u64>()) {
        let order: Vec<usize> = (0..files.len()).collect();
        let mut shuffled = order.clone();
        // Fisher-Yates with a tiny LCG, driven by the proptest seed.
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(build(&files, &order), build(&files, &shuffled));
    }

    /// Byte flips in the uncompressed tar stream (re-compressed, so gzip's CRC passes) exercise
    /// the tar and manifest checks; `open` must return an error or a bundle whose files match its
    /// manifest, never panic.
    #[test]
    fn mutated_tar_streams_are_rejected_or_consistent(
        files in files(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let order: Vec<usize> = (0..files.len()).collect();
        let mut tar = gunzip(&build(&files, &order));
        for (at, x) in flips {
            let i = at.index(tar.len());
            tar[i] ^= x | 1;
        }
        if let Ok(opened) = open(&gz(&tar), &Limits::default()) {
            for f in &opened.manifest.files {
                prop_assert_eq!(opened.files.get(&f.path).map(|b| pf_bundle::Sha256Digest::of(b)), Some(f.sha256));
            }
        }
    }

    /// Arbitrary bytes, and truncations of a valid bundle, never panic.
    #[test]
    fn arbitrary_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048), cut in any::<prop::sample::Index>()) {
        let _ = open(&data, &Limits::default());
        let good = sample_bundle().bytes;
        let _ = open(&good[..cut.index(good.len())], &Limits::default());
        let mut gz_prefixed = good[..10].to_vec();
        gz_prefixed.extend_from_slice(&data);
        let _ = open(&gz_prefixed, &Limits::default());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Envelope and statement parsing (the `envelope` fuzz target's entry points) never panic,
    /// and a byte flip anywhere in a signed envelope's JSON never yields a verifying bundle
    /// with different content: it either fails or verifies the same statement.
    #[test]
    fn mutated_envelopes_never_verify_something_else(at in any::<prop::sample::Index>(), x in 1u8..=255, junk in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = pf_bundle::Envelope::from_json(&junk);
        let _ = pf_bundle::Statement::<pf_bundle::BundlePredicate>::from_payload(&junk, pf_bundle::BUNDLE_PREDICATE_TYPE);
        let b = sample_bundle();
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let policy = pf_bundle::TrustPolicy::new(1, vec![("k".into(), key.verifying_key())]).expect("policy");
        let env = pf_bundle::sign_bundle(&b.bytes, &key, None, &Limits::default()).expect("sign");
        let mut json = env.to_json().into_bytes();
        let i = at.index(json.len());
        json[i] ^= x;
        if let Ok(m) = pf_bundle::Envelope::from_json(&json)
            && pf_bundle::verify_bundle(&b.bytes, &m, &policy, &Limits::default()).is_ok()
        {
            prop_assert_eq!(m.payload, env.payload);
            prop_assert_eq!(m.payload_type, env.payload_type);
        }
    }
}

//! End-to-end `pf verify` through the binary: a WASM plugin checks the obligation, the result is
//! cached, attested, and the attestation verifies (and is rejected for another bundle).

use std::path::Path;

mod common;
use common::pf;

fn bundle(dir: &Path, file: &str, text: &[u8]) {
    let mut b = pf_bundle::BundleBuilder::new("text-agent", "1.0.0").expect("builder");
    b.spec(
        b"name: text-agent\nversion: 1.0.0\ncapabilities:\n  - name: text_generation\nproofs:\n  - { name: prompt_is_text, type: reach, file: prompt.txt, covers: [text_generation] }\n"
            .to_vec(),
    )
    .expect("spec");
    b.add_file("prompt.txt", text.to_vec()).expect("add");
    std::fs::write(dir.join(file), b.build().expect("build").bytes).expect("write");
}

#[test]
fn verify_with_plugin_cache_attestation_and_exit_codes() {
    let d = tempfile::tempdir().expect("tmp");
    let dir = d.path();
    let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pf-verify/plugins/ascii_text.wat");
    let plugin_arg = format!("reach={}", plugin.display());
    bundle(dir, "good.pfb", b"You are a helpful agent.\n");
    bundle(dir, "bad.pfb", b"hidden \x07 bell\n");
    common::ci_key_and_trust(dir);

    let run = |bundle: &str, format: &str| {
        pf(
            &[
                "verify",
                bundle,
                "--plugin",
                &plugin_arg,
                "--cache",
                "cache",
                "--key",
                "keys/ci.key.pem",
                "--format",
                format,
                "--jobs",
                "2",
            ],
            dir,
        )
    };
    let o = run("good.pfb", "text");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("prompt_is_text") && out.contains("proved"),
        "{out}"
    );
    assert!(out.contains("verification PASSED"), "{out}");

    // Second run: served from the cache.
    let o = run("good.pfb", "json");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json report");
    assert_eq!(v["obligations"][0]["cached"], true);
    assert_eq!(v["passed"], true);

    let o = pf(
        &["verify", "attestation", "good.pfb", "--trust", "trust.json"],
        dir,
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // The good bundle's attestation does not vouch for another bundle.
    std::fs::copy(
        dir.join("good.pfb.verify.dsse.json"),
        dir.join("other.verify.json"),
    )
    .expect("copy");
    let o = pf(
        &[
            "verify",
            "attestation",
            "bad.pfb",
            "--trust",
            "trust.json",
            "--att",
            "other.verify.json",
        ],
        dir,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not this bundle"));

    // A refuted obligation fails the gates: exit 1, SARIF names the rule.
    let o = run("bad.pfb", "sarif");
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("sarif");
    assert_eq!(v["runs"][0]["results"][0]["ruleId"], "obligation/refuted");
    let o = pf(
        &["verify", "attestation", "bad.pfb", "--trust", "trust.json"],
        dir,
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "a signed failure is still rejected"
    );

    // Without the plugin, the native reach checker gets the text: error verdict naming the
    // file, exit 1, JUnit failure.
    let o = pf(
        &["verify", "good.pfb", "--no-cache", "--format", "junit"],
        dir,
    );
    assert_eq!(o.status.code(), Some(1));
    let junit = String::from_utf8_lossy(&o.stdout);
    assert!(
        junit.contains("<failure") && junit.contains("prompt.txt"),
        "{junit}"
    );

    // Unreadable bundle: exit 3.
    let o = pf(&["verify", "missing.pfb"], dir);
    assert_eq!(o.status.code(), Some(3));
}

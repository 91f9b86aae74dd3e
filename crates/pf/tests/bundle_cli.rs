//! End-to-end `pf key gen`, `pf bundle inspect|sign|verify` through the binary.

use std::process::Output;

mod common;
use common::pf;

fn text(o: &Output) -> String {
    // miette wraps long messages; compare with whitespace collapsed.
    let raw = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    raw.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn keygen_sign_two_of_three_verify_and_tamper() {
    let d = tempfile::tempdir().expect("tmp");
    let dir = d.path();
    let mut b = pf_bundle::BundleBuilder::new("ai-agent", "1.0.0").expect("builder");
    b.spec(b"name: ai-agent\nversion: 1.0.0\n".to_vec())
        .expect("spec");
    b.add_file(
        "proofs/behavior.lean",
        b"theorem t : True := trivial\n".to_vec(),
    )
    .expect("add");
    let built = b.build().expect("build");
    std::fs::write(dir.join("ai-agent-1.0.0.pfb"), &built.bytes).expect("write");

    for name in ["alice", "bob", "carol"] {
        let o = pf(&["key", "gen", "--out-dir", "keys", "--name", name], dir);
        assert!(o.status.success(), "{}", text(&o));
    }
    let pem =
        |n: &str| std::fs::read_to_string(dir.join(format!("keys/{n}.pub.pem"))).expect("pem");
    let policy = serde_json::json!({
        "threshold": 2,
        "keys": [
            {"name": "alice", "pem": pem("alice")},
            {"name": "bob", "file": "keys/bob.pub.pem"},
            {"name": "carol", "pem": pem("carol")}
        ]
    });
    std::fs::write(dir.join("trust.json"), policy.to_string()).expect("policy");

    let o = pf(&["bundle", "inspect", "ai-agent-1.0.0.pfb"], dir);
    assert!(
        o.status.success()
            && text(&o).contains(&built.digest.to_hex())
            && text(&o).contains("proofs/behavior.lean"),
        "{}",
        text(&o)
    );

    let o = pf(&["bundle", "inspect", "--json", "ai-agent-1.0.0.pfb"], dir);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("inspect --json is JSON");
    assert_eq!(v["digest"]["sha256"], built.digest.to_hex());
    assert_eq!(
        v["manifestDigest"]["sha256"],
        built.manifest_digest.to_hex()
    );
    assert_eq!(v["manifest"]["files"][1]["path"], "proofs/behavior.lean");

    let o = pf(
        &[
            "bundle",
            "sign",
            "ai-agent-1.0.0.pfb",
            "--key",
            "keys/alice.key.pem",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = pf(
        &[
            "bundle",
            "verify",
            "ai-agent-1.0.0.pfb",
            "--trust",
            "trust.json",
        ],
        dir,
    );
    assert_eq!(o.status.code(), Some(1), "1 of 2 is rejected: {}", text(&o));
    assert!(text(&o).contains("policy requires 2"), "{}", text(&o));

    let o = pf(
        &[
            "bundle",
            "sign",
            "ai-agent-1.0.0.pfb",
            "--key",
            "keys/carol.key.pem",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = pf(
        &[
            "bundle",
            "verify",
            "ai-agent-1.0.0.pfb",
            "--trust",
            "trust.json",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("alice, carol"), "{}", text(&o));

    let mut tampered = built.bytes.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 1;
    std::fs::write(dir.join("ai-agent-1.0.0.pfb"), &tampered).expect("write");
    let o = pf(
        &[
            "bundle",
            "verify",
            "ai-agent-1.0.0.pfb",
            "--trust",
            "trust.json",
        ],
        dir,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("does not match the signed subject digest"),
        "{}",
        text(&o)
    );

    let o = pf(
        &[
            "bundle",
            "sign",
            "ai-agent-1.0.0.pfb",
            "--key",
            "keys/bob.pub.pem",
        ],
        dir,
    );
    assert_eq!(
        o.status.code(),
        Some(3),
        "public key as signing key: {}",
        text(&o)
    );
    assert!(text(&o).contains("PUBLIC KEY"), "{}", text(&o));
}

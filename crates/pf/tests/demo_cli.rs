//! The README's main command and the bundle round trip a user does by hand.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn pf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pf"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("pf runs")
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn demo_runs_every_step_for_every_example() {
    let out = tempfile::tempdir().expect("temp dir");
    let run = pf(&["demo", "--examples", s(&examples()), "--out", s(out.path())]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("all steps passed"));
    for name in [
        "support-agent-1.2.0.pfb",
        "coding-agent-0.3.1.pfb",
        "braking-agent-0.1.0.pfb",
    ] {
        assert!(out.path().join(name).is_file(), "{name} missing");
        assert!(out.path().join(format!("{name}.dsse.json")).is_file());
        assert!(
            out.path()
                .join(format!("{name}.verify.dsse.json"))
                .is_file()
        );
    }
    // Every example's obligations are discharged by the native checkers.
    for line in [
        "command_gate_blocks_sudo (nnv, pf-nnv): proved",
        "refund_gate_is_robust (nnv, pf-nnv): proved",
        "emergency_braking_keeps_distance (reach, pf-reach): proved",
    ] {
        assert!(stdout.contains(line), "{line} missing: {stdout}");
    }
    assert!(
        stdout.contains("1 of 2 signatures"),
        "threshold check shown: {stdout}"
    );
}

#[test]
fn built_bundle_is_reproducible_and_verifies_against_the_spec_signers() {
    let out = tempfile::tempdir().expect("temp dir");
    let dir = examples().join("support-agent");
    let a = out.path().join("a.pfb");
    let b = out.path().join("b.pfb");
    assert!(
        pf(&["bundle", "build", s(&dir), "-o", s(&a)])
            .status
            .success()
    );
    assert!(
        pf(&["bundle", "build", s(&dir), "-o", s(&b)])
            .status
            .success()
    );
    assert_eq!(std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));

    let inspect = pf(&["bundle", "inspect", s(&a)]);
    let listing = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        listing.contains("models/refund_gate.nnet") && listing.contains("keys/security.pub.pem"),
        "{listing}"
    );

    let spec = dir.join("agent.yaml");
    for key in ["release", "security"] {
        let k = dir.join(format!("keys/{key}.key.pem"));
        assert!(
            pf(&["bundle", "sign", s(&a), "--key", s(&k)])
                .status
                .success()
        );
    }
    let ok = pf(&["bundle", "verify", s(&a), "--trust", s(&spec)]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // The envelope for `a` does not vouch for a different bundle.
    let coding = out.path().join("c.pfb");
    assert!(
        pf(&[
            "bundle",
            "build",
            s(&examples().join("coding-agent")),
            "-o",
            s(&coding)
        ])
        .status
        .success()
    );
    let sig = format!("{}.dsse.json", s(&a));
    let wrong = pf(&[
        "bundle",
        "verify",
        s(&coding),
        "--trust",
        s(&spec),
        "--sig",
        &sig,
    ]);
    assert_eq!(wrong.status.code(), Some(1));
}

#[test]
fn build_refuses_an_invalid_spec() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("agent.yaml"), "name: x\nversion: 1\n").expect("write");
    let run = pf(&["bundle", "build", s(dir.path())]);
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("invalid version"));
}

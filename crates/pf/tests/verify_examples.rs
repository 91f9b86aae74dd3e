//! `pf verify` discharges the example agents' obligations with the real checkers (neural-network
//! verification for two, reachability for the braking agent), and the braking proof is not
//! vacuous: braking triggered too late is refuted with a simulated crash.

use std::path::Path;
use std::process::Command;

#[test]
fn example_bundles_verify_with_their_obligations() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (agent, checker) in [
        ("support-agent", "pf-nnv"),
        ("coding-agent", "pf-nnv"),
        ("braking-agent", "pf-reach"),
    ] {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(agent);
        let bundle = dir.path().join(format!("{agent}.pfb"));
        let pf = env!("CARGO_BIN_EXE_pf");
        let build = Command::new(pf)
            .args(["bundle", "build"])
            .arg(&src)
            .arg("-o")
            .arg(&bundle)
            .output()
            .expect("build runs");
        assert!(
            build.status.success(),
            "{}",
            String::from_utf8_lossy(&build.stderr)
        );
        let cache = dir.path().join(format!("cache-{agent}"));
        let out = Command::new(pf)
            .args(["verify", "--format", "json", "--cache"])
            .arg(&cache)
            .arg(&bundle)
            .output()
            .expect("verify runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{agent}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("\"proved\""), "{agent}: {stdout}");
        assert!(stdout.contains(checker), "{agent}: {stdout}");
    }
}

#[test]
fn braking_too_late_is_refuted_with_a_simulated_crash() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/braking-agent");
    let problem = std::fs::read_to_string(src.join("proofs/emergency_braking.json"))
        .expect("example problem");
    assert!(problem.contains("And(gap <= 40, gap > 39)"));
    let late = problem.replace("And(gap <= 40, gap > 39)", "And(gap <= 20, gap > 19)");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("late.json");
    std::fs::write(&file, late).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_pf"))
        .args(["reach", "check"])
        .arg(&file)
        .output()
        .expect("reach runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("unsafe"), "{stdout}");
}

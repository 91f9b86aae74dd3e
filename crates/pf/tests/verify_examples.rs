//! `pf verify` discharges the example agents' neural-network obligations with the real checker.

use std::path::Path;
use std::process::Command;

#[test]
fn example_bundles_verify_with_their_nnv_obligations() {
    let dir = tempfile::tempdir().expect("temp dir");
    for agent in ["support-agent", "coding-agent"] {
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
        assert!(stdout.contains("pf-nnv"), "{agent}: {stdout}");
    }
}

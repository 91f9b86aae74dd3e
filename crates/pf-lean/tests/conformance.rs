//! Conformance over `../shared/vectors/lean/` (MANIFEST.tsv): never a wrong verdict, and at
//! least [`MIN_DECIDED`] files decided correctly (raise it as the kernel improves).

use pf_lean::{Options, Verdict, check_export};

/// Files decided correctly (accept or reject matching the label) at the last count.
const MIN_DECIDED: usize = 311;

/// Files too slow for the dev-profile test budget (exercised by `cargo bench --bench corpus`).
const BENCH_ONLY: &[&str] = &[];

/// Labels this checker disputes, with the reason (see docs/lean.md). They are still run and
/// printed, but do not count as wrong.
const DISPUTED: &[(&str, &str)] = &[(
    "reject/rpylean__tests_examples_invalid_WrongTypes.orig.export",
    "the unmutated original of WrongTypes: `def A : Nat := Nat.zero`, `def B : Bool := Bool.true` are well-typed",
)];

#[test]
fn corpus_verdicts_are_never_wrong() {
    let Some(dir) = pf_testkit::shared_path("vectors/lean") else {
        return;
    };
    let manifest =
        std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("MANIFEST.tsv is readable");
    let (mut decided, mut declined, mut wrong) = (0usize, Vec::new(), Vec::new());
    for row in manifest.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        let (file, expected) = (cols[0], cols[1]);
        if BENCH_ONLY.contains(&file) {
            continue;
        }
        let text = std::fs::read_to_string(dir.join(file)).expect("export is readable");
        let out = check_export(&text, &Options::default());
        let got = match &out.verdict {
            Verdict::Accept => "accept",
            Verdict::Reject { .. } => "reject",
            Verdict::Decline { .. } => "decline",
        };
        // The parallel checker must give the same verdict as the sequential one.
        let par = check_export(
            &text,
            &Options {
                threads: 2,
                ..Options::default()
            },
        );
        assert_eq!(
            std::mem::discriminant(&par.verdict),
            std::mem::discriminant(&out.verdict),
            "{file}: parallel {:?} vs sequential {:?}",
            par.verdict,
            out.verdict
        );
        if let Some((_, why)) = DISPUTED.iter().find(|(f, _)| *f == file) {
            println!("disputed label {file}: expected {expected}, got {got} ({why})");
            continue;
        }
        if got == "decline" {
            declined.push(format!("{file}: {:?}", out.verdict));
        } else if got == expected {
            decided += 1;
        } else {
            wrong.push(format!(
                "{file}: expected {expected}, got {:?}",
                out.verdict
            ));
        }
    }
    println!("decided correctly: {decided}, declined: {}", declined.len());
    for d in &declined {
        println!("  declined {d}");
    }
    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
    assert!(
        decided >= MIN_DECIDED,
        "only {decided} files decided correctly (minimum {MIN_DECIDED})"
    );
}

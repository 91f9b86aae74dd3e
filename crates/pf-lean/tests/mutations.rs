//! Targeted mutations of real exports from the corpus must never be accepted: swapping the
//! right-hand sides of two recursor rules, or pointing a definition's value at another term.

use pf_lean::check::check_export_here;
use pf_lean::{Options, Verdict};
use serde_json::Value;

/// Good tutorial exports with recursors whose rules differ.
const FILES: &[&str] = &[
    "accept/nyaya__test_good_tutorial_060_boolRec.ndjson",
    "accept/nyaya__test_good_tutorial_075_nRecReduction.ndjson",
    "accept/nyaya__test_good_tutorial_076_listRecReduction.ndjson",
    "accept/nyaya__test_good_tutorial_061_twoBoolRec.ndjson",
];

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("corpus line is JSON"))
        .collect()
}

fn render(v: &[Value]) -> String {
    v.iter().map(|x| x.to_string() + "\n").collect()
}

#[test]
fn swapped_recursor_rules_are_never_accepted() {
    let Some(dir) = pf_testkit::shared_path("vectors/lean") else {
        return;
    };
    let mut mutated = 0;
    for f in FILES {
        let text = std::fs::read_to_string(dir.join(f)).expect("corpus file is readable");
        assert_eq!(
            check_export_here(&text, &Options::default()).verdict,
            Verdict::Accept,
            "{f} must be accepted unmutated"
        );
        let base = lines(&text);
        for (li, v) in base.iter().enumerate() {
            let Some(recs) = v
                .get("inductive")
                .and_then(|i| i.get("recs"))
                .and_then(Value::as_array)
            else {
                continue;
            };
            for (ri, r) in recs.iter().enumerate() {
                let rules = r["rules"].as_array().cloned().unwrap_or_default();
                for a in 0..rules.len() {
                    for b in a + 1..rules.len() {
                        if rules[a]["rhs"] == rules[b]["rhs"] {
                            continue;
                        }
                        let mut m = base.clone();
                        let rs = &mut m[li]["inductive"]["recs"][ri]["rules"];
                        let tmp = rs[a]["rhs"].clone();
                        rs[a]["rhs"] = rs[b]["rhs"].clone();
                        rs[b]["rhs"] = tmp;
                        let v = check_export_here(&render(&m), &Options::default()).verdict;
                        assert!(
                            v != Verdict::Accept,
                            "{f}: swapping rules {a} and {b} was accepted"
                        );
                        mutated += 1;
                    }
                }
            }
        }
    }
    assert!(mutated >= 4, "only {mutated} mutations exercised");
}

#[test]
fn theorems_whose_proof_is_their_own_statement_are_rejected() {
    // `theorem t : P := P` never checks: `P : Prop`, and `P` cannot be `Prop` itself.
    let Some(dir) = pf_testkit::shared_path("vectors/lean") else {
        return;
    };
    let mut tried = 0;
    for f in FILES
        .iter()
        .chain(["accept/nyaya__test_good_tutorial_077_RBTree.id_spec.ndjson"].iter())
    {
        let text = std::fs::read_to_string(dir.join(f)).expect("corpus file is readable");
        let base = lines(&text);
        for (li, v) in base.iter().enumerate() {
            let Some(d) = v.get("thm") else { continue };
            let mut m = base.clone();
            m[li]["thm"]["value"] = d["type"].clone();
            let out = check_export_here(&render(&m), &Options::default()).verdict;
            assert!(
                matches!(out, Verdict::Reject { .. }),
                "{f}: line {}: {out:?}",
                li + 1
            );
            tried += 1;
        }
    }
    assert!(tried > 0, "no theorem found to mutate");
}

//! Field-level provenance on every AgentDojo tool output in the committed traces: the fast
//! block-YAML reader gives exactly marked-yaml's leaves wherever it reads an output, and it reads
//! every YAML output the tools print (so the replay's output checks take the fast path).

#[path = "agentdojo/replay.rs"]
mod replay;

use std::collections::BTreeSet;

use pf_policy::fields::{YamlReader, structured_leaves_with};
use serde_json::Value;

fn outputs(suite: &str) -> BTreeSet<String> {
    let trace = replay::load_trace(&replay::fixtures_dir(), suite).expect("committed trace");
    let mut out = BTreeSet::new();
    let calls = trace
        .user_tasks
        .iter()
        .flat_map(|t| &t.calls)
        .chain(trace.injection_tasks.iter().flat_map(|t| &t.calls))
        .chain(
            trace
                .pairs
                .iter()
                .flat_map(|p| p.user_calls.iter().chain(&p.injection_calls)),
        );
    for c in calls {
        out.insert(c.output.clone());
    }
    out
}

#[test]
fn fast_reader_reads_every_yaml_output_as_marked_yaml_does() {
    let listings: [&dyn Fn(&str) -> bool; 3] = [&|_| true, &|_| false, &|k| {
        matches!(
            k,
            "sender" | "shared_with" | "participants" | "id_" | "owner"
        )
    }];
    let mut yaml = 0;
    for suite in replay::SUITES {
        for text in outputs(suite) {
            let v = Value::String(text.clone());
            for listed in listings {
                let reference = structured_leaves_with(&v, listed, YamlReader::MarkedYaml);
                let fast = structured_leaves_with(&v, listed, YamlReader::FastOnly);
                let json = text.trim_start().starts_with(['{', '[']);
                if !json && reference.is_some() {
                    assert!(
                        fast.is_some(),
                        "{suite}: YAML output not read fast: {text:?}"
                    );
                }
                if let Some(f) = &fast {
                    assert_eq!(Some(f), reference.as_ref(), "{suite}: {text:?}");
                }
                assert_eq!(
                    structured_leaves_with(&v, listed, YamlReader::Fast),
                    reference,
                    "{suite}: {text:?}"
                );
            }
            if !text.trim_start().starts_with(['{', '['])
                && structured_leaves_with(&v, &|_| true, YamlReader::FastOnly).is_some()
            {
                yaml += 1;
            }
        }
    }
    // 442 distinct workspace outputs alone; most tools of every suite print YAML.
    assert!(yaml > 300, "only {yaml} YAML outputs read fast");
}

//! Fuzz field-level provenance: any tool output text is parsed (JSON or YAML) or left whole
//! without panicking, and the fast block-YAML reader gives exactly marked-yaml's leaves (a leaf
//! under the wrong field would carry the wrong label).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pf_policy::fields::{YamlReader, structured_leaves_with};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let out = serde_json::Value::String(text.to_string());
    let listed = |k: &str| k == "sender";
    let fast = structured_leaves_with(&out, &listed, YamlReader::Fast);
    let reference = structured_leaves_with(&out, &listed, YamlReader::MarkedYaml);
    assert_eq!(fast, reference, "fast reader differs from marked-yaml on {text:?}");
});

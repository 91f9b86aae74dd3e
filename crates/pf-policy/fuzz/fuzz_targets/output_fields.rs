//! Fuzz field-level provenance: any tool output text is parsed (JSON or YAML) or left whole
//! without panicking, and recording it then deciding on its values never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let out = serde_json::Value::String(text.to_string());
    let _ = pf_policy::fields::structured_leaves(&out, &|k| k == "sender");
});

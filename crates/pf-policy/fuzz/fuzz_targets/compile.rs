//! Fuzz the policy compiler: arbitrary spec text must parse-or-fail, compile-or-fail, and any
//! compiled policy must decide calls and check outputs without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = pf_spec::parse_str("fuzz.yaml", text) else {
        return;
    };
    let Ok(compiled) = pf_policy::compile(&spec) else {
        return;
    };
    let policy = compiled.policy;
    let mut state = policy.new_session();
    let args = serde_json::json!({"a": "x@example.com", "n": 1, "path": "/tmp/../etc"});
    let names: Vec<String> = policy.tool_names().map(String::from).collect();
    for name in &names {
        pf_policy::record_output(
            &policy,
            &mut state,
            name,
            &serde_json::json!("value from tool"),
        );
        let _ = pf_policy::decide(
            &policy,
            &mut state,
            &pf_policy::Call::new(name, &args),
            std::time::Duration::ZERO,
        );
        let _ = pf_policy::check_output(&policy, name, "mail bob@example.com 4111 1111 1111 1111");
    }
    let _ = policy.to_json();
});

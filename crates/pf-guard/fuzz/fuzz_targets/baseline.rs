//! The anomaly baseline's two readers on arbitrary bytes: `Baseline::learn_from_log` (a decision
//! log, which an operator may have copied from anywhere) and `Baseline::parse` (a baseline
//! file). Either gives an error or a value, never a panic; a learned baseline passes the checks
//! a loaded one must pass.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pf_guard::anomaly::Params;
use pf_guard::baseline::Baseline;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz");
    if let Ok((learned, summary)) = Baseline::learn_from_log(data, path, Params::default()) {
        assert!(summary.calls <= summary.lines);
        assert_eq!(summary.agents, learned.agents.len());
        let text = serde_json::to_string(&learned).expect("a baseline serialises");
        Baseline::parse(&text, path).expect("a learned baseline loads");
    }
    let _ = Baseline::parse(&String::from_utf8_lossy(data), path);
});

#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = pf_ledger::note::Note::parse(data) {
        // Whatever parses must re-serialise to something that parses to the same note.
        let again = pf_ledger::note::Note::parse(n.to_text().as_bytes());
        assert_eq!(again.ok(), Some(n));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = pf_ledger::note::VerifierKey::parse(s);
        let _ = pf_ledger::note::SignerKey::parse(s);
    }
});

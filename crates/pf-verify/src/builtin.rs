//! Built-in checkers that need no external tool.

use serde_json::json;

use crate::checker::{CheckContext, Checker};
use crate::obligation::Obligation;
use crate::verdict::{CheckReport, Verdict};

/// Obligation type handled by [`DigestChecker`].
pub const DIGEST_KIND: &str = "sha256";

/// Checks that the `file` input's SHA-256 equals the hex digest written in the `property` input
/// (surrounding whitespace ignored): a pinned-artefact obligation ("this model file is exactly
/// the one that was reviewed").
#[derive(Debug, Default, Clone, Copy)]
pub struct DigestChecker;

impl Checker for DigestChecker {
    fn name(&self) -> &str {
        "pf-digest"
    }

    fn version(&self) -> &str {
        "1.0.0"
    }

    fn check(&self, obligation: &Obligation, _ctx: &CheckContext) -> CheckReport {
        let Some(file) = obligation.input("file") else {
            return CheckReport::new(Verdict::error("obligation has no `file` input"));
        };
        let Some(property) = obligation.input("property") else {
            return CheckReport::new(Verdict::error(
                "sha256 obligation needs a `property` file holding the expected hex digest",
            ));
        };
        let Ok(text) = std::str::from_utf8(&property.bytes) else {
            return CheckReport::new(Verdict::error("property file is not UTF-8"));
        };
        let expected = text.trim().to_ascii_lowercase();
        if expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
            return CheckReport::new(Verdict::error(format!(
                "property file {:?} does not hold a 64-hex-digit sha256",
                property.path
            )));
        }
        let actual = file.digest.to_hex();
        let verdict = if actual == expected {
            Verdict::Proved
        } else {
            Verdict::Refuted {
                evidence: json!({ "expected": expected, "actual": actual, "file": file.path }),
            }
        };
        let mut report = CheckReport::new(verdict);
        report
            .statistics
            .insert("bytes".into(), file.bytes.len() as u64);
        report
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::checker::{CancelToken, CheckLimits};
    use crate::obligation::Input;

    fn run(file: &[u8], property: &[u8]) -> Verdict {
        let ob = Obligation {
            name: "pin".into(),
            kind: DIGEST_KIND.into(),
            inputs: vec![
                Input::new("file", "m.bin", file),
                Input::new("property", "m.sha256", property),
            ],
            params: BTreeMap::new(),
            timeout: Duration::from_secs(1),
            covers: vec![],
        };
        let ctx = CheckContext {
            deadline: Instant::now() + Duration::from_secs(1),
            cancel: CancelToken::new(),
            limits: CheckLimits::default(),
        };
        DigestChecker.check(&ob, &ctx).verdict
    }

    #[test]
    fn matching_digest_is_proved() {
        let d = pf_bundle::Sha256Digest::of(b"model").to_hex();
        assert_eq!(run(b"model", format!("{d}\n").as_bytes()), Verdict::Proved);
    }

    #[test]
    fn other_digest_is_refuted_with_both_values() {
        let d = pf_bundle::Sha256Digest::of(b"model").to_hex();
        match run(b"modeL", d.as_bytes()) {
            Verdict::Refuted { evidence } => assert_eq!(evidence["expected"], d),
            v => panic!("expected refuted, got {v:?}"),
        }
    }

    #[test]
    fn malformed_property_is_an_error() {
        assert_eq!(run(b"x", b"nothex").status(), "error");
    }
}

//! A finished run and its renderings: summary table, JSON, JUnit XML and SARIF 2.1.0.

use pf_bundle::Sha256Digest;
use serde_json::json;

use crate::engine::ObligationResult;
use crate::gates::{GateResult, describe};
use crate::verdict::Verdict;

/// Everything one `pf verify` run found.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Bundle digest (sha256 of the archive).
    pub bundle_digest: Sha256Digest,
    /// Agent name from the spec.
    pub spec_name: String,
    /// Spec version.
    pub spec_version: String,
    /// One result per obligation, in spec order.
    pub results: Vec<ObligationResult>,
    /// Gate outcomes.
    pub gates: Vec<GateResult>,
    /// True when every gate passed.
    pub passed: bool,
}

impl RunReport {
    /// Every failed gate check as `gate: failure`, in gate order (empty when all passed).
    pub fn gate_failures(&self) -> Vec<String> {
        self.gates
            .iter()
            .flat_map(|g| g.failures.iter().map(move |f| format!("{}: {f}", g.gate)))
            .collect()
    }

    /// Summary table (one row per obligation) followed by the gates, for a terminal.
    pub fn to_text(&self) -> String {
        let mut rows: Vec<[String; 6]> = vec![[
            "OBLIGATION".into(),
            "TYPE".into(),
            "CHECKER".into(),
            "VERDICT".into(),
            "TIME".into(),
            "CACHE".into(),
        ]];
        for r in &self.results {
            rows.push([
                r.name.clone(),
                r.kind.clone(),
                match (&r.checker, &r.checker_version) {
                    (Some(c), Some(v)) => format!("{c} {v}"),
                    _ => "-".into(),
                },
                r.verdict.status().into(),
                format!("{} ms", r.duration_ms),
                if r.cached { "hit".into() } else { "-".into() },
            ]);
        }
        let mut widths = [0usize; 6];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = format!(
            "bundle {} ({} {})\n",
            self.bundle_digest.to_hex(),
            self.spec_name,
            self.spec_version
        );
        for row in &rows {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        for r in &self.results {
            if !r.verdict.is_proved() {
                out.push_str(&format!("  {}: {}\n", r.name, describe(&r.verdict)));
            }
        }
        out.push('\n');
        for g in &self.gates {
            out.push_str(&format!(
                "gate {:<16} {}\n",
                g.gate,
                if g.passed { "passed" } else { "FAILED" }
            ));
            for f in &g.failures {
                out.push_str(&format!("  - {f}\n"));
            }
        }
        out.push_str(if self.passed {
            "verification PASSED\n"
        } else {
            "verification FAILED\n"
        });
        out
    }

    /// Machine-readable JSON.
    pub fn to_json(&self) -> String {
        let v = json!({
            "bundle_digest": self.bundle_digest.to_hex(),
            "spec": { "name": self.spec_name, "version": self.spec_version },
            "obligations": self.results,
            "gates": self.gates,
            "passed": self.passed,
        });
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }

    /// JUnit XML: one test case per obligation and one per gate.
    pub fn to_junit(&self) -> String {
        let failures = self
            .results
            .iter()
            .filter(|r| !r.verdict.is_proved())
            .count()
            + self.gates.iter().filter(|g| !g.passed).count();
        let tests = self.results.len() + self.gates.len();
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str(&format!(
            "<testsuites name=\"pf-verify\" tests=\"{tests}\" failures=\"{failures}\">\n"
        ));
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\">\n",
            xml(&format!("{} {}", self.spec_name, self.spec_version))
        ));
        for r in &self.results {
            out.push_str(&format!(
                "    <testcase classname=\"obligation.{}\" name=\"{}\" time=\"{:.3}\"",
                xml(&r.kind),
                xml(&r.name),
                r.duration_ms as f64 / 1000.0
            ));
            match &r.verdict {
                Verdict::Proved => out.push_str("/>\n"),
                v => out.push_str(&format!(
                    ">\n      <failure type=\"{}\" message=\"{}\"/>\n    </testcase>\n",
                    v.status(),
                    xml(&describe(v))
                )),
            }
        }
        for g in &self.gates {
            out.push_str(&format!(
                "    <testcase classname=\"gate\" name=\"{}\"",
                xml(&g.gate)
            ));
            if g.passed {
                out.push_str("/>\n");
            } else {
                out.push_str(&format!(
                    ">\n      <failure type=\"gate\" message=\"{}\"/>\n    </testcase>\n",
                    xml(&g.failures.join("; "))
                ));
            }
        }
        out.push_str("  </testsuite>\n</testsuites>\n");
        out
    }

    /// SARIF 2.1.0: one result per obligation that is not proved and per failed gate.
    pub fn to_sarif(&self) -> String {
        let mut results = Vec::new();
        for r in &self.results {
            if r.verdict.is_proved() {
                continue;
            }
            let level = match r.verdict {
                Verdict::Refuted { .. } | Verdict::Error { .. } => "error",
                _ => "warning",
            };
            results.push(json!({
                "ruleId": format!("obligation/{}", r.verdict.status()),
                "level": level,
                "message": { "text": format!("{}: {}", r.name, describe(&r.verdict)) },
                "locations": [{ "logicalLocations": [{ "name": r.name, "kind": "member" }] }],
            }));
        }
        for g in self.gates.iter().filter(|g| !g.passed) {
            for f in &g.failures {
                results.push(json!({
                    "ruleId": format!("gate/{}", g.gate),
                    "level": "error",
                    "message": { "text": f },
                }));
            }
        }
        let v = json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": { "driver": {
                    "name": "pf-verify",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": [
                        { "id": "obligation/refuted", "shortDescription": { "text": "Obligation refuted" } },
                        { "id": "obligation/unknown", "shortDescription": { "text": "Obligation undecided" } },
                        { "id": "obligation/error", "shortDescription": { "text": "Obligation could not be checked" } },
                    ],
                }},
                "results": results,
            }],
        });
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }
}

/// Escapes text for an XML attribute.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => {
                out.push_str(&format!("&#{};", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::xml;

    #[test]
    fn xml_escapes_markup() {
        assert_eq!(
            xml(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
        );
    }
}

//! Obligations: the spec's `proofs[]` entries turned into typed, self-contained work items that
//! carry their input bytes from the bundle.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use pf_bundle::{OpenedBundle, SPEC_PATH, Sha256Digest};
use pf_spec::AgentSpec;
use sha2::{Digest, Sha256};

/// Default time budget for an obligation whose spec entry names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Default largest input file an obligation may name (per file), in bytes.
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;

/// One input file of an obligation.
#[derive(Debug, Clone)]
pub struct Input {
    /// What the file is for: `file`, `export` or `property` (the spec field it came from).
    pub role: String,
    /// Path inside the bundle (relative to the spec).
    pub path: String,
    /// The bytes.
    pub bytes: Arc<[u8]>,
    /// SHA-256 of `bytes`.
    pub digest: Sha256Digest,
}

impl Input {
    /// An input from bytes (digest computed here).
    pub fn new(role: &str, path: &str, bytes: impl Into<Arc<[u8]>>) -> Self {
        let bytes = bytes.into();
        Self {
            role: role.to_string(),
            path: path.to_string(),
            digest: Sha256Digest::of(&bytes),
            bytes,
        }
    }
}

/// A proof obligation ready to be checked.
#[derive(Debug, Clone)]
pub struct Obligation {
    /// Name, unique within the spec.
    pub name: String,
    /// Checker type (`lean`, `nnv`, `reach`, or a plugin/built-in type); selects the checker.
    pub kind: String,
    /// Input files, in the order `file`, `export`, `property`.
    pub inputs: Vec<Input>,
    /// Scalar parameters (`theorem`, `binding`).
    pub params: BTreeMap<String, String>,
    /// Time budget.
    pub timeout: Duration,
    /// Capabilities this obligation covers.
    pub covers: Vec<String>,
}

impl Obligation {
    /// The input with this role, if any.
    pub fn input(&self, role: &str) -> Option<&Input> {
        self.inputs.iter().find(|i| i.role == role)
    }

    /// Digest of everything that determines the verdict: type, parameters and each input's role
    /// and content digest. The obligation's name, paths and time budget are not part of it, so
    /// renaming or moving files keeps cache hits.
    pub fn inputs_digest(&self) -> Sha256Digest {
        let mut h = Sha256::new();
        // Length-prefixed fields: no two different field lists encode to the same bytes.
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(b"pf-verify/obligation/v1");
        field(self.kind.as_bytes());
        field(&(self.params.len() as u64).to_le_bytes());
        for (k, v) in &self.params {
            field(k.as_bytes());
            field(v.as_bytes());
        }
        field(&(self.inputs.len() as u64).to_le_bytes());
        for i in &self.inputs {
            field(i.role.as_bytes());
            field(&i.digest.0);
        }
        Sha256Digest(h.finalize().into())
    }
}

/// A spec entry that could not become an obligation, with the reason.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// Obligation name.
    pub name: String,
    /// Checker type.
    pub kind: String,
    /// Capabilities it claims to cover (kept for the report; it covers nothing until it checks).
    pub covers: Vec<String>,
    /// Time budget.
    pub timeout: Duration,
    /// Why it cannot be checked.
    pub reason: String,
}

/// One spec entry: an obligation or the reason it is not one.
#[derive(Debug, Clone)]
pub enum Planned {
    /// Ready to check.
    Ready(Obligation),
    /// Rejected before checking (missing or oversize file, bad time budget).
    Rejected(Rejected),
}

impl Planned {
    /// Obligation name.
    pub fn name(&self) -> &str {
        match self {
            Self::Ready(o) => &o.name,
            Self::Rejected(r) => &r.name,
        }
    }
}

/// Limits applied when reading obligations from a bundle.
#[derive(Debug, Clone, Copy)]
pub struct PlanLimits {
    /// Largest input file, in bytes.
    pub max_input_bytes: u64,
    /// Time budget for entries without `timeout`.
    pub default_timeout: Duration,
    /// Largest time budget accepted.
    pub max_timeout: Duration,
}

impl Default for PlanLimits {
    fn default() -> Self {
        Self {
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
            default_timeout: DEFAULT_TIMEOUT,
            max_timeout: Duration::from_secs(24 * 3600),
        }
    }
}

/// The work of one bundle: its spec and its obligations.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Bundle digest (sha256 of the archive).
    pub bundle_digest: Sha256Digest,
    /// The packed spec.
    pub spec: AgentSpec,
    /// One entry per `proofs[]` item, in spec order.
    pub obligations: Vec<Planned>,
}

/// Why a bundle cannot be planned at all.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The packed spec is not UTF-8.
    #[error("{SPEC_PATH} in the bundle is not UTF-8")]
    SpecEncoding,
    /// The packed spec does not parse or lint.
    #[error("{SPEC_PATH} in the bundle is invalid: {0}")]
    Spec(String),
}

/// Reads the spec packed in `bundle` and turns each `proofs[]` entry into an obligation.
///
/// Per-entry problems (a file missing from the bundle, an oversize file, an unreadable time
/// budget) become [`Planned::Rejected`] entries, never a failure of the whole plan.
pub fn plan(bundle: &OpenedBundle, limits: &PlanLimits) -> Result<Plan, PlanError> {
    let text = std::str::from_utf8(bundle.spec_bytes()).map_err(|_| PlanError::SpecEncoding)?;
    let (spec, _warnings) = pf_spec::check_str(SPEC_PATH, text, None).map_err(|e| {
        let msgs: Vec<String> = e.diagnostics.iter().map(|d| d.to_string()).collect();
        PlanError::Spec(msgs.join("; "))
    })?;
    // The compiled policy's canonical JSON, for Lean `binding` obligations (computed once).
    let policy_json = if spec.proofs.iter().any(|p| p.binding.is_some()) {
        Some(
            pf_policy::compile(&spec)
                .map(|c| c.policy.canonical_json())
                .map_err(|e| e.to_string()),
        )
    } else {
        None
    };
    let obligations = spec
        .proofs
        .iter()
        .map(|p| plan_one(p, &bundle.files, limits, policy_json.as_ref()))
        .collect();
    Ok(Plan {
        bundle_digest: bundle.digest,
        spec,
        obligations,
    })
}

fn plan_one(
    proof: &pf_spec::Proof,
    files: &BTreeMap<String, Vec<u8>>,
    limits: &PlanLimits,
    policy_json: Option<&Result<String, String>>,
) -> Planned {
    let name = proof.name.to_string();
    let kind = proof.kind.as_str().to_string();
    let covers: Vec<String> = proof.covers.iter().map(|c| c.to_string()).collect();
    let reject = |timeout, reason: String| {
        Planned::Rejected(Rejected {
            name: name.clone(),
            kind: kind.clone(),
            covers: covers.clone(),
            timeout,
            reason,
        })
    };
    let timeout = match &proof.timeout {
        None => limits.default_timeout,
        Some(t) => match parse_duration(t) {
            Some(d) if d > Duration::ZERO && d <= limits.max_timeout => d,
            Some(_) => {
                return reject(
                    limits.default_timeout,
                    format!(
                        "timeout {:?} is outside 0 < timeout <= {}s",
                        t.as_str(),
                        limits.max_timeout.as_secs()
                    ),
                );
            }
            None => {
                return reject(
                    limits.default_timeout,
                    format!(
                        "timeout {:?} is not a duration like 500ms, 30s, 5m or 1h",
                        t.as_str()
                    ),
                );
            }
        },
    };
    let mut wanted: Vec<(&str, &str)> = vec![("file", proof.file.as_str())];
    if let Some(e) = &proof.export {
        wanted.push(("export", e.as_str()));
    }
    if let Some(p) = &proof.property {
        wanted.push(("property", p.as_str()));
    }
    let mut inputs = Vec::new();
    for (role, path) in wanted {
        let key = normalise(path);
        let Some(bytes) = files.get(&key) else {
            return reject(timeout, format!("{role} {path:?} is not in the bundle"));
        };
        if bytes.len() as u64 > limits.max_input_bytes {
            return reject(
                timeout,
                format!(
                    "{role} {path:?} is {} bytes, above the {}-byte input limit",
                    bytes.len(),
                    limits.max_input_bytes
                ),
            );
        }
        inputs.push(Input::new(role, &key, bytes.as_slice()));
    }
    let mut params = BTreeMap::new();
    if let Some(t) = &proof.theorem {
        params.insert("theorem".to_string(), t.clone());
    }
    if let Some(b) = &proof.binding {
        params.insert("binding".to_string(), b.clone());
        match policy_json {
            Some(Ok(json)) => {
                params.insert(POLICY_JSON_PARAM.to_string(), json.clone());
            }
            Some(Err(e)) => {
                return reject(
                    timeout,
                    format!("binding: the spec's policy does not compile: {e}"),
                );
            }
            None => return reject(timeout, "binding: no compiled policy".into()),
        }
    }
    if let Some(m) = proof.method {
        params.insert("method".to_string(), m.as_str().to_string());
    }
    Planned::Ready(Obligation {
        name,
        kind,
        inputs,
        params,
        timeout,
        covers,
    })
}

/// Parameter holding the compiled policy's canonical JSON for a Lean `binding` obligation.
pub const POLICY_JSON_PARAM: &str = "policy_json";

/// Bundle paths are stored without a leading `./` (pf-bundle `BundlePath`).
fn normalise(path: &str) -> String {
    let mut p = path;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    p.to_string()
}

/// Parses `500ms`, `30s`, `5m`, `1h` (one integer and a unit).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ob(kind: &str, data: &[u8]) -> Obligation {
        Obligation {
            name: "a".into(),
            kind: kind.into(),
            inputs: vec![Input::new("file", "f", data)],
            params: BTreeMap::new(),
            timeout: DEFAULT_TIMEOUT,
            covers: vec![],
        }
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("3x"), None);
    }

    #[test]
    fn inputs_digest_depends_on_content_and_kind_not_name() {
        let a = ob("lean", b"x");
        let mut renamed = a.clone();
        renamed.name = "b".into();
        assert_eq!(a.inputs_digest(), renamed.inputs_digest());
        assert_ne!(a.inputs_digest(), ob("lean", b"y").inputs_digest());
        assert_ne!(a.inputs_digest(), ob("nnv", b"x").inputs_digest());
        let mut with_param = a.clone();
        with_param.params.insert("theorem".into(), "T".into());
        assert_ne!(a.inputs_digest(), with_param.inputs_digest());
    }
}

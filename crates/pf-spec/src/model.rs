//! The AgentSpec data model, as read from YAML.
//!
//! Fields that diagnostics point at are `Spanned` so a lint can show file:line:col; everything
//! else is plain data. Unknown fields are rejected everywhere (`deny_unknown_fields`).

use std::collections::BTreeMap;

use marked_yaml::Spanned;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An agent's specification: identity, capabilities, policies, resources, proofs and signers.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "AgentSpec",
    description = "Provability Fabric agent specification"
)]
pub struct AgentSpec {
    /// Agent name: lowercase letters, digits and `-`, 1-63 characters (a DNS label).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Semantic version of this spec (e.g. `1.0.0`).
    #[schemars(with = "String")]
    pub version: Spanned<String>,
    /// Free-text description for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the agent may do: tools, text generation, HTTP, files, ...
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Information-flow and custom rules over capabilities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<Policy>,
    /// Compute limits for the agent's workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Proof obligations the verification engine must discharge.
    #[serde(default)]
    pub proofs: Vec<Proof>,
    /// Who must sign the bundle: k-of-n trusted keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signers: Option<Signers>,
    /// Kubernetes namespaces the agent may be deployed in; empty means any labelled namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub namespaces: Vec<Spanned<String>>,
}

/// One thing the agent may do, with its constraints.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Capability {
    /// Capability (tool) name, unique within the spec.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Kind of capability; when omitted it is `tool`, or the kind named by `name` if it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<CapabilityKind>,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Limits on arguments, outputs, rate and budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Constraints>,
    /// Labels attached to values this capability returns (e.g. `untrusted`, `pii`, `secret`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_labels: Vec<String>,
    /// Field-level labels for structured (JSON or YAML) output: a field name mapped to the labels
    /// of the values under that field, in place of `output_labels` (the innermost listed field
    /// wins; output that does not parse as a mapping or sequence keeps `output_labels` whole).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub output_fields: BTreeMap<String, Vec<String>>,
    /// Reason this capability needs no proof obligation (quality gate waiver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiver: Option<String>,
}

/// Kinds of capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CapabilityKind {
    /// A tool called with JSON arguments (MCP or function calling).
    Tool,
    /// Free text produced by the model.
    TextGeneration,
    /// Outbound HTTP requests.
    Http,
    /// File-system access.
    File,
    /// Shell command execution.
    Shell,
    /// Database queries.
    Database,
    /// Outbound e-mail.
    Email,
    /// Payments and money transfers.
    Payment,
}

impl CapabilityKind {
    /// Every kind, in declaration order.
    pub const ALL: [CapabilityKind; 8] = [
        Self::Tool,
        Self::TextGeneration,
        Self::Http,
        Self::File,
        Self::Shell,
        Self::Database,
        Self::Email,
        Self::Payment,
    ];

    /// The name used in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::TextGeneration => "text_generation",
            Self::Http => "http",
            Self::File => "file",
            Self::Shell => "shell",
            Self::Database => "database",
            Self::Email => "email",
            Self::Payment => "payment",
        }
    }
}

impl Capability {
    /// The effective kind: the explicit `kind`, else the kind named by `name`, else `tool`.
    pub fn effective_kind(&self) -> CapabilityKind {
        self.kind.unwrap_or_else(|| {
            CapabilityKind::ALL
                .into_iter()
                .find(|k| k.as_str() == self.name.as_str())
                .unwrap_or(CapabilityKind::Tool)
        })
    }
}

/// Constraints on one capability.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    /// Maximum length of the output, in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u64>")]
    pub max_length: Option<Spanned<u64>>,
    /// Content filtering of outputs: `true` for the built-in detectors, or a detailed setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_filter: Option<ContentFilter>,
    /// JSON Schema the call's arguments object must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<serde_json::Value>,
    /// Per-argument constraints, keyed by argument name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, ArgConstraint>,
    /// Domains that URLs and e-mail addresses in arguments may name (subdomains included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_domains: Vec<String>,
    /// Path prefixes that file arguments must lie under.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_paths: Vec<String>,
    /// Token-bucket rate limit for calls to this capability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Call, token and cost budgets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// Maximum calls to this capability in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u32>")]
    pub max_concurrent: Option<Spanned<u32>>,
}

/// Output content filtering: a switch or a detailed setting.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ContentFilter {
    /// `true` enables every built-in detector with the `redact` action; `false` disables filtering.
    Enabled(bool),
    /// Chosen detectors, extra patterns and the action on a match.
    Detailed(ContentFilterRules),
}

// Hand-written because serde's untagged enums buffer the input and lose both the YAML scalar
// type (`true` arrives as a string) and the location of errors inside the mapping.
impl<'de> Deserialize<'de> for ContentFilter {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FilterVisitor;
        impl<'de> serde::de::Visitor<'de> for FilterVisitor {
            type Value = ContentFilter;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`true`, `false` or a mapping with detectors, patterns and action")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<ContentFilter, E> {
                Ok(ContentFilter::Enabled(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ContentFilter, E> {
                match v {
                    "true" => Ok(ContentFilter::Enabled(true)),
                    "false" => Ok(ContentFilter::Enabled(false)),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ContentFilter, A::Error> {
                let rules = ContentFilterRules::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(ContentFilter::Detailed(rules))
            }
        }
        deserializer.deserialize_any(FilterVisitor)
    }
}

/// Detailed content-filter settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentFilterRules {
    /// Built-in detectors to run; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detectors: Vec<Detector>,
    /// Extra regular expressions (Rust `regex` syntax) whose matches are treated like detections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub patterns: Vec<Spanned<String>>,
    /// What to do when something is detected.
    #[serde(default)]
    pub action: FilterAction,
}

/// Built-in sensitive-content detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// E-mail addresses.
    Email,
    /// Phone numbers.
    Phone,
    /// Payment card numbers (Luhn-checked).
    CardNumber,
    /// International bank account numbers (checksum-verified).
    Iban,
    /// API keys and bearer tokens.
    ApiKey,
}

/// Action taken on detected content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FilterAction {
    /// Replace the match with a placeholder and let the output through.
    #[default]
    Redact,
    /// Block the whole output.
    Deny,
}

/// Constraints on one named argument.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArgConstraint {
    /// Regular expression the (string) argument must match in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub pattern: Option<Spanned<String>>,
    /// Inclusive lower bound for a numeric argument.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Inclusive upper bound for a numeric argument.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Maximum length of a string argument, in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// Domains a URL or e-mail argument may name (subdomains included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// Prefixes a path argument must start with (after normalisation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path_prefixes: Vec<String>,
}

/// Token-bucket rate limit: `requests` per `per` (e.g. `10` per `1m`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Calls allowed per window (also the burst size).
    #[schemars(with = "u32")]
    pub requests: Spanned<u32>,
    /// Window length, e.g. `1s`, `1m`, `1h`.
    #[schemars(with = "String")]
    pub per: Spanned<String>,
}

/// Budgets over the agent's lifetime (or session).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Maximum number of calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u64>,
    /// Maximum tokens consumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Maximum cost in US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<f64>")]
    pub max_cost_usd: Option<Spanned<f64>>,
}

/// A rule over capabilities.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Rule name, unique within the spec.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Kind of rule.
    #[serde(rename = "type")]
    pub kind: PolicyKind,
    /// Information flow: value labels that may not reach the sinks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_labels: Vec<String>,
    /// Information flow: sinks as `capability` or `capability.argument`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub sinks: Vec<Spanned<String>>,
    /// Information flow: trusted sources that clear a value (`user_request`,
    /// `user_named_source`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unless: Vec<String>,
    /// Information flow with `unless: [user_named_source]`: arguments (`capability.argument`)
    /// naming whom a sink call acts for; a value from a source the user named is cleared only
    /// when each of these also comes from the user's request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub principals: Vec<Spanned<String>>,
    /// Custom rule text (language reserved for the policy kernel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Kinds of policy rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// Labelled values may not flow into sinks.
    InformationFlow,
    /// A rule in the policy kernel's rule language.
    Custom,
}

/// Compute limits (Kubernetes quantity syntax).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU limit, e.g. `500m` or `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub cpu: Option<Spanned<String>>,
    /// Memory limit, e.g. `512Mi` or `2Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub memory: Option<Spanned<String>>,
    /// Maximum tool calls in flight at once across all capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u32>")]
    pub max_concurrent_calls: Option<Spanned<u32>>,
}

/// A proof obligation.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Proof {
    /// Obligation name, unique within the spec.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Which checker discharges it.
    #[serde(rename = "type")]
    pub kind: ProofKind,
    /// Main input, relative to the spec: Lean source or export, ONNX/NNet model, reach problem.
    #[schemars(with = "String")]
    pub file: Spanned<String>,
    /// Lean: the lean4export output to re-check (when `file` is Lean source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub export: Option<Spanned<String>>,
    /// Lean: fully qualified theorem name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theorem: Option<String>,
    /// Lean: constant whose value must be the canonical JSON of the compiled policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    /// NNV: the property file (VNN-LIB or Marabou format), relative to the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub property: Option<Spanned<String>>,
    /// Reach: `learned` (DryVR's learned discrepancy, the default) or `sound` (interval bounds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<ReachMethod>,
    /// Time budget for the check, e.g. `60s`, `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Capabilities this obligation covers (for the coverage quality gate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub covers: Vec<Spanned<String>>,
}

/// Proof checker kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProofKind {
    /// Lean 4 theorem, re-checked from a lean4export file.
    Lean,
    /// Neural-network property (ONNX/NNet model + VNN-LIB property).
    Nnv,
    /// Hybrid-system reachability (DryVR-style problem).
    Reach,
}

impl ProofKind {
    /// The name used in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lean => "lean",
            Self::Nnv => "nnv",
            Self::Reach => "reach",
        }
    }
}

/// How a `reach` obligation bounds trajectories between simulations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReachMethod {
    /// Discrepancy learned from sampled traces (DryVR's probabilistic guarantee).
    Learned,
    /// Interval enclosures with a Jacobian log-norm bound (sound for ODE models).
    Sound,
}

impl ReachMethod {
    /// The name used in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Learned => "learned",
            Self::Sound => "sound",
        }
    }
}

/// Trust policy for bundle signatures: at least `threshold` of `keys` must sign.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Signers {
    /// Number of distinct trusted keys that must sign.
    #[schemars(with = "u32")]
    pub threshold: Spanned<u32>,
    /// Trusted signer keys.
    pub keys: Vec<SignerKey>,
}

/// One trusted signer.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignerKey {
    /// Signer name (person or role).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Ed25519 public key: a path to an SPKI PEM file (relative to the spec) or the PEM text.
    #[schemars(with = "String")]
    pub public_key: Spanned<String>,
}

impl AgentSpec {
    /// Files the spec references, relative to the spec's directory, without duplicates, sorted.
    ///
    /// These are what a bundle must carry: proof inputs and signer key files (inline PEM keys
    /// are not files).
    pub fn referenced_files(&self) -> Vec<String> {
        let mut files: Vec<String> = Vec::new();
        for proof in &self.proofs {
            files.push(proof.file.to_string());
            files.extend(proof.export.iter().map(|s| s.to_string()));
            files.extend(proof.property.iter().map(|s| s.to_string()));
        }
        if let Some(signers) = &self.signers {
            for key in &signers.keys {
                if !is_inline_pem(&key.public_key) {
                    files.push(key.public_key.to_string());
                }
            }
        }
        files.sort();
        files.dedup();
        files
    }

    /// The capability with this name, if any.
    pub fn capability(&self, name: &str) -> Option<&Capability> {
        self.capabilities.iter().find(|c| c.name.as_str() == name)
    }
}

/// True when a `public_key` value is PEM text rather than a path.
pub fn is_inline_pem(value: &str) -> bool {
    value.trim_start().starts_with("-----BEGIN")
}

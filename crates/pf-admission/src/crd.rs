//! The `AgentDeployment` custom resource (`provability-fabric.io/v1alpha1`), defined in Rust and
//! turned into a CustomResourceDefinition by kube's derive.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the custom resource.
pub const GROUP: &str = "provability-fabric.io";
/// API version of the custom resource.
pub const VERSION: &str = "v1alpha1";

/// Desired state of an agent deployment: which signed bundle to run, with which container and
/// resources, and how many replicas.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "provability-fabric.io",
    version = "v1alpha1",
    kind = "AgentDeployment",
    plural = "agentdeployments",
    shortname = "agdep",
    namespaced,
    status = "AgentDeploymentStatus",
    printcolumn = r#"{"name":"Bundle","type":"string","jsonPath":".spec.bundle.digest"}"#,
    printcolumn = r#"{"name":"Admitted","type":"string","jsonPath":".status.conditions[?(@.type==\"Admitted\")].status"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AgentDeploymentSpec {
    /// The signed agent bundle (`.pfb`) to run.
    pub bundle: ArtifactRef,
    /// The verification attestation for the bundle (a DSSE envelope); when absent the webhook
    /// looks it up in its bundle store by the bundle digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<ArtifactRef>,
    /// Number of pods to run (default 1).
    #[serde(default = "default_replicas")]
    pub replicas: i32,
    /// The agent's container.
    pub agent: AgentContainer,
    /// CPU and memory requests and limits for the agent container.
    pub resources: ResourceRequirements,
}

fn default_replicas() -> i32 {
    1
}

/// A reference to a content-addressed artifact: where to find it and its sha256 digest.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactRef {
    /// `sha256:<64 lowercase hex>`; the artifact is looked up by this digest.
    #[schemars(regex(pattern = r"^sha256:[0-9a-f]{64}$"))]
    pub digest: String,
    /// A local path (on the webhook's bundle store volume) where the artifact lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A URL the artifact can be fetched from (by the store syncer, never on the hot path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The agent container.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentContainer {
    /// Container image, pinned by digest (`name@sha256:...`).
    pub image: String,
    /// Entrypoint override.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Plain environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

/// One environment variable.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Variable value.
    pub value: String,
}

/// Requests and limits, as Kubernetes quantities.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ResourceRequirements {
    /// Guaranteed resources.
    #[serde(default)]
    pub requests: Quantities,
    /// Maximum resources.
    #[serde(default)]
    pub limits: Quantities,
}

/// CPU and memory quantities (`500m`, `2`, `512Mi`, ...).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct Quantities {
    /// CPU quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// Observed state: conditions `Verified`, `Admitted`, `Ready` and the attestation digest.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentDeploymentStatus {
    /// Conditions, one per type.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// sha256 digest (`sha256:...`) of the verification attestation that admitted the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation_digest: Option<String>,
    /// The bundle digest the status refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_digest: Option<String>,
    /// `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready replicas of the managed Deployment.
    #[serde(default)]
    pub ready_replicas: i32,
}

/// A status condition (the usual Kubernetes shape).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Verified`, `Admitted` or `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// One CamelCase word.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
    /// RFC 3339 time the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// Condition type: bundle signatures and attestation verified.
pub const VERIFIED: &str = "Verified";
/// Condition type: every admission check passed.
pub const ADMITTED: &str = "Admitted";
/// Condition type: the managed Deployment has all replicas ready.
pub const READY: &str = "Ready";

/// The CustomResourceDefinition as YAML (what `pf admission crds` prints).
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    use kube::CustomResourceExt;
    serde_saphyr::to_string(&AgentDeployment::crd())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn crd_has_group_version_status_and_schema() {
        let crd = AgentDeployment::crd();
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("agentdeployments.provability-fabric.io")
        );
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, VERSION);
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        let yaml = crd_yaml().expect("yaml");
        for needle in [
            "attestationDigest",
            "bundle",
            "replicas",
            "agent",
            "resources",
            "conditions",
        ] {
            assert!(yaml.contains(needle), "missing {needle}");
        }
    }

    #[test]
    fn spec_round_trips_with_defaults() {
        let v = serde_json::json!({
            "bundle": {"digest": format!("sha256:{}", "a".repeat(64)), "path": "x.pfb"},
            "agent": {"image": "r/a@sha256:abc"},
            "resources": {"limits": {"cpu": "1"}}
        });
        let s: AgentDeploymentSpec = serde_json::from_value(v).expect("parse");
        assert_eq!(s.replicas, 1);
        assert_eq!(s.resources.limits.cpu.as_deref(), Some("1"));
        assert!(s.attestation.is_none());
    }
}

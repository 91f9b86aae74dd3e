//! The admission decisions: validation (every check, every failure listed) and mutation (guard
//! sidecar injection as an idempotent JSON Patch), with each agent decision written to the
//! [`DecisionLog`]. Transport-free: [`crate::server`] feeds it decoded requests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::PodSpec;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};

use crate::audit::{DecisionLog, DecisionRecord};
use crate::crd::AgentDeploymentSpec;
use crate::policy::{self, GuardConfig};
use crate::store::{Verifier, parse_digest_ref};

/// Pod (template) annotation naming the agent bundle: `sha256:<hex>`.
pub const BUNDLE_ANNOTATION: &str = "provability-fabric.io/bundle-digest";
/// Optional annotation naming the agent; must equal the bundle spec's name when present.
pub const AGENT_ANNOTATION: &str = "provability-fabric.io/agent";

/// Name of the ConfigMap holding the spec of the bundle with `hex` digest (content-addressed).
pub fn spec_configmap_name(hex: &str) -> String {
    format!("pf-spec-{}", &hex[..hex.len().min(16)])
}

/// Object kinds the webhooks understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// core/v1 Pod.
    Pod,
    /// apps/v1 Deployment.
    Deployment,
    /// provability-fabric.io AgentDeployment.
    AgentDeployment,
}

impl Kind {
    fn of(req: &AdmissionRequest<DynamicObject>) -> Option<Self> {
        match (req.kind.group.as_str(), req.kind.kind.as_str()) {
            ("", "Pod") => Some(Kind::Pod),
            ("apps", "Deployment") => Some(Kind::Deployment),
            (crate::crd::GROUP, "AgentDeployment") => Some(Kind::AgentDeployment),
            _ => None,
        }
    }

    /// JSON pointer of the pod spec inside the object.
    fn pod_spec_pointer(self) -> &'static str {
        match self {
            Kind::Pod => "/spec",
            Kind::Deployment => "/spec/template/spec",
            Kind::AgentDeployment => "",
        }
    }
}

/// The admission controller: verifier (store + trust policy + attestation check + cache),
/// guard sidecar description and decision log.
pub struct Admission {
    verifier: Arc<Verifier>,
    guard: GuardConfig,
    log: Arc<dyn DecisionLog>,
}

/// What a webhook decided before it is logged.
struct Decision {
    kind: String,
    digest: Option<String>,
    reasons: Vec<String>,
    patch: Option<json_patch::Patch>,
}

fn op_name(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

fn annotations<'a>(
    v: &'a serde_json::Value,
    pointer: &str,
) -> Option<&'a serde_json::Map<String, serde_json::Value>> {
    v.pointer(pointer).and_then(|a| a.as_object())
}

impl Admission {
    /// An admission controller.
    pub fn new(verifier: Arc<Verifier>, guard: GuardConfig, log: Arc<dyn DecisionLog>) -> Self {
        Self {
            verifier,
            guard,
            log,
        }
    }

    /// The verifier (for cache warm-up and tests).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The validating webhook.
    pub fn validate(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        self.decide(req, "validate", false)
    }

    /// The mutating webhook.
    pub fn mutate(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        self.decide(req, "mutate", true)
    }

    fn decide(
        &self,
        req: &AdmissionRequest<DynamicObject>,
        webhook: &str,
        mutate: bool,
    ) -> AdmissionResponse {
        let resp = AdmissionResponse::from(req);
        if !matches!(req.operation, Operation::Create | Operation::Update) {
            return resp;
        }
        let Some(kind) = Kind::of(req) else {
            return resp.deny(format!(
                "provability-fabric: unsupported kind {}/{} {} (this webhook handles Pod, apps/v1 Deployment and AgentDeployment)",
                req.kind.group, req.kind.version, req.kind.kind
            ));
        };
        let Some(obj) = &req.object else {
            return resp.deny("provability-fabric: request has no object");
        };
        let value = match serde_json::to_value(obj) {
            Ok(v) => v,
            Err(e) => return resp.deny(format!("provability-fabric: object: {e}")),
        };
        let namespace = req.namespace.clone().unwrap_or_default();
        let decision = match kind {
            Kind::AgentDeployment if mutate => return resp,
            Kind::AgentDeployment => self.check_agent_deployment(&value, &namespace),
            Kind::Pod | Kind::Deployment => {
                match self.check_workload(kind, &value, &namespace, mutate) {
                    Some(d) => d,
                    // Not one of ours: pass through untouched, not logged.
                    None => return resp,
                }
            }
        };
        let record = DecisionRecord {
            time_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            uid: req.uid.clone(),
            webhook: webhook.to_string(),
            kind: decision.kind.clone(),
            namespace,
            name: req.name.clone(),
            operation: op_name(&req.operation).to_string(),
            dry_run: req.dry_run,
            allowed: decision.reasons.is_empty(),
            bundle_digest: decision.digest.clone(),
            reasons: decision.reasons.clone(),
        };
        if let Err(e) = self.log.append(&record) {
            return resp.deny(format!(
                "provability-fabric: decision could not be recorded ({e}); denied"
            ));
        }
        if !decision.reasons.is_empty() {
            return resp.deny(format!(
                "provability-fabric denied {} {:?}: {} failed check(s): {}",
                decision.kind,
                req.name,
                decision.reasons.len(),
                decision.reasons.join("; ")
            ));
        }
        match decision.patch {
            Some(p) if !p.0.is_empty() => match resp.clone().with_patch(p) {
                Ok(r) => r,
                Err(e) => resp.deny(format!("provability-fabric: patch: {e}")),
            },
            _ => resp,
        }
    }

    fn check_agent_deployment(&self, value: &serde_json::Value, namespace: &str) -> Decision {
        let mut reasons = Vec::new();
        let kind = "AgentDeployment".to_string();
        let spec: AgentDeploymentSpec = match value.get("spec").cloned().map(serde_json::from_value)
        {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                reasons.push(format!(
                    "spec does not match the AgentDeployment schema: {e}"
                ));
                return Decision {
                    kind,
                    digest: None,
                    reasons,
                    patch: None,
                };
            }
            None => {
                reasons.push("AgentDeployment has no spec".into());
                return Decision {
                    kind,
                    digest: None,
                    reasons,
                    patch: None,
                };
            }
        };
        let digest_text = spec.bundle.digest.clone();
        let expected_att = match spec
            .attestation
            .as_ref()
            .map(|a| parse_digest_ref(&a.digest))
        {
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                reasons.push(format!("attestation digest: {e}"));
                None
            }
            None => None,
        };
        if spec.replicas < 0 {
            reasons.push(format!("replicas is {}, must be >= 0", spec.replicas));
        }
        if !policy::image_pinned(&spec.agent.image) {
            reasons.push(format!(
                "agent image {:?} is not pinned by digest (name@sha256:<hex>)",
                spec.agent.image
            ));
        }
        // Build the agent container as the operator will, and check its resources like a pod's.
        let pod: PodSpec = match serde_json::from_value(serde_json::json!({"containers": [{
            "name": "agent",
            "image": spec.agent.image,
            "resources": spec.resources,
        }]})) {
            Ok(p) => p,
            Err(e) => {
                reasons.push(format!("resources: {e}"));
                PodSpec::default()
            }
        };
        match parse_digest_ref(&digest_text) {
            Err(e) => reasons.push(format!("bundle digest: {e}")),
            Ok(d) => match self.verifier.verify(&d, expected_att.as_ref()) {
                Err(fails) => reasons.extend(fails),
                Ok(agent) => {
                    policy::check_namespace(&agent.spec, namespace, &mut reasons);
                    policy::check_resources(&pod, &agent.spec, &mut reasons);
                }
            },
        }
        Decision {
            kind,
            digest: Some(digest_text),
            reasons,
            patch: None,
        }
    }

    /// `None` when the object does not carry our annotation (pass through).
    fn check_workload(
        &self,
        kind: Kind,
        value: &serde_json::Value,
        namespace: &str,
        mutate: bool,
    ) -> Option<Decision> {
        let kind_name = format!("{kind:?}");
        let ann_ptr = match kind {
            Kind::Pod => "/metadata/annotations",
            _ => "/spec/template/metadata/annotations",
        };
        let ann = annotations(value, ann_ptr);
        let digest_text = ann.and_then(|a| a.get(BUNDLE_ANNOTATION));
        let mut reasons = Vec::new();
        let digest_text = match digest_text {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(_) => {
                reasons.push(format!("annotation {BUNDLE_ANNOTATION} must be a string"));
                String::new()
            }
            None => {
                let on_object = annotations(value, "/metadata/annotations")
                    .is_some_and(|a| a.contains_key(BUNDLE_ANNOTATION));
                if kind == Kind::Deployment && on_object {
                    reasons.push(format!(
                        "annotation {BUNDLE_ANNOTATION} is on the Deployment but not on its pod template"
                    ));
                    return Some(Decision {
                        kind: kind_name,
                        digest: None,
                        reasons,
                        patch: None,
                    });
                }
                return None;
            }
        };
        let pod: Option<PodSpec> = match value
            .pointer(kind.pod_spec_pointer())
            .cloned()
            .map(serde_json::from_value)
        {
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                reasons.push(format!("pod spec: {e}"));
                None
            }
            None => {
                reasons.push("object has no pod spec".into());
                None
            }
        };
        let digest = match parse_digest_ref(&digest_text) {
            Ok(d) => Some(d),
            Err(e) => {
                reasons.push(format!("annotation {BUNDLE_ANNOTATION}: {e}"));
                None
            }
        };
        let agent = digest.map(|d| self.verifier.verify(&d, None));
        let agent = match agent {
            Some(Ok(a)) => Some(a),
            Some(Err(f)) => {
                reasons.extend(f);
                None
            }
            None => None,
        };
        if mutate {
            // Inject only into pods of verified agents; anything else is left for the
            // validating webhook to deny with the full list of reasons.
            let patch = match (&agent, &pod) {
                (Some(a), Some(p)) if reasons.is_empty() => {
                    Some(self.guard_patch(kind, p, &a.digest.to_hex()))
                }
                _ => None,
            };
            return Some(Decision {
                kind: kind_name,
                digest: Some(digest_text),
                reasons: Vec::new(),
                patch,
            });
        }
        if let Some(a) = &agent
            && let Some(name) = ann.and_then(|m| m.get(AGENT_ANNOTATION))
            && name.as_str() != Some(a.spec.name.as_str())
        {
            reasons.push(format!(
                "annotation {AGENT_ANNOTATION} is {name}, the bundle is agent {:?}",
                a.spec.name.as_str()
            ));
        }
        if let Some(p) = &pod {
            policy::check_security(p, &mut reasons);
            policy::check_guard(p, &self.guard, &mut reasons);
            if let Some(a) = &agent {
                policy::check_namespace(&a.spec, namespace, &mut reasons);
                policy::check_resources(p, &a.spec, &mut reasons);
            }
        }
        Some(Decision {
            kind: kind_name,
            digest: Some(digest_text),
            reasons,
            patch: None,
        })
    }

    /// JSON Patch adding the guard sidecar and the spec volume when missing (idempotent).
    pub fn guard_patch(&self, kind: Kind, pod: &PodSpec, hex: &str) -> json_patch::Patch {
        let base = kind.pod_spec_pointer();
        let mut ops = Vec::new();
        if !pod
            .containers
            .iter()
            .any(|c| c.name == policy::GUARD_CONTAINER)
        {
            ops.push(serde_json::json!({"op": "add", "path": format!("{base}/containers/-"), "value": guard_container(&self.guard)}));
        }
        let wanted = guard_volumes(&spec_configmap_name(hex));
        let missing: Vec<serde_json::Value> = wanted
            .into_iter()
            .filter(|w| {
                !pod.volumes
                    .iter()
                    .flatten()
                    .any(|v| Some(v.name.as_str()) == w["name"].as_str())
            })
            .collect();
        if pod.volumes.is_none() {
            if !missing.is_empty() {
                ops.push(serde_json::json!({"op": "add", "path": format!("{base}/volumes"), "value": missing}));
            }
        } else {
            for vol in missing {
                ops.push(serde_json::json!({"op": "add", "path": format!("{base}/volumes/-"), "value": vol}));
            }
        }
        serde_json::from_value(serde_json::Value::Array(ops))
            .unwrap_or(json_patch::Patch(Vec::new()))
    }
}

/// The guard sidecar container as JSON.
pub fn guard_container(guard: &GuardConfig) -> serde_json::Value {
    let q: BTreeMap<&str, &str> = [
        ("cpu", guard.cpu.as_str()),
        ("memory", guard.memory.as_str()),
    ]
    .into();
    serde_json::json!({
        "name": policy::GUARD_CONTAINER,
        "image": guard.image,
        "args": guard_args(guard),
        "ports": [{"name": "metrics", "containerPort": policy::GUARD_METRICS_PORT}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "metrics"}},
        "resources": {"requests": q, "limits": q},
        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true},
        "volumeMounts": [
            {"name": policy::SPEC_VOLUME, "mountPath": policy::SPEC_MOUNT_PATH, "readOnly": true},
            {"name": policy::STATE_VOLUME, "mountPath": policy::STATE_MOUNT_PATH},
        ],
    })
}

/// The sidecar's `pf` arguments: the Streamable HTTP MCP proxy of `pf guard` in front of the
/// agent's tool server, decisions to the scratch volume, metrics on all interfaces.
pub fn guard_args(guard: &GuardConfig) -> Vec<String> {
    vec![
        "guard".into(),
        "--spec".into(),
        format!("{}/agent.yaml", policy::SPEC_MOUNT_PATH),
        "--upstream".into(),
        guard.upstream.clone(),
        "--listen".into(),
        policy::GUARD_LISTEN.into(),
        "--metrics-addr".into(),
        format!("0.0.0.0:{}", policy::GUARD_METRICS_PORT),
        "--log".into(),
        format!("{}/decisions.jsonl", policy::STATE_MOUNT_PATH),
    ]
}

/// The pod volumes the sidecar needs: the spec (from its ConfigMap) and a scratch directory.
pub fn guard_volumes(configmap: &str) -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({"name": policy::SPEC_VOLUME, "configMap": {"name": configmap}}),
        serde_json::json!({"name": policy::STATE_VOLUME, "emptyDir": {}}),
    ]
}

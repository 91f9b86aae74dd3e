//! Policy and resource checks on a pod template: guard sidecar, no privileged containers or host
//! namespaces/paths, pinned images, allowed namespace, resources within the agent spec.
//! Every check runs; the result lists every failure.

use k8s_openapi::api::core::v1::{Container, PodSpec};
use pf_spec::AgentSpec;
use pf_spec::quantity::{parse_cpu_millis, parse_memory_bytes};

/// Name of the injected guard sidecar container.
pub const GUARD_CONTAINER: &str = "pf-guard";
/// Name of the volume holding the agent spec.
pub const SPEC_VOLUME: &str = "pf-spec";
/// Where the spec volume is mounted in the guard sidecar.
pub const SPEC_MOUNT_PATH: &str = "/etc/provability-fabric";
/// Name of the writable scratch volume holding the guard's decision log.
pub const STATE_VOLUME: &str = "pf-guard-state";
/// Where the scratch volume is mounted in the guard sidecar (its root filesystem is read-only).
pub const STATE_MOUNT_PATH: &str = "/var/run/pf-guard";
/// Address the guard's MCP proxy listens on inside the pod (the agent's MCP endpoint is
/// `http://127.0.0.1:8808/mcp`).
pub const GUARD_LISTEN: &str = "127.0.0.1:8808";
/// Port of the guard's /metrics and /healthz.
pub const GUARD_METRICS_PORT: u16 = 9464;

/// How the guard sidecar looks.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Guard image, pinned by digest.
    pub image: String,
    /// CPU request and limit of the sidecar.
    pub cpu: String,
    /// Memory request and limit of the sidecar.
    pub memory: String,
    /// The Streamable HTTP MCP endpoint of the agent's tools that the sidecar proxies.
    pub upstream: String,
}

/// True if `image` is pinned: `name@sha256:<64 lowercase hex>`.
pub fn image_pinned(image: &str) -> bool {
    match image.rsplit_once("@sha256:") {
        Some((name, hex)) => {
            !name.is_empty()
                && hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        None => false,
    }
}

fn all_containers(pod: &PodSpec) -> impl Iterator<Item = (&'static str, &Container)> {
    pod.init_containers
        .iter()
        .flatten()
        .map(|c| ("init container", c))
        .chain(pod.containers.iter().map(|c| ("container", c)))
}

/// Security checks that need no agent spec (privileged, host namespaces, hostPath, pinned images).
pub fn check_security(pod: &PodSpec, failed: &mut Vec<String>) {
    if pod.host_network == Some(true) {
        failed.push("hostNetwork is not allowed".into());
    }
    if pod.host_pid == Some(true) {
        failed.push("hostPID is not allowed".into());
    }
    if pod.host_ipc == Some(true) {
        failed.push("hostIPC is not allowed".into());
    }
    for v in pod.volumes.iter().flatten() {
        if v.host_path.is_some() {
            failed.push(format!("volume {:?} is a hostPath volume", v.name));
        }
    }
    if pod
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        failed.push("ephemeral containers are not allowed".into());
    }
    for (what, c) in all_containers(pod) {
        let sc = c.security_context.as_ref();
        if sc.and_then(|s| s.privileged) == Some(true) {
            failed.push(format!("{what} {:?} is privileged", c.name));
        }
        if sc.and_then(|s| s.allow_privilege_escalation) == Some(true) {
            failed.push(format!("{what} {:?} allows privilege escalation", c.name));
        }
        match c.image.as_deref() {
            Some(i) if image_pinned(i) => {}
            Some(i) => failed.push(format!(
                "{what} {:?} image {i:?} is not pinned by digest (name@sha256:<hex>)",
                c.name
            )),
            None => failed.push(format!("{what} {:?} has no image", c.name)),
        }
    }
}

/// The guard sidecar must be present, run the configured image, and mount the spec volume.
pub fn check_guard(pod: &PodSpec, guard: &GuardConfig, failed: &mut Vec<String>) {
    let Some(g) = pod.containers.iter().find(|c| c.name == GUARD_CONTAINER) else {
        failed.push(format!(
            "guard sidecar container {GUARD_CONTAINER:?} is missing"
        ));
        return;
    };
    if g.image.as_deref() != Some(guard.image.as_str()) {
        failed.push(format!(
            "guard sidecar image is {:?}, expected {:?}",
            g.image.as_deref().unwrap_or(""),
            guard.image
        ));
    }
    let mounted = g
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| m.name == SPEC_VOLUME && m.mount_path == SPEC_MOUNT_PATH);
    if !mounted {
        failed.push(format!(
            "guard sidecar does not mount volume {SPEC_VOLUME:?} at {SPEC_MOUNT_PATH}"
        ));
    }
}

/// The namespace must be one the spec allows (an empty list allows any selected namespace).
pub fn check_namespace(spec: &AgentSpec, namespace: &str, failed: &mut Vec<String>) {
    if !spec.namespaces.is_empty() && !spec.namespaces.iter().any(|n| n.as_str() == namespace) {
        let allowed: Vec<&str> = spec.namespaces.iter().map(|n| n.as_str()).collect();
        failed.push(format!(
            "namespace {namespace:?} is not allowed by the spec (allowed: {})",
            allowed.join(", ")
        ));
    }
}

/// Requests/limits of one resource as (request, limit) in base units.
type Pair = (Option<u64>, Option<u64>);

fn quantity(
    c: &Container,
    res: &str,
    parse: fn(&str) -> Option<u64>,
    failed: &mut Vec<String>,
) -> Pair {
    let r = c.resources.as_ref();
    let mut get = |field: &str,
                   map: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >| {
        match map.and_then(|m| m.get(res)) {
            None => {
                failed.push(format!("container {:?} has no {res} {field}", c.name));
                None
            }
            Some(q) => {
                let v = parse(&q.0);
                if v.is_none() {
                    failed.push(format!(
                        "container {:?} {res} {field} {:?} is not a valid quantity",
                        c.name, q.0
                    ));
                }
                v
            }
        }
    };
    let req = get("request", r.and_then(|r| r.requests.as_ref()));
    let lim = get("limit", r.and_then(|r| r.limits.as_ref()));
    if let (Some(q), Some(l)) = (req, lim)
        && q > l
    {
        failed.push(format!(
            "container {:?} {res} request exceeds its limit",
            c.name
        ));
    }
    (req, lim)
}

/// Every container needs cpu/memory requests and limits; the agent containers' (all but the
/// guard) limits, summed, must fit in the spec's `resources`.
pub fn check_resources(pod: &PodSpec, spec: &AgentSpec, failed: &mut Vec<String>) {
    let mut cpu_sum: Option<u64> = Some(0);
    let mut mem_sum: Option<u64> = Some(0);
    for c in &pod.containers {
        let (_, cpu) = quantity(c, "cpu", parse_cpu_millis, failed);
        let (_, mem) = quantity(c, "memory", parse_memory_bytes, failed);
        if c.name != GUARD_CONTAINER {
            cpu_sum = cpu_sum.zip(cpu).map(|(a, b)| a.saturating_add(b));
            mem_sum = mem_sum.zip(mem).map(|(a, b)| a.saturating_add(b));
        }
    }
    let Some(res) = &spec.resources else { return };
    if let (Some(max), Some(sum)) = (res.cpu.as_ref(), cpu_sum)
        && let Some(m) = parse_cpu_millis(max)
        && sum > m
    {
        failed.push(format!(
            "agent cpu limits total {sum}m, above the spec's {} ({m}m)",
            max.as_str()
        ));
    }
    if let (Some(max), Some(sum)) = (res.memory.as_ref(), mem_sum)
        && let Some(m) = parse_memory_bytes(max)
        && sum > m
    {
        failed.push(format!(
            "agent memory limits total {sum} bytes, above the spec's {} ({m} bytes)",
            max.as_str()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_images() {
        let h = "0".repeat(64);
        assert!(image_pinned(&format!("reg.io/a/b@sha256:{h}")));
        assert!(image_pinned(&format!("b:1.0@sha256:{h}")));
        assert!(!image_pinned("b:1.0"));
        assert!(!image_pinned(&format!("@sha256:{h}")));
        assert!(!image_pinned("b@sha256:abc"));
        assert!(!image_pinned(&format!("b@sha256:{}", "A".repeat(64))));
    }

    fn pod(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).expect("pod spec")
    }

    #[test]
    fn security_lists_every_failure() {
        let p = pod(serde_json::json!({
            "hostNetwork": true, "hostPID": true,
            "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
            "containers": [{"name": "a", "image": "x:latest", "securityContext": {"privileged": true}}]
        }));
        let mut f = Vec::new();
        check_security(&p, &mut f);
        assert_eq!(f.len(), 5, "{f:?}");
        assert!(f.iter().any(|m| m.contains("privileged")));
        assert!(f.iter().any(|m| m.contains("hostPath")));
        assert!(f.iter().any(|m| m.contains("not pinned")));
    }

    #[test]
    fn resources_must_fit_the_spec() {
        let spec = pf_spec::parse_str(
            "a.yaml",
            "name: a\nversion: 1.0.0\nresources:\n  cpu: \"1\"\n  memory: 1Gi\n",
        )
        .expect("spec");
        let mk = |cpu: &str, mem: &str| {
            pod(serde_json::json!({"containers": [
                {"name": "a", "image": "x", "resources": {
                    "requests": {"cpu": cpu, "memory": mem}, "limits": {"cpu": cpu, "memory": mem}}},
                {"name": GUARD_CONTAINER, "image": "g", "resources": {
                    "requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "2", "memory": "4Gi"}}}
            ]}))
        };
        let mut f = Vec::new();
        check_resources(&mk("500m", "512Mi"), &spec, &mut f);
        assert!(f.is_empty(), "{f:?}");
        check_resources(&mk("1500m", "2Gi"), &spec, &mut f);
        assert_eq!(f.len(), 2, "{f:?}");
        let mut f = Vec::new();
        check_resources(
            &pod(serde_json::json!({"containers": [{"name": "a", "image": "x"}]})),
            &spec,
            &mut f,
        );
        assert_eq!(f.len(), 4, "{f:?}");
    }
}

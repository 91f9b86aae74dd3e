//! `pf admission certs`: a self-signed CA, a serving certificate for the webhook Service, and the
//! Validating/MutatingWebhookConfiguration (plus a deployment manifest) carrying the CA bundle.
//!
//! The configurations fail closed (`failurePolicy: Fail`) but cannot wedge a cluster: they only
//! select namespaces labelled `provability-fabric.io/admission=enabled`, and always exclude
//! `kube-system` and the webhook's own namespace.

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use serde_json::json;

/// Namespace label that opts a namespace in to admission.
pub const NAMESPACE_LABEL: &str = "provability-fabric.io/admission";
/// Label value that opts in.
pub const NAMESPACE_LABEL_VALUE: &str = "enabled";

/// Where the webhook runs.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    /// Service name.
    pub service: String,
    /// Namespace of the service (always excluded from admission).
    pub namespace: String,
    /// Extra DNS names / IPs for the serving certificate (e.g. `127.0.0.1` for local tests).
    pub extra_names: Vec<String>,
    /// Webhook timeout in seconds (1-30).
    pub timeout_seconds: u32,
}

/// Generated PEMs and manifests.
pub struct Generated {
    /// CA certificate (PEM); its base64 is the `caBundle`.
    pub ca_pem: String,
    /// Serving certificate (PEM).
    pub cert_pem: String,
    /// Serving private key (PEM, PKCS#8).
    pub key_pem: String,
    /// Validating + Mutating webhook configurations (multi-document YAML).
    pub webhooks_yaml: String,
}

/// Error generating certificates or manifests.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen failure.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// YAML rendering failure.
    #[error("rendering YAML: {0}")]
    Yaml(#[from] serde_saphyr::SerializeError),
    /// Invalid option.
    #[error("{0}")]
    Invalid(String),
}

/// Generates a CA (ECDSA P-256), a serving certificate for
/// `<service>.<namespace>.svc[.cluster.local]` signed by it, and the webhook configurations.
pub fn generate(target: &WebhookTarget) -> Result<Generated, CertError> {
    if !(1..=30).contains(&target.timeout_seconds) {
        return Err(CertError::Invalid(format!(
            "timeout {}s: Kubernetes allows 1-30 seconds",
            target.timeout_seconds
        )));
    }
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "provability-fabric admission CA");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let svc = format!("{}.{}.svc", target.service, target.namespace);
    let mut names = vec![svc.clone(), format!("{svc}.cluster.local")];
    names.extend(target.extra_names.iter().cloned());
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(names)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, svc);
    leaf.distinguished_name = dn;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &issuer)?;

    let ca_pem = ca_cert.pem();
    let webhooks_yaml = webhook_configurations(target, ca_pem.as_bytes())?;
    Ok(Generated {
        ca_pem,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        webhooks_yaml,
    })
}

fn namespace_selector(target: &WebhookTarget) -> serde_json::Value {
    json!({"matchExpressions": [
        {"key": NAMESPACE_LABEL, "operator": "In", "values": [NAMESPACE_LABEL_VALUE]},
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", target.namespace]},
    ]})
}

fn webhook(
    target: &WebhookTarget,
    name: &str,
    path: &str,
    ca_b64: &str,
    agent_deployments: bool,
) -> serde_json::Value {
    let mut rules = vec![
        json!({"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"}),
        json!({"apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"], "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"}),
    ];
    if agent_deployments {
        rules.push(json!({"apiGroups": [crate::crd::GROUP], "apiVersions": [crate::crd::VERSION], "resources": ["agentdeployments"], "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"}));
    }
    json!({
        "name": name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "timeoutSeconds": target.timeout_seconds,
        "clientConfig": {
            "service": {"name": target.service, "namespace": target.namespace, "path": path, "port": 443},
            "caBundle": ca_b64,
        },
        "namespaceSelector": namespace_selector(target),
        "rules": rules,
    })
}

/// The ValidatingWebhookConfiguration and MutatingWebhookConfiguration as YAML documents.
pub fn webhook_configurations(target: &WebhookTarget, ca_pem: &[u8]) -> Result<String, CertError> {
    let ca_b64 = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let validating = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "provability-fabric-validating"},
        "webhooks": [webhook(target, "validate.provability-fabric.io", "/validate", &ca_b64, true)],
    });
    let mut m = webhook(
        target,
        "mutate.provability-fabric.io",
        "/mutate",
        &ca_b64,
        false,
    );
    m["reinvocationPolicy"] = json!("Never");
    let mutating = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "provability-fabric-mutating"},
        "webhooks": [m],
    });
    Ok(format!(
        "{}---\n{}",
        serde_saphyr::to_string(&validating)?,
        serde_saphyr::to_string(&mutating)?
    ))
}

/// A manifest running the webhook in-cluster: Namespace, TLS Secret, bundle-store ConfigMap
/// placeholder-free PVC-less Deployment (the store is a volume the user provides), Service.
pub fn deployment_manifest(
    target: &WebhookTarget,
    image: &str,
    generated: &Generated,
) -> Result<String, CertError> {
    let ns = &target.namespace;
    let labels = json!({"app.kubernetes.io/name": target.service});
    let docs = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": format!("{}-tls", target.service), "namespace": ns},
            "stringData": {"tls.crt": generated.cert_pem, "tls.key": generated.key_pem}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": target.service, "namespace": ns},
            "spec": {"selector": labels, "ports": [{"port": 443, "targetPort": 8443}]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": target.service, "namespace": ns},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{
                "name": "webhook", "image": image,
                "args": ["admission", "serve", "--listen", "0.0.0.0:8443",
                    "--tls-cert", "/tls/tls.crt", "--tls-key", "/tls/tls.key",
                    "--store", "/store", "--trust-policy", "/store/trust-policy.json",
                    "--attestors", "/store/attestors.json", "--audit-log", "/audit/decisions.jsonl"],
                "ports": [{"containerPort": 8443}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8443, "scheme": "HTTPS"}},
                "volumeMounts": [
                    {"name": "tls", "mountPath": "/tls", "readOnly": true},
                    {"name": "store", "mountPath": "/store", "readOnly": true},
                    {"name": "audit", "mountPath": "/audit"}],
            }],
            "volumes": [
                {"name": "tls", "secret": {"secretName": format!("{}-tls", target.service)}},
                {"name": "store", "configMap": {"name": "pf-bundle-store"}},
                {"name": "audit", "emptyDir": {}}],
        }}}}),
    ];
    let mut out = String::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_saphyr::to_string(d)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> WebhookTarget {
        WebhookTarget {
            service: "pf-admission".into(),
            namespace: "pf-system".into(),
            extra_names: vec!["localhost".into()],
            timeout_seconds: 10,
        }
    }

    #[test]
    fn configs_fail_closed_and_exclude_system_namespaces() {
        let g = generate(&target()).expect("gen");
        assert!(g.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(g.key_pem.contains("PRIVATE KEY"));
        let docs: Vec<serde_json::Value> = g
            .webhooks_yaml
            .split("---\n")
            .map(|d| serde_saphyr::from_str(d).expect("yaml"))
            .collect();
        assert_eq!(docs.len(), 2);
        let ca_b64 = base64::engine::general_purpose::STANDARD.encode(g.ca_pem.as_bytes());
        for d in &docs {
            let w = &d["webhooks"][0];
            assert_eq!(w["failurePolicy"], "Fail");
            assert_eq!(w["clientConfig"]["caBundle"], ca_b64.as_str());
            let exprs = w["namespaceSelector"]["matchExpressions"]
                .as_array()
                .expect("exprs");
            assert!(
                exprs
                    .iter()
                    .any(|e| e["operator"] == "In" && e["key"] == NAMESPACE_LABEL)
            );
            let not_in = exprs
                .iter()
                .find(|e| e["operator"] == "NotIn")
                .expect("NotIn");
            assert_eq!(not_in["values"], json!(["kube-system", "pf-system"]));
        }
        assert_eq!(docs[0]["kind"], "ValidatingWebhookConfiguration");
        assert_eq!(docs[1]["kind"], "MutatingWebhookConfiguration");
    }

    #[test]
    fn bad_timeout_is_rejected() {
        let mut t = target();
        t.timeout_seconds = 31;
        assert!(generate(&t).is_err());
    }
}

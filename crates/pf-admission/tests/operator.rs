//! Operator reconcile logic against kube's typed objects, with the API client behind a tower
//! service that records every request and answers like the API server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use pf_admission::AgentDeployment;
use pf_admission::operator::{Context, FINALIZER, reconcile};
use serde_json::{Value, json};

type Calls = Arc<Mutex<Vec<(String, String, Value)>>>;

fn not_found() -> (u16, Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "not found", "reason": "NotFound", "code": 404}),
    )
}

/// A mock API server: records (method, path, body) and answers apply/patch by echoing the object.
fn mock(ready_replicas: i32, existing_deployment: bool) -> (kube::Client, Calls) {
    let calls: Calls = Arc::default();
    let rec = Arc::clone(&calls);
    let svc = tower::service_fn(move |req: Request<kube::client::Body>| {
        let rec = Arc::clone(&rec);
        async move {
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let bytes = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            rec.lock()
                .unwrap()
                .push((method.clone(), path.clone(), body.clone()));
            let (code, out) = match (method.as_str(), path.as_str()) {
                ("PATCH", p)
                    if p.ends_with("/deployments/coding-agent") && body.get("kind").is_some() =>
                {
                    let mut d = body.clone();
                    d["status"] = json!({"readyReplicas": ready_replicas});
                    (200, d)
                }
                ("PATCH", p) if p.ends_with("/configmaps/coding-agent-pf-spec") => {
                    (200, body.clone())
                }
                ("PATCH", p) if p.ends_with("/deployments/coding-agent") => (
                    200,
                    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "coding-agent"}}),
                ),
                ("PATCH", p)
                    if p.ends_with("/agentdeployments/coding-agent")
                        || p.ends_with("/agentdeployments/coding-agent/status") =>
                {
                    let mut ad = ad_object(true);
                    if let Some(s) = body.get("status") {
                        ad["status"] = s.clone();
                    }
                    (200, ad)
                }
                ("GET", p) if p.ends_with("/deployments/coding-agent") => {
                    if existing_deployment {
                        (
                            200,
                            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "coding-agent", "namespace": "dev-tools"}}),
                        )
                    } else {
                        not_found()
                    }
                }
                ("DELETE", p) if p.ends_with("/deployments/coding-agent") => (
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
                ),
                ("DELETE", _) => not_found(),
                _ => (
                    500,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": format!("unexpected {method} {path}"), "code": 500}),
                ),
            };
            let mut r = Response::new(Full::new(Bytes::from(out.to_string())));
            *r.status_mut() = http::StatusCode::from_u16(code).unwrap();
            r.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("application/json"),
            );
            Ok::<_, Infallible>(r)
        }
    });
    (kube::Client::new(svc, "default"), calls)
}

fn ad_object(with_finalizer: bool) -> Value {
    let fx_digest = DIGEST.with(|d| d.borrow().clone());
    let mut v = json!({
        "apiVersion": "provability-fabric.io/v1alpha1", "kind": "AgentDeployment",
        "metadata": {"name": "coding-agent", "namespace": "dev-tools", "uid": "c2b0a9c8-1111-2222-3333-444455556666", "generation": 3, "resourceVersion": "7"},
        "spec": {
            "bundle": {"digest": fx_digest},
            "replicas": 2,
            "agent": {"image": format!("registry.example/coding-agent@sha256:{}", "a".repeat(64)), "args": ["serve"]},
            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
        }
    });
    if with_finalizer {
        v["metadata"]["finalizers"] = json!([FINALIZER]);
    }
    v
}

thread_local! {
    static DIGEST: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

fn ctx(client: kube::Client, fx: &Fixture) -> Arc<Context> {
    Arc::new(Context {
        client,
        verifier: Arc::clone(&fx.verifier),
        guard: guard(),
        recheck: Duration::from_secs(300),
    })
}

fn setup() -> Fixture {
    let fx = fixture();
    DIGEST.with(|d| *d.borrow_mut() = format!("sha256:{}", fx.digest.to_hex()));
    fx
}

fn typed(v: Value) -> Arc<AgentDeployment> {
    Arc::new(serde_json::from_value(v).unwrap())
}

#[tokio::test(flavor = "current_thread")]
async fn first_reconcile_adds_the_finalizer_only() {
    let fx = setup();
    let (client, calls) = mock(0, false);
    reconcile(typed(ad_object(false)), ctx(client, &fx))
        .await
        .unwrap();
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let (m, p, body) = &calls[0];
    assert_eq!(
        (m.as_str(), p.as_str()),
        (
            "PATCH",
            "/apis/provability-fabric.io/v1alpha1/namespaces/dev-tools/agentdeployments/coding-agent"
        )
    );
    assert!(body.to_string().contains(FINALIZER), "{body}");
}

#[tokio::test(flavor = "current_thread")]
async fn verified_agent_gets_configmap_deployment_and_true_conditions() {
    let fx = setup();
    let (client, calls) = mock(2, false);
    reconcile(typed(ad_object(true)), ctx(client, &fx))
        .await
        .unwrap();
    let calls = calls.lock().unwrap();
    let paths: Vec<String> = calls.iter().map(|(m, p, _)| format!("{m} {p}")).collect();
    assert_eq!(
        paths,
        [
            "PATCH /api/v1/namespaces/dev-tools/configmaps/coding-agent-pf-spec",
            "PATCH /apis/apps/v1/namespaces/dev-tools/deployments/coding-agent",
            "PATCH /apis/provability-fabric.io/v1alpha1/namespaces/dev-tools/agentdeployments/coding-agent/status",
        ]
    );
    let cm = &calls[0].2;
    let spec_text =
        std::fs::read_to_string(examples_dir().join("coding-agent/agent.yaml")).unwrap();
    assert_eq!(cm["data"]["agent.yaml"], spec_text.as_str());
    assert_eq!(
        cm["metadata"]["ownerReferences"][0]["kind"],
        "AgentDeployment"
    );
    let dep = &calls[1].2;
    assert_eq!(dep["spec"]["replicas"], 2);
    let containers = dep["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[1]["name"], "pf-guard");
    assert_eq!(containers[1]["image"], guard_image().as_str());
    assert_eq!(
        dep["spec"]["template"]["metadata"]["annotations"]["provability-fabric.io/bundle-digest"],
        format!("sha256:{}", fx.digest.to_hex()).as_str()
    );
    let status = &calls[2].2["status"];
    let conds: Vec<(String, String)> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        conds,
        [
            ("Verified".into(), "True".into()),
            ("Admitted".into(), "True".into()),
            ("Ready".into(), "True".into())
        ]
    );
    let att = std::fs::read(fx.store.attestation_path(&fx.digest)).unwrap();
    assert_eq!(
        status["attestationDigest"],
        format!("sha256:{}", pf_bundle::Sha256Digest::of(&att).to_hex()).as_str()
    );
    assert_eq!(status["observedGeneration"], 3);
}

#[tokio::test(flavor = "current_thread")]
async fn replicas_not_ready_and_policy_violations_show_in_conditions() {
    let fx = setup();
    let (client, calls) = mock(1, false);
    reconcile(typed(ad_object(true)), ctx(client, &fx))
        .await
        .unwrap();
    let st = calls.lock().unwrap().last().unwrap().2["status"].clone();
    assert_eq!(st["conditions"][2]["status"], "False");
    assert_eq!(st["conditions"][2]["message"], "1/2 replicas ready");

    let (client, calls) = mock(2, false);
    let mut ad = ad_object(true);
    ad["metadata"]["namespace"] = json!("default");
    reconcile(typed(ad), ctx(client, &fx)).await.unwrap();
    let calls = calls.lock().unwrap();
    assert_eq!(
        calls.len(),
        1,
        "no workload for a non-admitted agent: {calls:?}"
    );
    let st = &calls[0].2["status"];
    assert_eq!(st["conditions"][0]["status"], "True");
    assert_eq!(st["conditions"][1]["status"], "False");
    assert!(
        st["conditions"][1]["message"]
            .as_str()
            .unwrap()
            .contains("namespace \"default\" is not allowed")
    );
}

#[tokio::test(flavor = "current_thread")]
async fn unverified_bundle_scales_existing_workload_to_zero() {
    let fx = setup();
    let (client, calls) = mock(2, true);
    let mut ad = ad_object(true);
    ad["spec"]["bundle"]["digest"] = json!(format!("sha256:{}", "d".repeat(64)));
    reconcile(typed(ad), ctx(client, &fx)).await.unwrap();
    let calls = calls.lock().unwrap();
    let paths: Vec<String> = calls.iter().map(|(m, p, _)| format!("{m} {p}")).collect();
    assert_eq!(
        paths,
        [
            "GET /apis/apps/v1/namespaces/dev-tools/deployments/coding-agent",
            "PATCH /apis/apps/v1/namespaces/dev-tools/deployments/coding-agent",
            "PATCH /apis/provability-fabric.io/v1alpha1/namespaces/dev-tools/agentdeployments/coding-agent/status",
        ]
    );
    assert_eq!(calls[1].2, json!({"spec": {"replicas": 0}}));
    let st = &calls[2].2["status"];
    assert_eq!(st["conditions"][0]["type"], "Verified");
    assert_eq!(st["conditions"][0]["status"], "False");
    assert!(
        st["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not found in the bundle store")
    );
}

#[tokio::test(flavor = "current_thread")]
async fn deletion_cleans_up_then_removes_the_finalizer() {
    let fx = setup();
    let (client, calls) = mock(2, true);
    let mut ad = ad_object(true);
    ad["metadata"]["deletionTimestamp"] = json!("2026-11-25T12:00:00Z");
    reconcile(typed(ad), ctx(client, &fx)).await.unwrap();
    let calls = calls.lock().unwrap();
    let paths: Vec<String> = calls.iter().map(|(m, p, _)| format!("{m} {p}")).collect();
    assert_eq!(
        paths,
        [
            "DELETE /apis/apps/v1/namespaces/dev-tools/deployments/coding-agent",
            "DELETE /api/v1/namespaces/dev-tools/configmaps/coding-agent-pf-spec",
            "PATCH /apis/provability-fabric.io/v1alpha1/namespaces/dev-tools/agentdeployments/coding-agent",
        ]
    );
    assert!(calls[2].2.to_string().contains("remove"), "{}", calls[2].2);
}

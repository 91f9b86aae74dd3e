//! End-to-end: a real HTTPS server on 127.0.0.1, AdmissionReview bodies shaped as the API server
//! sends them (fixtures/), signed example bundles built from examples/ via pf-bundle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use pf_admission::audit::{AuditError, DecisionLog, DecisionRecord};
use pf_admission::server::ServeOptions;
use pf_admission::{Admission, JsonlLog};
use serde_json::{Value, json};

fn set(review: &str, f: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(review).unwrap();
    f(&mut v["request"]["object"]);
    v.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allows_signed_attested_compliant_objects_and_audits_them() {
    let fx = fixture();
    let srv = start_server(Arc::clone(&fx.admission), ServeOptions::default()).await;
    let mut c = connect(&srv).await;
    for name in ["pod-agent.json", "agentdeployment.json"] {
        let (st, body) = c.post("/validate", &review(name, &fx.digest)).await;
        assert_eq!(st, 200);
        let (allowed, msg, _) = verdict(&body);
        assert!(allowed, "{name}: {msg}");
    }
    // The Deployment fixture has no sidecar: validation denies, mutation adds it, then it passes.
    let dep = review("deployment-agent.json", &fx.digest);
    let (_, body) = c.post("/validate", &dep).await;
    let (allowed, msg, _) = verdict(&body);
    assert!(
        !allowed && msg.contains("guard sidecar container \"pf-guard\" is missing"),
        "{msg}"
    );
    let (_, body) = c.post("/mutate", &dep).await;
    let (allowed, _, patch) = verdict(&body);
    assert!(allowed);
    let patch: json_patch::Patch = serde_json::from_value(patch.expect("patch")).unwrap();
    let mut v: Value = serde_json::from_str(&dep).unwrap();
    json_patch::patch(&mut v["request"]["object"], &patch).unwrap();
    let (_, body) = c.post("/validate", &v.to_string()).await;
    let (allowed, msg, _) = verdict(&body);
    assert!(allowed, "{msg}");

    let log = JsonlLog::read_all(&fx.audit_path).unwrap();
    let want = format!("sha256:{}", fx.digest.to_hex());
    assert_eq!(log.len(), 5);
    assert!(
        log.iter()
            .all(|r| r.bundle_digest.as_deref() == Some(want.as_str()))
    );
    assert_eq!(log.iter().filter(|r| !r.allowed).count(), 1);
    assert_eq!(log[0].uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_without_our_annotation_pass_untouched_and_unlogged() {
    let fx = fixture();
    let srv = start_server(Arc::clone(&fx.admission), ServeOptions::default()).await;
    let mut c = connect(&srv).await;
    let plain = review("pod-plain.json", &fx.digest);
    for path in ["/validate", "/mutate"] {
        let (st, body) = c.post(path, &plain).await;
        assert_eq!(st, 200);
        let (allowed, _, patch) = verdict(&body);
        assert!(allowed && patch.is_none());
    }
    assert!(JsonlLog::read_all(&fx.audit_path).unwrap().is_empty());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failed_check_is_named_in_the_deny_message() {
    let fx = fixture();
    let srv = start_server(Arc::clone(&fx.admission), ServeOptions::default()).await;
    let mut c = connect(&srv).await;
    let pod = review("pod-agent.json", &fx.digest);
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "privileged",
            Box::new(|o| {
                o["spec"]["containers"][0]["securityContext"] = json!({"privileged": true})
            }),
            "container \"agent\" is privileged",
        ),
        (
            "hostPath",
            Box::new(|o| {
                o["spec"]["volumes"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "root", "hostPath": {"path": "/"}}))
            }),
            "volume \"root\" is a hostPath volume",
        ),
        (
            "hostNetwork",
            Box::new(|o| o["spec"]["hostNetwork"] = json!(true)),
            "hostNetwork is not allowed",
        ),
        (
            "hostPID",
            Box::new(|o| o["spec"]["hostPID"] = json!(true)),
            "hostPID is not allowed",
        ),
        (
            "unpinned",
            Box::new(|o| {
                o["spec"]["containers"][0]["image"] = json!("registry.example/coding-agent:latest")
            }),
            "is not pinned by digest",
        ),
        (
            "no guard",
            Box::new(|o| {
                o["spec"]["containers"].as_array_mut().unwrap().remove(1);
            }),
            "guard sidecar container \"pf-guard\" is missing",
        ),
        (
            "guard image",
            Box::new(|o| {
                o["spec"]["containers"][1]["image"] =
                    json!(format!("evil/guard@sha256:{}", "c".repeat(64)))
            }),
            "guard sidecar image is",
        ),
        (
            "namespace",
            Box::new(|o| o["metadata"]["namespace"] = json!("default")),
            "",
        ),
        (
            "cpu over spec",
            Box::new(|o| o["spec"]["containers"][0]["resources"]["limits"]["cpu"] = json!("3")),
            "agent cpu limits total 3000m, above the spec's 2",
        ),
        (
            "memory over spec",
            Box::new(|o| {
                o["spec"]["containers"][0]["resources"]["limits"]["memory"] = json!("3Gi")
            }),
            "agent memory limits total",
        ),
        (
            "no resources",
            Box::new(|o| o["spec"]["containers"][0]["resources"] = json!({})),
            "container \"agent\" has no cpu request",
        ),
        (
            "request > limit",
            Box::new(|o| {
                o["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("1500m")
            }),
            "cpu request exceeds its limit",
        ),
        (
            "agent name",
            Box::new(|o| {
                o["metadata"]["annotations"]["provability-fabric.io/agent"] = json!("support-agent")
            }),
            "the bundle is agent \"coding-agent\"",
        ),
        (
            "bad digest",
            Box::new(|o| {
                o["metadata"]["annotations"]["provability-fabric.io/bundle-digest"] =
                    json!("latest")
            }),
            "must be written sha256:<64 hex>",
        ),
        (
            "unknown bundle",
            Box::new(|o| {
                o["metadata"]["annotations"]["provability-fabric.io/bundle-digest"] =
                    json!(format!("sha256:{}", "d".repeat(64)))
            }),
            "bundle not found in the bundle store",
        ),
    ];
    for (name, edit, want) in &cases {
        let body = set(&pod, |o| edit(o));
        // The namespace check reads the request's namespace, as the API server sets it.
        let body = if *name == "namespace" {
            let mut v: Value = serde_json::from_str(&body).unwrap();
            v["request"]["namespace"] = json!("default");
            v.to_string()
        } else {
            body
        };
        let (st, resp) = c.post("/validate", &body).await;
        assert_eq!(st, 200, "{name}");
        let (allowed, msg, _) = verdict(&resp);
        assert!(!allowed, "{name} was allowed");
        let want = if *name == "namespace" {
            "namespace \"default\" is not allowed by the spec (allowed: dev-tools)"
        } else {
            want
        };
        assert!(msg.contains(want), "{name}: {msg}");
    }
    // Several failures at once: every one is listed.
    let body = set(&pod, |o| {
        o["spec"]["hostNetwork"] = json!(true);
        o["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
        o["spec"]["containers"][0]["image"] = json!("x:1");
    });
    let (_, resp) = c.post("/validate", &body).await;
    let (allowed, msg, _) = verdict(&resp);
    assert!(!allowed);
    assert!(msg.contains("3 failed check(s)"), "{msg}");
    let log = JsonlLog::read_all(&fx.audit_path).unwrap();
    assert_eq!(log.len(), cases.len() + 1);
    assert_eq!(log.last().unwrap().reasons.len(), 3);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_signature_and_attestation_failures_deny() {
    let fx = fixture();
    let (archive, _) = build_signed("support-agent");
    // support-agent signed by a key outside the coding-agent trust policy, no attestation.
    let stranger = pf_bundle::keys::generate();
    let env =
        pf_bundle::sign_bundle(&archive, &stranger, None, &pf_bundle::Limits::default()).unwrap();
    let d_untrusted = fx.store.put(&archive, &env, None).unwrap();
    let srv = start_server(Arc::clone(&fx.admission), ServeOptions::default()).await;
    let mut c = connect(&srv).await;
    let with_digest = |d: &pf_bundle::Sha256Digest| {
        set(&review("agentdeployment.json", &fx.digest), |o| {
            o["spec"]["bundle"]["digest"] = json!(format!("sha256:{}", d.to_hex()))
        })
    };
    let (_, resp) = c.post("/validate", &with_digest(&d_untrusted)).await;
    let (allowed, msg, _) = verdict(&resp);
    assert!(!allowed);
    assert!(msg.contains("signature check failed"), "{msg}");
    assert!(msg.contains("verification attestation not found"), "{msg}");
    assert!(msg.contains("2 failed check(s)"), "{msg}");

    // Attestation for another digest, and one by an untrusted attestor.
    std::fs::write(
        fx.store.attestation_path(&d_untrusted),
        attestation(&fx.attestor, &fx.digest),
    )
    .unwrap();
    let (_, resp) = c.post("/validate", &with_digest(&d_untrusted)).await;
    let (_, msg, _) = verdict(&resp);
    assert!(msg.contains("does not cover bundle"), "{msg}");
    std::fs::write(
        fx.store.attestation_path(&d_untrusted),
        attestation(&stranger, &d_untrusted),
    )
    .unwrap();
    let (_, resp) = c.post("/validate", &with_digest(&d_untrusted)).await;
    let (_, msg, _) = verdict(&resp);
    assert!(msg.contains("attestation signatures"), "{msg}");

    // AgentDeployment naming a different attestation digest than the store holds.
    let body = set(&review("agentdeployment.json", &fx.digest), |o| {
        o["spec"]["attestation"] = json!({"digest": format!("sha256:{}", "e".repeat(64))})
    });
    let (_, resp) = c.post("/validate", &body).await;
    let (allowed, msg, _) = verdict(&resp);
    assert!(
        !allowed && msg.contains("the AgentDeployment names sha256:eeee"),
        "{msg}"
    );
    // AgentDeployment-specific checks: unpinned image, over-limit resources, disallowed namespace.
    let body = set(&review("agentdeployment.json", &fx.digest), |o| {
        o["spec"]["agent"]["image"] = json!("a:latest");
        o["spec"]["resources"]["limits"]["memory"] = json!("4Gi");
    });
    let (_, resp) = c.post("/validate", &body).await;
    let (allowed, msg, _) = verdict(&resp);
    assert!(
        !allowed && msg.contains("not pinned") && msg.contains("agent memory limits total"),
        "{msg}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_bundles_are_cached_by_digest() {
    let fx = fixture();
    let srv = start_server(Arc::clone(&fx.admission), ServeOptions::default()).await;
    let mut c = connect(&srv).await;
    let pod = review("pod-agent.json", &fx.digest);
    let (_, body) = c.post("/validate", &pod).await;
    assert!(verdict(&body).0);
    assert_eq!(fx.verifier.cached(), 1);
    // With the store emptied, the warm cache still answers (no I/O on the hot path) ...
    std::fs::remove_dir_all(fx.dir.path().join("store")).unwrap();
    let (_, body) = c.post("/validate", &pod).await;
    assert!(verdict(&body).0);
    // ... and clearing it makes the missing bundle visible again.
    fx.verifier.clear_cache();
    let (_, body) = c.post("/validate", &pod).await;
    let (allowed, msg, _) = verdict(&body);
    assert!(
        !allowed && msg.contains("not found in the bundle store"),
        "{msg}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversize_wrong_version_unknown_kind_and_routes() {
    let fx = fixture();
    let opts = ServeOptions {
        max_body: 64 * 1024,
        ..ServeOptions::default()
    };
    let srv = start_server(Arc::clone(&fx.admission), opts).await;
    let mut c = connect(&srv).await;
    let (st, body) = c.post("/validate", "{not json").await;
    assert_eq!(st, 400);
    assert!(String::from_utf8_lossy(&body).contains("malformed AdmissionReview"));
    let (st, body) = c
        .post("/validate", &review("pod-v1beta1.json", &fx.digest))
        .await;
    assert_eq!(st, 400);
    assert!(String::from_utf8_lossy(&body).contains("admission.k8s.io/v1beta1"));
    // The server answers 413 before reading an oversize body and closes the connection; the
    // client may see the 413 or, if still writing, a reset. Never a decision.
    let mut big = connect(&srv).await;
    match big
        .try_request("/validate", vec![b' '; 64 * 1024 + 1])
        .await
    {
        Ok(st) => assert_eq!(st, 413),
        Err(e) => assert!(!e.is_parse(), "{e}"),
    }
    // A fresh connection for the remaining checks.
    let mut c = connect(&srv).await;
    // Unknown kinds are denied (fail closed), with the kind named.
    let mut v: Value = serde_json::from_str(&review("pod-plain.json", &fx.digest)).unwrap();
    v["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
    let (st, body) = c.post("/validate", &v.to_string()).await;
    assert_eq!(st, 200);
    let (allowed, msg, _) = verdict(&body);
    assert!(
        !allowed && msg.contains("unsupported kind /v1 ConfigMap"),
        "{msg}"
    );
    let (st, _) = c.request("GET", "/validate", vec![], None).await;
    assert_eq!(st, 405);
    let (st, _) = c.request("POST", "/nope", vec![], None).await;
    assert_eq!(st, 404);
    let (st, _) = c
        .request("POST", "/validate", b"{}".to_vec(), Some("text/plain"))
        .await;
    assert_eq!(st, 415);
    // Still serving on the same and on new connections.
    let (st, body) = c.request("GET", "/healthz", vec![], None).await;
    assert_eq!((st, body.as_slice()), (200, b"ok".as_slice()));
    let mut c2 = connect(&srv).await;
    let (_, body) = c2
        .post("/validate", &review("pod-agent.json", &fx.digest))
        .await;
    assert!(verdict(&body).0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_the_server_stays_up() {
    use tokio::io::AsyncReadExt;
    let fx = fixture();
    let opts = ServeOptions {
        request_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    let srv = start_server(Arc::clone(&fx.admission), opts).await;
    // A client that connects and never starts TLS is dropped after the timeout.
    let mut idle = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(30), idle.read(&mut buf))
        .await
        .expect("server closed the idle connection");
    assert!(matches!(n, Ok(0) | Err(_)));
    let mut c = connect(&srv).await;
    let (_, body) = c
        .post("/validate", &review("pod-agent.json", &fx.digest))
        .await;
    assert!(verdict(&body).0);
    srv.stop().await;
}

struct BrokenLog;
impl DecisionLog for BrokenLog {
    fn append(&self, _: &DecisionRecord) -> Result<u64, AuditError> {
        Err(AuditError::Backend("disk full".into()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrecorded_decisions_are_denied() {
    let fx = fixture();
    let adm = Arc::new(Admission::new(
        Arc::clone(&fx.verifier),
        guard(),
        Arc::new(BrokenLog),
    ));
    let srv = start_server(adm, ServeOptions::default()).await;
    let mut c = connect(&srv).await;
    let (_, body) = c
        .post("/validate", &review("pod-agent.json", &fx.digest))
        .await;
    let (allowed, msg, _) = verdict(&body);
    assert!(
        !allowed && msg.contains("could not be recorded") && msg.contains("disk full"),
        "{msg}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutation_injects_once_and_dry_runs_are_flagged() {
    let fx = fixture();
    let srv = start_server(Arc::clone(&fx.admission), ServeOptions::default()).await;
    let mut c = connect(&srv).await;
    // A pod without the sidecar and without volumes.
    let bare = set(&review("pod-agent.json", &fx.digest), |o| {
        o["spec"]["containers"].as_array_mut().unwrap().remove(1);
        o["spec"].as_object_mut().unwrap().remove("volumes");
    });
    let (_, body) = c.post("/mutate", &bare).await;
    let (allowed, _, patch) = verdict(&body);
    assert!(allowed);
    let patch_v = patch.expect("patch");
    assert_eq!(patch_v.as_array().unwrap().len(), 2, "{patch_v}");
    assert_eq!(patch_v[0]["path"], "/spec/containers/-");
    assert_eq!(patch_v[1]["path"], "/spec/volumes");
    let mut v: Value = serde_json::from_str(&bare).unwrap();
    json_patch::patch(
        &mut v["request"]["object"],
        &serde_json::from_value::<json_patch::Patch>(patch_v).unwrap(),
    )
    .unwrap();
    let spec = &v["request"]["object"]["spec"];
    let vols: Vec<&str> = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(vols, ["pf-spec", "pf-guard-state"], "{spec}");
    let guard = &spec["containers"][1];
    assert_eq!(guard["name"], "pf-guard");
    let args = guard["args"].to_string();
    assert!(
        args.contains("--upstream") && args.contains("http://127.0.0.1:8080/mcp"),
        "{args}"
    );
    assert!(args.contains("/var/run/pf-guard/decisions.jsonl"), "{args}");
    let patched = v.to_string();
    // Mutating the result again is a no-op, and the result validates.
    let (_, body) = c.post("/mutate", &patched).await;
    let (allowed, _, patch) = verdict(&body);
    assert!(allowed && patch.is_none());
    let (_, body) = c.post("/validate", &patched).await;
    let (allowed, msg, _) = verdict(&body);
    assert!(allowed, "{msg}");
    // An unverified bundle gets no sidecar (validation will deny it).
    let unknown = set(&bare, |o| {
        o["metadata"]["annotations"]["provability-fabric.io/bundle-digest"] =
            json!(format!("sha256:{}", "d".repeat(64)))
    });
    let (_, body) = c.post("/mutate", &unknown).await;
    assert!(verdict(&body).2.is_none());
    // Dry runs are decided the same way and flagged in the log.
    let mut v: Value = serde_json::from_str(&patched).unwrap();
    v["request"]["dryRun"] = json!(true);
    let (_, body) = c.post("/validate", &v.to_string()).await;
    assert!(verdict(&body).0);
    let log = JsonlLog::read_all(&fx.audit_path).unwrap();
    assert!(log.last().unwrap().dry_run);
    srv.stop().await;
}

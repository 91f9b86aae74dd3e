//! The operator: reconciles each `AgentDeployment` into a ConfigMap holding the agent spec and a
//! Deployment running the agent with the guard sidecar, records `Verified`/`Admitted`/`Ready`
//! conditions, re-checks periodically (bundle store or policy changes), and removes what it made
//! behind a finalizer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use crate::crd::{ADMITTED, AgentDeployment, AgentDeploymentStatus, Condition, READY, VERIFIED};
use crate::policy::{self, GuardConfig};
use crate::store::{Verifier, parse_digest_ref};
use crate::webhook::{BUNDLE_ANNOTATION, guard_container, guard_volumes};

/// Finalizer name.
pub const FINALIZER: &str = "provability-fabric.io/cleanup";
/// Field manager for server-side apply.
pub const MANAGER: &str = "pf-operator";
/// Label linking managed objects to their AgentDeployment.
pub const OWNER_LABEL: &str = "provability-fabric.io/agent-deployment";

/// Shared state of the reconciler.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Bundle verifier (same store, policy and cache as the webhook).
    pub verifier: Arc<Verifier>,
    /// Guard sidecar.
    pub guard: GuardConfig,
    /// How often an AgentDeployment is re-checked without changes.
    pub recheck: Duration,
}

/// Reconcile failure.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Kubernetes API error.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Object without the namespace/name a namespaced resource needs.
    #[error("object is missing {0}")]
    Missing(&'static str),
    /// Building a manifest failed.
    #[error("manifest: {0}")]
    Manifest(#[from] serde_json::Error),
    /// Finalizer helper failure.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

/// Name of the ConfigMap holding the spec of AgentDeployment `name`.
pub fn configmap_name(name: &str) -> String {
    format!("{name}-pf-spec")
}

fn cond(type_: &str, ok: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message,
        last_transition_time: None,
    }
}

/// The object's name (every object the API server stores has one).
fn name_of(ad: &AgentDeployment) -> Result<String, ReconcileError> {
    ad.metadata
        .name
        .clone()
        .ok_or(ReconcileError::Missing("metadata.name"))
}

/// The ConfigMap carrying the verified spec bytes.
pub fn desired_configmap(
    ad: &AgentDeployment,
    spec_bytes: &[u8],
) -> Result<ConfigMap, ReconcileError> {
    let name = name_of(ad)?;
    let owner = ad
        .controller_owner_ref(&())
        .ok_or(ReconcileError::Missing("metadata.uid"))?;
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": configmap_name(&name), "namespace": ad.namespace(),
            "labels": {OWNER_LABEL: name}, "ownerReferences": [owner]},
        "data": {"agent.yaml": String::from_utf8_lossy(spec_bytes)},
    }))?)
}

/// The Deployment running the agent container plus the guard sidecar.
pub fn desired_deployment(
    ad: &AgentDeployment,
    guard: &GuardConfig,
) -> Result<Deployment, ReconcileError> {
    let name = name_of(ad)?;
    let owner = ad
        .controller_owner_ref(&())
        .ok_or(ReconcileError::Missing("metadata.uid"))?;
    let s = &ad.spec;
    let labels: BTreeMap<&str, &str> = [(OWNER_LABEL, name.as_str())].into();
    let mut agent = serde_json::json!({"name": "agent", "image": s.agent.image, "resources": s.resources,
        "securityContext": {"allowPrivilegeEscalation": false}});
    if !s.agent.command.is_empty() {
        agent["command"] = serde_json::json!(s.agent.command);
    }
    if !s.agent.args.is_empty() {
        agent["args"] = serde_json::json!(s.agent.args);
    }
    if !s.agent.env.is_empty() {
        agent["env"] = serde_json::json!(s.agent.env);
    }
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ad.namespace(), "labels": labels, "ownerReferences": [owner]},
        "spec": {
            "replicas": s.replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {BUNDLE_ANNOTATION: s.bundle.digest}},
                "spec": {
                    "containers": [agent, guard_container(guard)],
                    "volumes": guard_volumes(&configmap_name(&name)),
                },
            },
        },
    }))?)
}

/// Checks an AgentDeployment: bundle verification, then namespace and resources against the spec.
/// Returns (verified, admitted-failures, spec bytes, attestation digest).
fn check(
    ad: &AgentDeployment,
    verifier: &Verifier,
) -> (
    Result<Arc<crate::store::VerifiedAgent>, Vec<String>>,
    Vec<String>,
) {
    let expected_att = ad
        .spec
        .attestation
        .as_ref()
        .and_then(|a| parse_digest_ref(&a.digest).ok());
    let verified = parse_digest_ref(&ad.spec.bundle.digest)
        .map_err(|e| vec![format!("bundle digest: {e}")])
        .and_then(|d| verifier.verify(&d, expected_att.as_ref()));
    let mut failed = Vec::new();
    if let Ok(agent) = &verified {
        policy::check_namespace(
            &agent.spec,
            &ad.namespace().unwrap_or_default(),
            &mut failed,
        );
        if !policy::image_pinned(&ad.spec.agent.image) {
            failed.push(format!(
                "agent image {:?} is not pinned by digest",
                ad.spec.agent.image
            ));
        }
        match serde_json::from_value::<PodSpec>(
            serde_json::json!({"containers": [{"name": "agent", "image": ad.spec.agent.image, "resources": ad.spec.resources}]}),
        ) {
            Ok(pod) => policy::check_resources(&pod, &agent.spec, &mut failed),
            Err(e) => failed.push(format!("resources: {e}")),
        }
    }
    (verified, failed)
}

/// Creates or updates what `ad` needs and returns its new status (no finalizer handling).
pub async fn apply(
    ad: &AgentDeployment,
    ctx: &Context,
) -> Result<AgentDeploymentStatus, ReconcileError> {
    let ns = ad
        .namespace()
        .ok_or(ReconcileError::Missing("metadata.namespace"))?;
    let name = name_of(ad)?;
    let (verified, failed) = check(ad, &ctx.verifier);
    let mut status = AgentDeploymentStatus {
        bundle_digest: Some(ad.spec.bundle.digest.clone()),
        observed_generation: ad.metadata.generation,
        ..Default::default()
    };
    let pp = PatchParams::apply(MANAGER).force();
    match verified {
        Err(reasons) => {
            let msg = reasons.join("; ");
            status.conditions = vec![
                cond(VERIFIED, false, "VerificationFailed", msg.clone()),
                cond(ADMITTED, false, "NotVerified", msg),
                cond(
                    READY,
                    false,
                    "NotAdmitted",
                    "no workload is run for an unverified bundle".into(),
                ),
            ];
            // Fail closed: scale any existing workload of ours to zero.
            let deps: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
            if deps.get_opt(&name).await?.is_some() {
                deps.patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"spec": {"replicas": 0}})),
                )
                .await?;
            }
        }
        Ok(agent) => {
            status.attestation_digest =
                Some(format!("sha256:{}", agent.attestation_digest.to_hex()));
            let signers = agent.signers.join(", ");
            status.conditions.push(cond(
                VERIFIED,
                true,
                "Verified",
                format!("signed by {signers}; attestation valid"),
            ));
            if !failed.is_empty() {
                let msg = failed.join("; ");
                status
                    .conditions
                    .push(cond(ADMITTED, false, "PolicyViolation", msg));
                status
                    .conditions
                    .push(cond(READY, false, "NotAdmitted", "not admitted".into()));
            } else {
                status.conditions.push(cond(
                    ADMITTED,
                    true,
                    "Admitted",
                    "all admission checks passed".into(),
                ));
                let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
                cms.patch(
                    &configmap_name(&name),
                    &pp,
                    &Patch::Apply(desired_configmap(ad, &agent.spec_bytes)?),
                )
                .await?;
                let deps: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
                let d = deps
                    .patch(
                        &name,
                        &pp,
                        &Patch::Apply(desired_deployment(ad, &ctx.guard)?),
                    )
                    .await?;
                let ready = d
                    .status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0);
                status.ready_replicas = ready;
                let ok = ready >= ad.spec.replicas;
                status.conditions.push(cond(
                    READY,
                    ok,
                    if ok {
                        "ReplicasReady"
                    } else {
                        "ReplicasNotReady"
                    },
                    format!("{ready}/{} replicas ready", ad.spec.replicas),
                ));
            }
        }
    }
    let ads: Api<AgentDeployment> = Api::namespaced(ctx.client.clone(), &ns);
    ads.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": status})),
    )
    .await?;
    Ok(status)
}

/// Deletes what `ad` made (the finalizer's cleanup); missing objects are fine.
pub async fn cleanup(ad: &AgentDeployment, ctx: &Context) -> Result<(), ReconcileError> {
    let ns = ad
        .namespace()
        .ok_or(ReconcileError::Missing("metadata.namespace"))?;
    let name = name_of(ad)?;
    let dp = DeleteParams::background();
    let deps: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    deps.delete(&name, &dp)
        .await
        .map(|_| ())
        .or_else(not_found)?;
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    cms.delete(&configmap_name(&name), &dp)
        .await
        .map(|_| ())
        .or_else(not_found)?;
    Ok(())
}

fn not_found(e: kube::Error) -> Result<(), kube::Error> {
    match &e {
        kube::Error::Api(s) if s.code == 404 => Ok(()),
        _ => Err(e),
    }
}

/// One reconcile: finalizer handling, then [`apply`] or [`cleanup`].
pub async fn reconcile(
    ad: Arc<AgentDeployment>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let ns = ad
        .namespace()
        .ok_or(ReconcileError::Missing("metadata.namespace"))?;
    let api: Api<AgentDeployment> = Api::namespaced(ctx.client.clone(), &ns);
    let recheck = ctx.recheck;
    finalizer(&api, FINALIZER, ad, |event| async {
        match event {
            Event::Apply(ad) => apply(&ad, &ctx).await.map(|_| Action::requeue(recheck)),
            Event::Cleanup(ad) => cleanup(&ad, &ctx).await.map(|()| Action::await_change()),
        }
    })
    .await
    .map_err(|e| ReconcileError::Finalizer(e.to_string()))
}

fn error_policy(_ad: Arc<AgentDeployment>, _e: &ReconcileError, _ctx: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(15))
}

/// Runs the controller until interrupted (watches AgentDeployments and the Deployments they own).
pub async fn run(ctx: Arc<Context>) {
    let ads: Api<AgentDeployment> = Api::all(ctx.client.clone());
    let deps: Api<Deployment> = Api::all(ctx.client.clone());
    Controller::new(ads, watcher::Config::default())
        .owns(deps, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                eprintln!("pf operator: reconcile failed: {e}");
            }
        })
        .await;
}

/// Connects with the ambient kube config (in-cluster or `~/.kube/config`) and runs the
/// controller until interrupted.
pub fn run_blocking(
    verifier: Arc<Verifier>,
    guard: GuardConfig,
    recheck: Duration,
) -> Result<(), ReconcileError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ReconcileError::Finalizer(format!("runtime: {e}")))?;
    rt.block_on(async {
        let client = Client::try_default().await.map_err(ReconcileError::Kube)?;
        run(Arc::new(Context {
            client,
            verifier,
            guard,
            recheck,
        }))
        .await;
        Ok(())
    })
}

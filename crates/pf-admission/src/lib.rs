//! `pf-admission`: Kubernetes admission for Provability Fabric. Nothing runs in a cluster unless
//! its bundle is signed (k-of-n), covered by a verification attestation for exactly its digest,
//! and within its spec's policy and resource limits. The crate holds the `AgentDeployment` CRD
//! ([`crd`]), the AdmissionReview decoder ([`review`]), the checks ([`policy`], [`store`],
//! [`attest`]), the validating and mutating decisions ([`webhook`]) served over HTTPS
//! ([`server`]), the certificate and webhook-configuration generator ([`certs`]), the operator
//! ([`operator`]) and the decision audit log ([`audit`]). See `docs/admission.md`.

pub mod attest;
pub mod audit;
pub mod certs;
pub mod crd;
pub mod operator;
pub mod policy;
pub mod review;
pub mod server;
pub mod store;
pub mod webhook;

pub use attest::{AttestationCheck, DsseAttestationCheck, VERIFICATION_PREDICATE_TYPE};
pub use audit::{DecisionLog, DecisionRecord, JsonlLog};
pub use crd::{AgentDeployment, AgentDeploymentSpec, AgentDeploymentStatus};
pub use policy::GuardConfig;
pub use review::{DecodeError, decode_review};
pub use store::{BundleStore, Reverify, Verifier};
pub use webhook::Admission;

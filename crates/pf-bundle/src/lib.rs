//! `pf-bundle`: reproducible, signed agent bundles for Provability Fabric.
//!
//! A bundle (`NAME-VERSION.pfb`) is a deterministic gzip-compressed ustar archive holding an
//! agent spec and every file it references, with a canonical JSON manifest of sha256 digests as
//! its first entry; the bundle digest is the sha256 of the archive bytes. This crate builds
//! bundles ([`BundleBuilder`], [`build_from_dir`]), opens untrusted ones under size limits with
//! every entry checked ([`open`]), signs them with DSSE envelopes carrying in-toto Statement v1
//! payloads ([`sign_bundle`], generic [`Statement`] / [`Envelope`]), and verifies them against a
//! k-of-n [`TrustPolicy`], one at a time or batched ([`verify_bundle`], [`batch`]).
//! The format is described in `docs/bundle.md`.

pub mod batch;
pub mod build;
pub mod digest;
pub mod dsse;
pub mod intoto;
pub mod keys;
pub mod limits;
pub mod manifest;
pub mod open;
pub mod path;
pub mod sign;
pub mod trust;
pub mod write;

pub use build::{BuildError, BuiltBundle, BundleBuilder, build_from_dir};
pub use digest::Sha256Digest;
pub use dsse::{DsseError, Envelope, EnvelopeSignature, IN_TOTO_PAYLOAD_TYPE};
pub use intoto::{Statement, StatementError, Subject};
pub use keys::KeyError;
pub use limits::Limits;
pub use manifest::{FileEntry, Manifest};
pub use open::{OpenError, OpenedBundle, open, open_file};
pub use path::{BundlePath, MANIFEST_PATH, SPEC_PATH};
pub use sign::{
    BUNDLE_PREDICATE_TYPE, BundlePredicate, SignError, VerifiedBundle, VerifyError,
    bundle_statement, sign_bundle, verify_bundle,
};
pub use trust::{PolicyError, TrustPolicy, TrustedKey};
pub use write::write_atomic;

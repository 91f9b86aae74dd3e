//! `pf-ledger`: the Provability Fabric transparency log.
//!
//! An append-only RFC 9162 Merkle log of canonical-JSON decision records, stored in the C2SP
//! tlog-tiles layout and committed to by C2SP signed-note checkpoints, so that anyone can audit
//! it with inclusion and consistency proofs. The Merkle core ([`merkle`]) is pure and does no I/O.

pub mod checkpoint;
pub mod client;
pub mod cosignature;
pub mod dir;
pub mod edge;
pub mod hash;
pub mod ledger;
pub mod merkle;
pub mod note;
pub mod record;
#[cfg(feature = "net")]
pub mod server;
pub mod shards;
pub mod storage;
pub mod tiles;
pub mod verified;
pub mod view;
pub mod witness;

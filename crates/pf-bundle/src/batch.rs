//! Batch verification of many envelopes: all candidate signatures are checked with Ed25519 batch
//! verification in chunks; a chunk that fails is re-checked one signature at a time, so a single
//! bad signature is identified without rejecting its neighbours.

use std::collections::BTreeSet;

use ed25519_dalek::{Signature, VerifyingKey, verify_batch};

use crate::dsse::{DsseError, Envelope, IN_TOTO_PAYLOAD_TYPE, r_is_acceptable, tally, verify_one};
use crate::limits::Limits;
use crate::sign::{VerifiedBundle, VerifyError, check_statement};
use crate::trust::TrustPolicy;

/// Signatures per batch: large enough for the multiscalar speed-up, small enough that one bad
/// signature only sends a bounded number back to one-by-one checking.
pub const BATCH_CHUNK: usize = 128;

/// One signature to check.
struct Item {
    envelope: usize,
    key: usize,
    sig: Signature,
}

/// Verifies each envelope against `policy` (same semantics as [`Envelope::verify`]), using batch
/// verification. Returns one result per envelope, in order.
pub fn verify_envelopes(
    envelopes: &[&Envelope],
    expected_type: &str,
    policy: &TrustPolicy,
) -> Vec<Result<Vec<String>, DsseError>> {
    let mut results: Vec<Option<DsseError>> = Vec::with_capacity(envelopes.len());
    let mut messages: Vec<Vec<u8>> = Vec::with_capacity(envelopes.len());
    let mut items: Vec<Item> = Vec::new();
    for (i, env) in envelopes.iter().enumerate() {
        messages.push(Vec::new());
        if let Err(e) = env.check_type(expected_type) {
            results.push(Some(e));
            continue;
        }
        results.push(None);
        messages[i] = env.pae();
        for c in env.candidates(policy) {
            // A bad R can never verify strictly; keep it out of the batch equation.
            if r_is_acceptable(&c.sig) {
                items.push(Item {
                    envelope: i,
                    key: c.key,
                    sig: c.sig,
                });
            }
        }
    }

    let mut valid: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); envelopes.len()];
    for chunk in items.chunks(BATCH_CHUNK) {
        let msgs: Vec<&[u8]> = chunk
            .iter()
            .map(|it| messages[it.envelope].as_slice())
            .collect();
        let sigs: Vec<Signature> = chunk.iter().map(|it| it.sig).collect();
        let keys: Vec<VerifyingKey> = chunk.iter().map(|it| policy.keys()[it.key].key).collect();
        let all_ok = verify_batch(&msgs, &sigs, &keys).is_ok();
        for (it, msg) in chunk.iter().zip(&msgs) {
            if all_ok || verify_one(&keys_of(policy, it.key), msg, &it.sig) {
                valid[it.envelope].insert(it.key);
            }
        }
    }

    results
        .into_iter()
        .zip(valid)
        .map(|(early, valid)| match early {
            Some(e) => Err(e),
            None => tally(policy, &valid),
        })
        .collect()
}

fn keys_of(policy: &TrustPolicy, i: usize) -> VerifyingKey {
    policy.keys()[i].key
}

/// Verifies many bundles (archive, envelope) with batched signature checks, then the per-bundle
/// digest checks of [`crate::verify_bundle`]. One result per pair, in order.
pub fn verify_bundles(
    items: &[(&[u8], &Envelope)],
    policy: &TrustPolicy,
    limits: &Limits,
) -> Vec<Result<VerifiedBundle, VerifyError>> {
    let envs: Vec<&Envelope> = items.iter().map(|(_, e)| *e).collect();
    verify_envelopes(&envs, IN_TOTO_PAYLOAD_TYPE, policy)
        .into_iter()
        .zip(items)
        .map(|(sig, (archive, env))| check_statement(archive, env, sig?, limits))
        .collect()
}

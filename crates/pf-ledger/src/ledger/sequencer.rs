//! The sequencer thread: collects appends into batches (max size, max delay), writes the
//! batch's tiles durably, signs and commits the new checkpoint, and only then acknowledges.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::Instant;

use super::{Job, LedgerError, Shared, Snapshot, sign_checkpoint};
use crate::note::SignerKey;
use crate::storage::StorageError;

/// Spawns the sequencer for `shared`.
pub(super) fn start(
    shared: Arc<Shared>,
    signer: SignerKey,
) -> Result<(SyncSender<Job>, JoinHandle<()>), LedgerError> {
    let (tx, rx) = sync_channel::<Job>(shared.config.max_pending.max(1));
    let worker = std::thread::Builder::new()
        .name("pf-ledger-sequencer".into())
        .spawn(move || run(&shared, &signer, &rx))
        .map_err(|e| LedgerError::CommitFailed(format!("cannot start sequencer: {e}")))?;
    Ok((tx, worker))
}

fn run(shared: &Shared, signer: &SignerKey, rx: &Receiver<Job>) {
    let max_batch = shared.config.max_batch.max(1);
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + shared.config.max_delay;
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(j) => {
                    batch.push(j);
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match rx.recv_timeout(deadline - now) {
                Ok(j) => batch.push(j),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        integrate(shared, signer, batch);
    }
}

/// Integrates one batch; every job gets its index, or all get the same error.
fn integrate(shared: &Shared, signer: &SignerKey, batch: Vec<Job>) {
    let mut result = commit(shared, signer, &batch);
    // Another sequencer sharing the storage (PostgreSQL front ends) got there first: catch up
    // with its checkpoint and integrate this batch on top.
    for _ in 0..8 {
        if !matches!(
            result,
            Err(LedgerError::Storage(StorageError::Conflict { .. }))
        ) {
            break;
        }
        result = shared
            .reload()
            .and_then(|()| commit(shared, signer, &batch));
    }
    match result {
        Ok(first) => {
            for (i, job) in batch.into_iter().enumerate() {
                let _ = job.reply.send(Ok(first + i as u64));
            }
        }
        Err(e) => {
            let msg = e.to_string();
            for job in batch {
                let _ = job.reply.send(Err(LedgerError::CommitFailed(msg.clone())));
            }
        }
    }
}

fn commit(shared: &Shared, signer: &SignerKey, batch: &[Job]) -> Result<u64, LedgerError> {
    let snap = shared.snapshot();
    let old = snap.edge.size();
    let mut edge = snap.edge.clone();
    let entries: Vec<Vec<u8>> = batch.iter().map(|j| j.entry.clone()).collect();
    let writes = edge
        .append(&entries)
        .map_err(|e| LedgerError::CommitFailed(e.to_string()))?;
    let cp = sign_checkpoint(&shared.config.origin, &edge, signer)?;
    // Durable before visible: tiles first, checkpoint last (inside commit).
    shared
        .storage
        .commit(old, &writes, edge.size(), cp.as_bytes())?;
    let old_partials = snap.edge.partial_tiles();
    let new_partials = edge.partial_tiles();
    let levels: Vec<Vec<_>> = (0..=crate::tiles::top_level(edge.size().max(1)))
        .map(|l| edge.partial(l).to_vec())
        .collect();
    let next = Snapshot {
        root: edge.root(),
        checkpoint: Arc::from(cp),
        tiles: snap.tiles.advance(edge.size(), levels),
        edge,
    };
    match shared.snapshot.write() {
        Ok(mut s) => *s = Arc::new(next),
        Err(p) => *p.into_inner() = Arc::new(next),
    }
    // Superseded partial tiles are no longer needed by the current checkpoint.
    let stale: Vec<_> = old_partials
        .into_iter()
        .filter(|t| !new_partials.contains(t))
        .collect();
    let _ = shared.storage.discard(&stale);
    if let Some(index) = &shared.index
        && let Ok(mut index) = index.lock()
    {
        for (i, job) in batch.iter().enumerate() {
            let _ = index.add(old + i as u64, &job.keys);
        }
        let _ = index.mark(old + batch.len() as u64);
    }
    Ok(old)
}

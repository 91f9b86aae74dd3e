//! Exchanges that outlive the client: hyper drops a request's future when its client goes away,
//! and a proxy dropped halfway through an exchange with the upstream would never read the
//! answer to a call it forwarded (never check or log it, never release its concurrency slot).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// A future that, dropped before it is done, goes on as a task of its own.
struct Detach<F: Future + Send + 'static>(Option<Pin<Box<F>>>)
where
    F::Output: Send + 'static;

impl<F: Future + Send + 'static> Drop for Detach<F>
where
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        if let (Some(rest), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(rest);
        }
    }
}

/// Runs `fut` to its end even if the caller stops waiting: what is left of it then runs as a
/// task of its own (on the current runtime), and its output is dropped.
pub(crate) async fn to_completion<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut detach = Detach(Some(Box::pin(fut)));
    let out = std::future::poll_fn(|cx| match detach.0.as_mut() {
        Some(fut) => fut.as_mut().poll(cx),
        None => Poll::Pending,
    })
    .await;
    detach.0 = None;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn a_finished_future_gives_its_output() {
        assert_eq!(to_completion(async { 7 }).await, 7);
    }

    #[tokio::test]
    async fn a_future_dropped_halfway_runs_to_its_end() {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let work = async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            flag.store(true, Ordering::SeqCst);
        };
        // The caller gives up after 10 ms.
        let waited = tokio::time::timeout(Duration::from_millis(10), to_completion(work)).await;
        assert!(waited.is_err());
        assert!(!done.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(done.load(Ordering::SeqCst), "finished as a task of its own");
    }
}

//! The upstream's connection pool, replaced as a whole when its connections must take no more
//! requests: when the TLS material they were made with has been replaced on disk (a rotated
//! client certificate or CA file, [`crate::tls_reload`]), and when the pool is older than the
//! maximum connection age.
//!
//! hyper_util's pool has no hook to retire one connection, but a dropped pool closes all of
//! them: idle connections at once, busy ones when the requests they carry have finished (an
//! HTTP/1.1 connection whose sender is gone ends after its response; an HTTP/2 connection whose
//! senders are all gone sends GOAWAY and closes once its open streams end). So a replaced pool
//! is simply dropped, and requests from then on open connections with the current material.
//!
//! The request path pays one clock read and two atomic loads: the files are looked at (and the
//! pool's age compared) at most once per [`CHECK_INTERVAL`], by whichever request comes first
//! after it, which replaces the pool in the same step if they changed. No thread or task
//! watches the files: a pool that takes no requests sends nothing with stale material.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use axum::http::{Request, Response};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Builder, Client};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::h1pool::{H1Pool, SendError};
use crate::metrics::ReasonLabels;
use crate::tls_reload::{CHECK_INTERVAL, TlsWatch};

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A request on its way: resolves to the answer's head.
pub(crate) type Sending =
    Pin<Box<dyn Future<Output = Result<Response<Incoming>, SendError>> + Send>>;

/// How each pool's connections are made.
pub(crate) enum Connections {
    /// hyper_util's pool over the TLS-capable connector (https upstreams, and h2c).
    Shared {
        /// The pool's settings.
        builder: Box<Builder>,
        /// TCP, then TLS for https.
        connector: HttpsConnector<HttpConnector>,
    },
    /// Our HTTP/1.1 pool ([`crate::h1pool`]) for a plain http upstream.
    Plain {
        /// TCP.
        connector: HttpConnector,
        /// How long an idle connection is kept.
        idle_timeout: Duration,
    },
}

impl Connections {
    fn make(&self) -> Pool {
        match self {
            Connections::Shared { builder, connector } => {
                Pool::Shared(Box::new(builder.build(connector.clone())))
            }
            Connections::Plain {
                connector,
                idle_timeout,
            } => Pool::Plain(H1Pool::new(connector.clone(), *idle_timeout)),
        }
    }
}

/// One generation's connections.
enum Pool {
    Shared(Box<HttpsClient>),
    Plain(Arc<H1Pool>),
}

impl Pool {
    fn request(&self, req: Request<Full<Bytes>>) -> Sending {
        match self {
            Pool::Shared(client) => {
                let sent = client.request(req);
                Box::pin(async move { sent.await.map_err(SendError::from) })
            }
            Pool::Plain(pool) => Box::pin(pool.clone().request(req)),
        }
    }
}

/// Why a pool was replaced (the `reason` label of `pf_guard_upstream_pool_renewals_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Renewal {
    /// The client certificate or the CA file was re-read since the pool was made.
    TlsRotation,
    /// The pool is older than the maximum connection age.
    MaxAge,
}

impl Renewal {
    fn as_str(self) -> &'static str {
        match self {
            Renewal::TlsRotation => "tls_rotation",
            Renewal::MaxAge => "max_age",
        }
    }
}

/// One pool and what it was made with.
struct Generation {
    pool: Pool,
    /// The TLS material's generation when the pool was made.
    tls: u64,
    born: Instant,
}

/// A connection pool replaced when the TLS material changes or the pool grows old.
pub(crate) struct RenewingPool {
    current: RwLock<Generation>,
    connections: Connections,
    watch: TlsWatch,
    max_age: Duration,
    renewals: Option<Family<ReasonLabels, Counter>>,
    epoch: Instant,
    /// Milliseconds after `epoch` from which the next request looks at the files and the age.
    next_check_ms: AtomicU64,
}

impl RenewingPool {
    /// A pool of `connections`, whose TLS files `watch` looks at.
    pub(crate) fn new(
        connections: Connections,
        watch: TlsWatch,
        max_age: Duration,
        renewals: Option<Family<ReasonLabels, Counter>>,
    ) -> Self {
        let epoch = Instant::now();
        let first = Generation {
            pool: connections.make(),
            tls: watch.generation(),
            born: epoch,
        };
        RenewingPool {
            current: RwLock::new(first),
            connections,
            watch,
            max_age,
            renewals,
            epoch,
            next_check_ms: AtomicU64::new(millis(CHECK_INTERVAL)),
        }
    }

    /// Sends `req` over a connection of the current pool, replacing the pool first if it is
    /// stale.
    pub(crate) fn request(&self, req: Request<Full<Bytes>>) -> Sending {
        let checking = self.claim_check();
        let tls = if checking {
            self.watch.refresh(Duration::ZERO)
        } else {
            self.watch.generation()
        };
        {
            let current = self.read();
            if self.stale(&current, tls, checking).is_none() {
                return current.pool.request(req);
            }
        }
        self.renew(tls, checking);
        self.read().pool.request(req)
    }

    /// Whether this request is the one to look at the files and the pool's age (the first one
    /// after the check interval; concurrent ones go on with the current pool).
    fn claim_check(&self) -> bool {
        let now = millis(self.epoch.elapsed());
        let due = self.next_check_ms.load(Ordering::Relaxed);
        now >= due
            && self
                .next_check_ms
                .compare_exchange(
                    due,
                    now.saturating_add(millis(CHECK_INTERVAL)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Why `pool` must take no new requests, if it must not: made before TLS generation `tls`,
    /// or (when `check_age`) too old.
    fn stale(&self, pool: &Generation, tls: u64, check_age: bool) -> Option<Renewal> {
        if tls > pool.tls {
            Some(Renewal::TlsRotation)
        } else if check_age && pool.born.elapsed() >= self.max_age {
            Some(Renewal::MaxAge)
        } else {
            None
        }
    }

    /// Replaces the pool if it is still stale (a concurrent request may have replaced it).
    fn renew(&self, tls: u64, check_age: bool) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let Some(reason) = self.stale(&current, tls, check_age) else {
            return;
        };
        let fresh = Generation {
            pool: self.connections.make(),
            tls,
            born: Instant::now(),
        };
        let old = std::mem::replace(&mut *current, fresh);
        drop(current);
        // Idle connections close now; busy ones once their requests have finished.
        drop(old);
        tracing::info!(
            reason = reason.as_str(),
            "upstream connection pool replaced; its connections close once their requests finish"
        );
        if let Some(renewals) = &self.renewals {
            renewals
                .get_or_create(&ReasonLabels {
                    reason: reason.as_str().to_string(),
                })
                .inc();
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Generation> {
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for RenewingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenewingPool")
            .field("watch", &self.watch)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

/// Whole milliseconds in `d` (saturating; u64 milliseconds are 584 million years).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::rt::TokioExecutor;

    fn pool(max_age: Duration, renewals: &Family<ReasonLabels, Counter>) -> RenewingPool {
        let config = crate::tls::trusting_nothing().expect("config");
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(HttpConnector::new());
        RenewingPool::new(
            Connections::Shared {
                builder: Box::new(Client::builder(TokioExecutor::new())),
                connector,
            },
            TlsWatch::default(),
            max_age,
            Some(renewals.clone()),
        )
    }

    fn request() -> Request<Full<Bytes>> {
        Request::builder()
            .uri("http://127.0.0.1:9/")
            .body(Full::new(Bytes::new()))
            .expect("request")
    }

    fn count(renewals: &Family<ReasonLabels, Counter>, reason: &str) -> u64 {
        renewals
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .get()
    }

    #[test]
    fn an_old_pool_is_replaced_at_the_first_check_after_its_maximum_age_only() {
        let renewals = Family::default();
        let pool = pool(Duration::from_millis(500), &renewals);
        // The futures are never polled: choosing the pool happens when the request is made.
        drop(pool.request(request()));
        assert_eq!(
            count(&renewals, "max_age"),
            0,
            "not checked before the interval"
        );
        std::thread::sleep(CHECK_INTERVAL + Duration::from_millis(100));
        drop(pool.request(request()));
        assert_eq!(count(&renewals, "max_age"), 1);
        drop(pool.request(request()));
        assert_eq!(count(&renewals, "max_age"), 1, "the new pool is young");
        assert_eq!(count(&renewals, "tls_rotation"), 0);
    }

    #[test]
    fn a_young_pool_is_kept() {
        let renewals = Family::default();
        let pool = pool(Duration::from_secs(300), &renewals);
        std::thread::sleep(CHECK_INTERVAL + Duration::from_millis(100));
        drop(pool.request(request()));
        assert_eq!(count(&renewals, "max_age"), 0);
    }
}

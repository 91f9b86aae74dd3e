//! The webhook over HTTP/2: a real hyper HTTP/2 client over rustls with ALPN `h2` (as the
//! Kubernetes API server's Go client negotiates it) gets the same decisions and refusals as an
//! HTTP/1.1 client, within the same limits; idle and silent HTTP/2 connections are closed like
//! idle HTTP/1.1 ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::Version;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pf_admission::server::{MAX_HEADER_LIST_BYTES, ServeOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_picks_h2_when_offered_and_http1_otherwise() {
    let fx = fixture();
    let srv = start_server(Arc::clone(&fx.admission), ServeOptions::default()).await;
    let offers: [(&[&[u8]], Version); 4] = [
        (&[b"h2"], Version::HTTP_2),
        (&[b"h2", b"http/1.1"], Version::HTTP_2),
        (&[b"http/1.1", b"h2"], Version::HTTP_2),
        (&[b"http/1.1"], Version::HTTP_11),
    ];
    for (alpn, want) in offers {
        let mut c = connect_alpn(&srv, alpn).await;
        let (st, body) = c.request("GET", "/healthz", vec![], None).await;
        assert_eq!((st, body.as_slice()), (200, b"ok".as_slice()));
        assert_eq!(c.version, Some(want), "{alpn:?}");
    }
    // No ALPN at all (an old client): HTTP/1.1.
    let mut c = connect(&srv).await;
    c.request("GET", "/healthz", vec![], None).await;
    assert_eq!(c.version, Some(Version::HTTP_11));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_over_h2_get_the_decisions_http1_gets() {
    let fx = fixture();
    let srv = start_server(Arc::clone(&fx.admission), ServeOptions::default()).await;
    let mut h1 = connect(&srv).await;
    let mut h2 = connect_h2(&srv).await;
    let cases = [
        ("/validate", "pod-agent.json"),
        ("/validate", "deployment-agent.json"),
        ("/mutate", "deployment-agent.json"),
        ("/validate", "agentdeployment.json"),
        ("/mutate", "pod-plain.json"),
    ];
    for (path, name) in cases {
        let body = review(name, &fx.digest);
        let (st1, r1) = h1.post(path, &body).await;
        let (st2, r2) = h2.post(path, &body).await;
        assert_eq!(h2.version, Some(Version::HTTP_2));
        assert_eq!(h1.version, Some(Version::HTTP_11));
        assert_eq!((st1, st2), (200, 200), "{path} {name}");
        assert_eq!(verdict(&r1), verdict(&r2), "{path} {name}");
    }
    // The decisions above really differ: an allow, a deny naming the missing sidecar, a patch.
    let (_, r) = h2
        .post("/validate", &review("pod-agent.json", &fx.digest))
        .await;
    assert!(verdict(&r).0);
    let dep = review("deployment-agent.json", &fx.digest);
    let (_, r) = h2.post("/validate", &dep).await;
    let (allowed, msg, _) = verdict(&r);
    assert!(!allowed && msg.contains("\"pf-guard\" is missing"), "{msg}");
    let (_, r) = h2.post("/mutate", &dep).await;
    assert!(verdict(&r).2.is_some());
    // Malformed reviews and wrong routes get the same statuses.
    for (method, path, body, ct, want) in [
        (
            "POST",
            "/validate",
            b"{not json".to_vec(),
            Some("application/json"),
            400,
        ),
        ("GET", "/validate", vec![], None, 405),
        ("POST", "/nope", vec![], None, 404),
        ("POST", "/validate", b"{}".to_vec(), Some("text/plain"), 415),
    ] {
        let (st1, _) = h1.request(method, path, body.clone(), ct).await;
        let (st2, _) = h2.request(method, path, body, ct).await;
        assert_eq!((st1, st2), (want, want), "{method} {path}");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reviews_share_one_h2_connection() {
    let fx = fixture();
    let srv = start_server(Arc::clone(&fx.admission), ServeOptions::default()).await;
    let tls = tls_connect(&srv, &[b"h2"]).await;
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let body = Bytes::from(review("pod-agent.json", &fx.digest));
    let mut answers = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let mut sender = sender.clone();
        let body = body.clone();
        answers.spawn(async move {
            let req = http::Request::post("https://localhost/validate")
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(body))
                .expect("request");
            sender.ready().await.expect("ready");
            let resp = sender.send_request(req).await.expect("send");
            assert_eq!(resp.version(), Version::HTTP_2);
            let bytes = resp.into_body().collect().await.expect("body").to_bytes();
            verdict(&bytes).0
        });
    }
    let mut allowed = 0;
    while let Some(a) = answers.join_next().await {
        allowed += usize::from(a.expect("task"));
    }
    assert_eq!(allowed, 20);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_the_in_flight_cap_wait_for_a_slot() {
    use futures::StreamExt;
    use http_body_util::combinators::BoxBody;
    let fx = fixture();
    let timeout = Duration::from_millis(600);
    let opts = ServeOptions {
        max_connections: 1,
        request_timeout: timeout,
        ..ServeOptions::default()
    };
    let srv = start_server(Arc::clone(&fx.admission), opts).await;
    let tls = tls_connect(&srv, &[b"h2"]).await;
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let post = |body: BoxBody<Bytes, Infallible>| {
        let mut sender = sender.clone();
        async move {
            let req = http::Request::post("https://localhost/validate")
                .header("content-type", "application/json")
                .body(body)
                .expect("request");
            sender.ready().await.expect("ready");
            let start = Instant::now();
            let status = sender.send_request(req).await.expect("send").status();
            (status, start.elapsed())
        }
    };
    // A body that starts and then stalls holds the one request slot until its timeout ...
    let stalled = futures::stream::once(async { Ok(Frame::data(Bytes::from_static(b"{"))) })
        .chain(futures::stream::pending());
    let slow = tokio::spawn(post(BodyExt::boxed(StreamBody::new(stalled))));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ... so a review on another stream waits for it, then is decided in its own time.
    let body = http_body_util::Full::new(Bytes::from(review("pod-agent.json", &fx.digest)));
    let (status, waited) = post(body.boxed()).await;
    assert_eq!(status, 200);
    assert!(
        waited >= timeout / 2,
        "answered in {waited:?}, beside a held slot"
    );
    let (status, _) = slow.await.expect("task");
    assert_eq!(status, 408);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_bodies_over_h2_are_refused_like_over_http1() {
    let fx = fixture();
    let max = 64 * 1024;
    let opts = ServeOptions {
        max_body: max,
        ..ServeOptions::default()
    };
    let srv = start_server(Arc::clone(&fx.admission), opts).await;
    // A body with its length declared: refused from the header, on both protocols.
    let mut h1 = connect(&srv).await;
    match h1.try_request("/validate", vec![b' '; max + 1]).await {
        Ok(st) => assert_eq!(st, 413),
        Err(e) => assert!(!e.is_parse(), "{e}"),
    }
    let mut h2 = connect_h2(&srv).await;
    let (st, body) = h2
        .request(
            "POST",
            "/validate",
            vec![b' '; max + 1],
            Some("application/json"),
        )
        .await;
    assert_eq!(h2.version, Some(Version::HTTP_2));
    assert_eq!(st, 413);
    let msg = String::from_utf8_lossy(&body).into_owned();
    assert!(msg.contains(&format!("over the {max}-byte limit")), "{msg}");

    // A streamed body with no length: refused once the limit is passed.
    let tls = tls_connect(&srv, &[b"h2"]).await;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let chunks = (0..(max / 4096 + 2))
        .map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b' '; 4096]))));
    let req = http::Request::post("https://localhost/validate")
        .header("content-type", "application/json")
        .body(StreamBody::new(futures::stream::iter(chunks)))
        .expect("request");
    assert!(req.headers().get("content-length").is_none());
    sender.ready().await.expect("ready");
    let resp = sender
        .send_request(req)
        .await
        .expect("an answer, not a reset");
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), 413);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("body is over the {max}-byte limit")
    );

    // A refusal ends one stream, not the connection: the next review on it is decided.
    let (st, body) = h2
        .post("/validate", &review("pod-agent.json", &fx.digest))
        .await;
    assert_eq!(st, 200);
    assert!(verdict(&body).0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_header_lists_over_the_limit_get_431_and_the_connection_goes_on() {
    let fx = fixture();
    let srv = start_server(Arc::clone(&fx.admission), ServeOptions::default()).await;
    let tls = tls_connect(&srv, &[b"h2"]).await;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let mut get = async |header_bytes: usize| {
        let req = http::Request::get("https://localhost/healthz")
            .header("x-padding", "a".repeat(header_bytes))
            .body(http_body_util::Full::new(Bytes::new()))
            .expect("request");
        sender.ready().await.expect("ready");
        sender.send_request(req).await.expect("send").status()
    };
    let limit = MAX_HEADER_LIST_BYTES as usize;
    assert_eq!(get(limit / 2).await, 200);
    assert_eq!(get(limit + 1).await, 431);
    assert_eq!(get(100).await, 200);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_h2_settings_carry_the_stream_limit() {
    let fx = fixture();
    let opts = ServeOptions {
        max_streams_per_connection: 7,
        ..ServeOptions::default()
    };
    let srv = start_server(Arc::clone(&fx.admission), opts).await;
    let tls = tls_connect(&srv, &[b"h2"]).await;
    let (mut client, mut conn) = h2::client::handshake(tls).await.expect("h2 handshake");
    // The server's SETTINGS arrive with the first exchange.
    let req = http::Request::get("https://localhost/healthz")
        .body(())
        .expect("request");
    let (resp, _) = client.send_request(req, true).expect("send");
    let resp = tokio::select! {
        r = resp => r.expect("response"),
        _ = &mut conn => panic!("connection closed"),
    };
    assert_eq!(resp.status(), 200);
    assert_eq!(conn.max_concurrent_send_streams(), 7);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_silent_h2_connections_are_closed() {
    use tokio::io::AsyncReadExt;
    let fx = fixture();
    let timeout = Duration::from_millis(300);
    let opts = ServeOptions {
        request_timeout: timeout,
        ..ServeOptions::default()
    };
    let srv = start_server(Arc::clone(&fx.admission), opts).await;
    let pod = review("pod-agent.json", &fx.digest);

    // A client busy with a review every 100 ms keeps its connection past the timeout ...
    let (mut busy, busy_task) = connect_alpn_watched(&srv, &[b"h2"]).await;
    let start = Instant::now();
    while start.elapsed() < timeout * 4 {
        let (st, _) = busy.post("/validate", &pod).await;
        assert_eq!(st, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!busy_task.is_finished());
    // ... and once it goes quiet, the server closes it (GOAWAY, then the socket).
    let closed = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), busy_task)
        .await
        .expect("server closed the idle HTTP/2 connection")
        .expect("task");
    assert!(closed.elapsed() >= timeout / 2, "{:?}", closed.elapsed());

    // A client that completes TLS with h2 and never sends the HTTP/2 preface is dropped.
    let mut silent = tls_connect(&srv, &[b"h2"]).await;
    let mut buf = [0u8; 64];
    let cut = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            // The server's SETTINGS (and GOAWAY) may come first; the end is EOF or an error.
            match silent.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(cut.is_ok(), "a silent HTTP/2 connection was kept open");

    // The server still answers.
    let mut c = connect_h2(&srv).await;
    let (st, _) = c.post("/validate", &pod).await;
    assert_eq!(st, 200);
    srv.stop().await;
}

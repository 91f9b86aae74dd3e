//! The HTTP server end to end: appends with 4xx reasons for bad requests, tiles served to the
//! auditor client, consistency tracking across checkpoints, and a witness cosignature.
#![cfg(feature = "net")]

use std::sync::Arc;
use std::time::Duration;

use pf_ledger::client::{AuditError, LogSource, RemoteLog, audit};
use pf_ledger::cosignature::verify_cosignatures;
use pf_ledger::ledger::{Ledger, LedgerConfig};
use pf_ledger::note::{ALG_COSIGNATURE_V1, ALG_ED25519, SignerKey};
use pf_ledger::storage::file::FileStorage;

fn post(url: &str, ct: &str, body: &[u8]) -> (u16, String) {
    match ureq::post(url).set("Content-Type", ct).send_bytes(body) {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("transport error: {e}"),
    }
}

/// Posts a body the server must refuse from its `Content-Length` alone, and returns the status.
/// `Expect: 100-continue` lets the server answer before any of the body is sent (a client that
/// sent the body at once could hit a broken pipe when the server answers early and closes).
fn post_oversize(url: &str, body: &[u8]) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_once('/').expect("path");
    let mut conn = std::net::TcpStream::connect(host).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        conn,
        "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("write head");
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("status line");
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        if code != 100 {
            return code;
        }
        // The server asked for the body after all; skip the blank line and send it.
        reader.read_line(&mut line).expect("blank line");
        conn.write_all(body).expect("write body");
    }
}

fn start(dir: &std::path::Path) -> (tokio::runtime::Runtime, String, SignerKey) {
    let key = SignerKey::from_seed("srv.test/log", ALG_ED25519, [11; 32]).expect("key");
    let mut cfg = LedgerConfig::new("srv.test/log");
    cfg.max_delay = Duration::from_millis(2);
    cfg.index_file = Some(dir.join("index"));
    let ledger = Arc::new(
        Ledger::open(
            Arc::new(FileStorage::open_writer(dir.join("log")).expect("storage")),
            key.clone(),
            cfg,
        )
        .expect("open"),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(pf_ledger::server::serve(ledger, listener));
    (rt, format!("http://{addr}"), key)
}

#[test]
fn add_validates_requests_and_serves_verifiable_tiles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_rt, url, key) = start(dir.path());

    let (code, body) = post(
        &format!("{url}/add?sensitive=/user"),
        "application/json",
        br#"{"agent":"a7","user":"alice","decision":"allow"}"#,
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["index"], 0);
    assert_eq!(v["openings"][0]["value"], "alice");

    assert_eq!(post(&format!("{url}/add"), "text/plain", b"{}").0, 415);
    let (code, body) = post(&format!("{url}/add"), "application/json", b"{\"a\": ");
    assert_eq!(code, 400);
    assert!(body.contains("line 1"), "{body}");
    assert_eq!(
        post(&format!("{url}/add"), "application/json", b"[1,2]").0,
        400
    );
    assert_eq!(
        post(
            &format!("{url}/add?sensitive=/nope"),
            "application/json",
            b"{}"
        )
        .0,
        400
    );
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(70_000));
    assert_eq!(post_oversize(&format!("{url}/add"), big.as_bytes()), 413);
    let huge = vec![b' '; 200_000];
    assert_eq!(post_oversize(&format!("{url}/add"), &huge), 413);

    // Concurrent clients share batches.
    std::thread::scope(|s| {
        for t in 0..13u64 {
            let url = url.clone();
            s.spawn(move || {
                for i in (1 + t * 23)..(1 + (t + 1) * 23) {
                    let (code, _) = post(
                        &format!("{url}/add"),
                        "application/json",
                        format!("{{\"agent\":\"a{}\",\"n\":{i}}}", i % 5).as_bytes(),
                    );
                    assert_eq!(code, 200);
                }
            });
        }
    });
    assert_eq!(
        ureq::get(&format!("{url}/tile/0/x01/000"))
            .call()
            .err()
            .map(|e| matches!(e, ureq::Error::Status(400, _))),
        Some(true)
    );
    assert_eq!(
        ureq::get(&format!("{url}/tile/0/009"))
            .call()
            .err()
            .map(|e| matches!(e, ureq::Error::Status(404, _))),
        Some(true)
    );

    // The auditor client verifies everything it fetches.
    let state = dir.path().join("audit-state");
    let log = RemoteLog::open(LogSource::parse(&url), &key.verifier()).expect("remote");
    assert_eq!(log.size(), 300);
    let (entry, _proof) = log.entry_with_proof(0).expect("entry");
    let logged: serde_json::Value = serde_json::from_slice(&entry).expect("json");
    let opening: pf_ledger::record::Opening =
        serde_json::from_value(v["openings"][0].clone()).expect("opening");
    pf_ledger::record::verify_opening(&logged, &opening).expect("commitment opens");
    assert_eq!(log.fsck().expect("fsck"), 300);
    audit(&log, &state).expect("first audit");
    post(&format!("{url}/add"), "application/json", b"{\"n\":300}");
    let log = RemoteLog::open(LogSource::parse(&url), &key.verifier()).expect("remote");
    let (prev, now) = audit(&log, &state).expect("second audit is consistent");
    assert_eq!((prev.map(|p| p.size), now.size), (Some(300), 301));

    // A forged earlier state (wrong root) is detected as inconsistent.
    std::fs::write(&state, "300 CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n").expect("write");
    assert!(matches!(
        audit(&log, &state),
        Err(AuditError::Inconsistent { .. })
    ));

    // find by agent returns hits with proofs.
    let found = ureq::get(&format!("{url}/find?key=agent:a3"))
        .call()
        .expect("find")
        .into_string()
        .expect("body");
    let found: serde_json::Value = serde_json::from_str(&found).expect("json");
    assert_eq!(found["hits"].as_array().map(Vec::len), Some(60));

    // Witness cosigns a consistent checkpoint.
    let w =
        SignerKey::from_seed("witness.test/w1", ALG_COSIGNATURE_V1, [12; 32]).expect("witness key");
    let note =
        pf_ledger::witness::witness(&log, &w, &dir.path().join("witness-state"), 1_700_000_000)
            .expect("cosign");
    assert_eq!(
        verify_cosignatures(&note, &[w.verifier()])
            .expect("verifies")
            .len(),
        1
    );
}

/// Sends one request over HTTP/2 with prior knowledge (h2c); returns the version, status and
/// body of the answer.
async fn h2c(method: &str, url: &str, body: Vec<u8>) -> (hyper::Version, u16, String) {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<bytes::Bytes>>();
    let req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body)))
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("answer in time")
        .expect("h2c exchange");
    let (version, status) = (resp.version(), resp.status().as_u16());
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (version, status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn h2c_clients_get_what_http1_clients_get() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (rt, url, _key) = start(dir.path());
    let (code, _) = post(&format!("{url}/add"), "application/json", b"{\"n\":0}");
    assert_eq!(code, 200);
    rt.block_on(async {
        let (version, code, body) = h2c("POST", &format!("{url}/add"), b"{\"n\":1}".to_vec()).await;
        assert_eq!((version, code), (hyper::Version::HTTP_2, 200), "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["index"], 1);
        let (version, code, body) = h2c("POST", &format!("{url}/add"), vec![b' '; 200_000]).await;
        assert_eq!((version, code), (hyper::Version::HTTP_2, 413), "{body}");
        let (version, code, body) = h2c("POST", &format!("{url}/add"), b"[1]".to_vec()).await;
        assert_eq!((version, code), (hyper::Version::HTTP_2, 400), "{body}");
    });
    let over_h1 = ureq::get(&format!("{url}/checkpoint"))
        .call()
        .expect("checkpoint")
        .into_string()
        .expect("body");
    let (version, code, over_h2) =
        rt.block_on(h2c("GET", &format!("{url}/checkpoint"), Vec::new()));
    assert_eq!((version, code), (hyper::Version::HTTP_2, 200));
    assert_eq!(over_h2, over_h1);
    assert!(over_h2.starts_with("srv.test/log\n2\n"), "{over_h2}");
}

//! TLS on the listeners, over real sockets: the binary protocol through
//! the Rust client, HTTP and the metrics page through curl; client
//! certificates required and optional; certificates reloaded in process
//! and by SIGHUP to a real chainlogd; bad files refused at start and kept
//! out at reload; plain clients on a TLS port, and a silent one. The
//! certificates are made by `openssl` for each test (`common/certs.rs`).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use client::{Client, ClientError, TlsOptions};
use common::certs::{self, Certs, Pair};
use common::*;
use proto::frame::FrameError;
use server::config::{ClientAuth, Listener, TlsConfig};
use server::{Server, ServerConfig, ServerError};

/// The certificates, or `None` (reported as a skip) without `openssl`.
fn certs_or_skip(test: &str, dir: &Path) -> Option<Certs> {
    if !certs::openssl_found() {
        skip(test, "the openssl command is not installed");
        return None;
    }
    Some(certs::make(&dir.join("certs")))
}

fn curl_found(test: &str) -> bool {
    let ok = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(test, "the curl command is not installed");
    }
    ok
}

/// The files the server is configured with: copies, so that a test can
/// replace them under it.
fn live_pair(dir: &Path, from: &Pair) -> Pair {
    let live = Pair {
        cert: dir.join("live.crt"),
        key: dir.join("live.key"),
    };
    certs::install(from, &live);
    live
}

fn tls_config(live: &Pair, client_ca: Option<&Path>, auth: ClientAuth) -> TlsConfig {
    TlsConfig {
        cert: live.cert.clone(),
        key: live.key.clone(),
        client_ca: client_ca.map(Path::to_path_buf).unwrap_or_default(),
        client_auth: client_ca.map(|_| auth),
        listeners: vec![Listener::Protocol, Listener::Http, Listener::Metrics],
    }
}

fn tls_server(dir: &Path, keys: &[&TestKey], tls: TlsConfig) -> Server {
    let mut c = config(dir, keys);
    c.metrics_listen = "127.0.0.1:0".into();
    c.tls = Some(tls);
    Server::start(c).unwrap()
}

fn trusting(ca: &Pair) -> TlsOptions {
    TlsOptions::new(Some(&ca.cert), None).unwrap()
}

/// A curl call: (HTTP status, body); status 0 when curl failed (its exit
/// code and message are in the body then).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return (
            0,
            format!(
                "curl exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ),
        );
    }
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "waited 10 s for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn https(addr: std::net::SocketAddr, path: &str) -> String {
    format!("https://localhost:{}{path}", addr.port())
}

fn resolve(addr: std::net::SocketAddr) -> String {
    format!("localhost:{}:127.0.0.1", addr.port())
}

#[test]
fn every_listener_speaks_tls_and_a_trusting_client_gets_the_servers_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = certs_or_skip(
        "every_listener_speaks_tls_and_a_trusting_client_gets_the_servers_certificate",
        dir.path(),
    ) else {
        return;
    };
    if !curl_found("every_listener_speaks_tls_and_a_trusting_client_gets_the_servers_certificate") {
        return;
    }
    let k = key("svc", "default", &["append", "read"], &[]);
    let live = live_pair(dir.path(), &c.server_a);
    let server = tls_server(
        dir.path(),
        &[&k],
        tls_config(&live, None, ClientAuth::Required),
    );

    // The binary protocol, by name and by address (the certificate has both).
    let named = format!("localhost:{}", server.addr().port());
    let mut by_name = Client::connect_tls(&named, &trusting(&c.ca)).unwrap();
    assert_eq!(by_name.peer_certificate().unwrap(), c.server_a.der());
    by_name.auth(&k.text).unwrap();
    let r = by_name
        .append(&event("acme", "u1", "user.login", "session"))
        .unwrap();
    assert_eq!(r.seq, 0);
    let mut by_ip = Client::connect_tls(&server.addr().to_string(), &trusting(&c.ca)).unwrap();
    by_ip.auth(&k.text).unwrap();
    let page = by_ip.read(0, 1, 10).unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].hash, r.hash);
    by_ip.close();

    // HTTP: an append and a query through curl, trusting the CA.
    let http = server.http_addr().unwrap();
    let bearer = format!("Authorization: Bearer {}", k.text);
    let (status, body) = curl(&[
        "--cacert",
        c.ca.cert.to_str().unwrap(),
        "--resolve",
        &resolve(http),
        "-H",
        &bearer,
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"tenant_id":"acme","actor_id":"u2","action":"user.logout","resource":"session"}"#,
        &https(http, "/api/v1/events"),
    ]);
    assert_eq!(status, 201, "{body}");
    let receipt: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(receipt["seq"], 1, "{body}");
    let (status, body) = curl(&[
        "--cacert",
        c.ca.cert.to_str().unwrap(),
        "--resolve",
        &resolve(http),
        "-H",
        &bearer,
        &https(http, "/api/v1/events?tenant_id=acme&order=desc&limit=1"),
    ]);
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["pagination"]["total"], 2, "{body}");
    assert_eq!(page["data"][0]["actor_id"], "u2", "{body}");

    // The metrics page too.
    let m = server.metrics_addr().unwrap();
    let (status, body) = curl(&[
        "--cacert",
        c.ca.cert.to_str().unwrap(),
        "--resolve",
        &resolve(m),
        &https(m, "/metrics"),
    ]);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\nchainlog_tls_handshake_failures_total 0\n"),
        "{body}"
    );

    // curl without the CA does not trust the server.
    let (status, body) = curl(&["--resolve", &resolve(http), &https(http, "/healthz")]);
    assert_eq!(status, 0, "{body}");
    assert!(body.contains("curl exit Some(60)"), "{body}");
    by_name.close();
}

#[test]
fn plain_clients_on_a_tls_port_and_tls_clients_that_distrust_are_refused_and_the_server_keeps_serving(
) {
    let test = "plain_clients_on_a_tls_port_and_tls_clients_that_distrust_are_refused_and_the_server_keeps_serving";
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = certs_or_skip(test, dir.path()) else {
        return;
    };
    if !curl_found(test) {
        return;
    }
    let k = key("svc", "default", &["append", "read"], &[]);
    let live = live_pair(dir.path(), &c.server_a);
    let server = tls_server(
        dir.path(),
        &[&k],
        tls_config(&live, None, ClientAuth::Required),
    );
    let addr = server.addr().to_string();

    // A plain client: its preamble is not a TLS hello.
    let plain = Client::connect(server.addr()).map(|_| ());
    // What comes back is the server's TLS alert record, 7 bytes, then the
    // close: short of the 8-byte preamble.
    assert!(
        matches!(
            plain,
            Err(ClientError::Frame(FrameError::Truncated {
                got: 7,
                expected: 8
            }))
        ),
        "a plain client on a TLS port: {plain:?}"
    );
    // Plain HTTP to the HTTPS port.
    let http = server.http_addr().unwrap();
    let (status, body) = curl(&[&format!("http://127.0.0.1:{}/healthz", http.port())]);
    assert_eq!(status, 0, "{body}");
    // A client trusting another CA, and one expecting another name.
    let wrong_ca = Client::connect_tls(&addr, &trusting(&c.rogue_ca)).map(|_| ());
    match wrong_ca {
        Err(ClientError::Tls(m)) => assert!(m.contains("UnknownIssuer"), "{m}"),
        other => panic!("a client trusting another CA: {other:?}"),
    }
    let other_name = trusting(&c.ca).with_server_name("audit.example.com");
    match Client::connect_tls(&addr, &other_name).map(|_| ()) {
        Err(ClientError::Tls(m)) => assert!(
            m.contains("not valid for name \"audit.example.com\""),
            "{m}"
        ),
        other => panic!("a certificate for another name: {other:?}"),
    }
    // Each of the four failed its handshake on the server, which counted it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server
        .metrics_text()
        .contains("\nchainlog_tls_handshake_failures_total 4\n")
    {
        assert!(Instant::now() < deadline, "{}", server.metrics_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    // And it still serves a client that trusts it.
    let mut good = Client::connect_tls(&addr, &trusting(&c.ca)).unwrap();
    good.auth(&k.text).unwrap();
    good.append(&event("acme", "u1", "a.b", "r")).unwrap();

    // A TLS client against a plain server fails its handshake with a TLS
    // error, not a hang.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain_server = start(plain_dir.path(), &[&k]);
    match Client::connect_tls(&plain_server.addr().to_string(), &trusting(&c.ca)).map(|_| ()) {
        Err(ClientError::Tls(m)) => assert!(m.starts_with("handshake with"), "{m}"),
        other => panic!("TLS to a plain server: {other:?}"),
    }
}

#[test]
fn a_silent_connection_is_dropped_at_the_frame_timeout_without_a_handshake() {
    let test = "a_silent_connection_is_dropped_at_the_frame_timeout_without_a_handshake";
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = certs_or_skip(test, dir.path()) else {
        return;
    };
    let k = key("svc", "default", &["append"], &[]);
    let live = live_pair(dir.path(), &c.server_a);
    let mut cfg = config(dir.path(), &[&k]);
    cfg.frame_timeout_secs = 1;
    cfg.metrics_listen = "127.0.0.1:0".into();
    cfg.tls = Some(tls_config(&live, None, ClientAuth::Required));
    let server = Server::start(cfg).unwrap();
    // The metrics listener's limit is its header timeout, 2 s.
    let addrs = [
        server.addr(),
        server.http_addr().unwrap(),
        server.metrics_addr().unwrap(),
    ];
    for addr in addrs {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap();
        let waited = started.elapsed();
        assert_eq!(n, 0, "the server closes without a word");
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(8),
            "{waited:?}"
        );
    }
    // Counted once the socket is closed.
    wait_until("three failed handshakes and no connection", || {
        let m = server.metrics_text();
        m.contains("\nchainlog_tls_handshake_failures_total 3\n")
            && m.contains("\nchainlog_connections_open 0\n")
    });
}

#[test]
fn required_client_certificates_admit_only_clients_of_the_client_ca() {
    let test = "required_client_certificates_admit_only_clients_of_the_client_ca";
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = certs_or_skip(test, dir.path()) else {
        return;
    };
    if !curl_found(test) {
        return;
    }
    let k = key("svc", "default", &["append", "read"], &[]);
    let live = live_pair(dir.path(), &c.server_a);
    let server = tls_server(
        dir.path(),
        &[&k],
        tls_config(&live, Some(&c.ca.cert), ClientAuth::Required),
    );
    let addr = server.addr().to_string();
    let with = |id: &Pair| TlsOptions::new(Some(&c.ca.cert), Some((&id.cert, &id.key))).unwrap();

    // With a certificate from the client CA: served.
    let mut ok = Client::connect_tls(&addr, &with(&c.client)).unwrap();
    ok.auth(&k.text).unwrap();
    assert_eq!(ok.append(&event("acme", "u1", "a.b", "r")).unwrap().seq, 0);
    // Without one, or with another CA's: the server refuses. (In TLS 1.3
    // the client's side of the handshake ends first; the refusal is the
    // alert that answers the protocol's preamble, and the client reports
    // it as a TLS error.)
    let refused = |opts: &TlsOptions| -> String {
        match Client::connect_tls(&addr, opts).map(|_| ()) {
            Err(ClientError::Tls(m)) => m,
            other => panic!("without a client certificate it trusts: {other:?}"),
        }
    };
    let none = refused(&trusting(&c.ca));
    assert!(none.contains("CertificateRequired"), "{none}");
    let rogue = refused(&with(&c.rogue_client));
    assert!(
        rogue.contains("UnknownCA") || rogue.contains("BadCertificate"),
        "{rogue}"
    );

    // HTTP likewise, through curl.
    let http = server.http_addr().unwrap();
    let base = [
        "--cacert",
        c.ca.cert.to_str().unwrap(),
        "--resolve",
        &resolve(http),
    ];
    let url = https(http, "/healthz");
    let (status, body) = curl(
        &[
            &base[..],
            &[
                "--cert",
                c.client.cert.to_str().unwrap(),
                "--key",
                c.client.key.to_str().unwrap(),
                &url,
            ],
        ]
        .concat(),
    );
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = curl(&[&base[..], &[&url]].concat());
    assert_eq!(status, 0, "{body}");
    let (status, body) = curl(
        &[
            &base[..],
            &[
                "--cert",
                c.rogue_client.cert.to_str().unwrap(),
                "--key",
                c.rogue_client.key.to_str().unwrap(),
                &url,
            ],
        ]
        .concat(),
    );
    assert_eq!(status, 0, "{body}");
}

#[test]
fn optional_client_certificates_admit_clients_without_one_but_not_with_a_bad_one() {
    let test = "optional_client_certificates_admit_clients_without_one_but_not_with_a_bad_one";
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = certs_or_skip(test, dir.path()) else {
        return;
    };
    let k = key("svc", "default", &["append", "read"], &[]);
    let live = live_pair(dir.path(), &c.server_a);
    let server = tls_server(
        dir.path(),
        &[&k],
        tls_config(&live, Some(&c.ca.cert), ClientAuth::Optional),
    );
    let addr = server.addr().to_string();
    let mut none = Client::connect_tls(&addr, &trusting(&c.ca)).unwrap();
    none.auth(&k.text).unwrap();
    none.ping().unwrap();
    let good = TlsOptions::new(Some(&c.ca.cert), Some((&c.client.cert, &c.client.key))).unwrap();
    let mut with = Client::connect_tls(&addr, &good).unwrap();
    with.auth(&k.text).unwrap();
    with.ping().unwrap();
    let bad = TlsOptions::new(
        Some(&c.ca.cert),
        Some((&c.rogue_client.cert, &c.rogue_client.key)),
    )
    .unwrap();
    let r = Client::connect_tls(&addr, &bad).and_then(|mut c| c.auth(&k.text).map(|_| ()));
    let e = r.expect_err("a certificate from an untrusted CA");
    assert!(
        e.to_string().contains("UnknownCA") || e.to_string().contains("BadCertificate"),
        "{e}"
    );
}

#[test]
fn a_reload_swaps_the_certificate_for_new_connections_and_a_bad_one_changes_nothing() {
    let test = "a_reload_swaps_the_certificate_for_new_connections_and_a_bad_one_changes_nothing";
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = certs_or_skip(test, dir.path()) else {
        return;
    };
    let k = key("svc", "default", &["append", "read"], &[]);
    let live = live_pair(dir.path(), &c.server_a);
    let server = tls_server(
        dir.path(),
        &[&k],
        tls_config(&live, None, ClientAuth::Required),
    );
    let addr = server.addr().to_string();
    let mut old = Client::connect_tls(&addr, &trusting(&c.ca)).unwrap();
    old.auth(&k.text).unwrap();
    assert_eq!(old.peer_certificate().unwrap(), c.server_a.der());

    certs::install(&c.server_b, &live);
    assert!(server.reload_tls().unwrap());
    let mut new = Client::connect_tls(&addr, &trusting(&c.ca)).unwrap();
    assert_eq!(new.peer_certificate().unwrap(), c.server_b.der());
    new.auth(&k.text).unwrap();
    // The connection made before keeps working.
    assert_eq!(old.append(&event("acme", "u1", "a.b", "r")).unwrap().seq, 0);

    // A truncated certificate, then a key of another certificate: refused,
    // and B stays in force.
    let pem = std::fs::read_to_string(&c.server_a.cert).unwrap();
    std::fs::write(&live.cert, &pem[..pem.len() / 2]).unwrap();
    match server.reload_tls() {
        Err(server::tls::TlsError::File { what, .. }) => assert_eq!(what, "cert"),
        other => panic!("a truncated certificate: {other:?}"),
    }
    std::fs::copy(&c.server_a.cert, &live.cert).unwrap();
    std::fs::copy(&c.server_b.key, &live.key).unwrap();
    match server.reload_tls() {
        Err(server::tls::TlsError::Rejected(m)) => assert!(m.contains("match"), "{m}"),
        other => panic!("a key that is not the certificate's: {other:?}"),
    }
    let mut after = Client::connect_tls(&addr, &trusting(&c.ca)).unwrap();
    assert_eq!(after.peer_certificate().unwrap(), c.server_b.der());
    after.auth(&k.text).unwrap();
    let m = server.metrics_text();
    assert!(m.contains("\nchainlog_tls_reloads_total 1\n"), "{m}");
    assert!(
        m.contains("\nchainlog_tls_reload_failures_total 2\n"),
        "{m}"
    );

    // Without [tls], a reload has nothing to do.
    let plain_dir = tempfile::tempdir().unwrap();
    assert!(!start(plain_dir.path(), &[&k]).reload_tls().unwrap());
}

#[test]
fn unusable_tls_files_stop_the_start_with_the_file_named() {
    let test = "unusable_tls_files_stop_the_start_with_the_file_named";
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = certs_or_skip(test, dir.path()) else {
        return;
    };
    let k = key("svc", "default", &["append"], &[]);
    let try_start = |tls: TlsConfig| {
        let mut cfg: ServerConfig = config(dir.path(), &[&k]);
        cfg.metrics_listen = "127.0.0.1:0".into();
        cfg.tls = Some(tls);
        Server::start(cfg).map(|_| ())
    };
    // TLS asked of a listener that is off.
    let mut cfg: ServerConfig = config(dir.path(), &[&k]);
    cfg.tls = Some(tls_config(&c.server_a, None, ClientAuth::Required));
    assert_eq!(
        Server::start(cfg).unwrap_err().to_string(),
        "invalid configuration: [tls] listeners names metrics, but metrics_listen is off (\"\")"
    );
    let missing = Pair {
        cert: dir.path().join("absent.crt"),
        key: c.server_a.key.clone(),
    };
    match try_start(tls_config(&missing, None, ClientAuth::Required)) {
        Err(ServerError::Tls(server::tls::TlsError::File { what, path, .. })) => {
            assert_eq!(what, "cert");
            assert!(path.ends_with("absent.crt"), "{path}");
        }
        other => panic!("a missing certificate: {other:?}"),
    }
    let mismatched = Pair {
        cert: c.server_a.cert.clone(),
        key: c.server_b.key.clone(),
    };
    match try_start(tls_config(&mismatched, None, ClientAuth::Required)) {
        Err(ServerError::Tls(server::tls::TlsError::Rejected(m))) => {
            let (cert, key) = (c.server_a.cert.display(), c.server_b.key.display());
            assert!(
                m.starts_with(&format!("cert {cert} with key {key}: ")),
                "{m}"
            );
        }
        other => panic!("a key that is not the certificate's: {other:?}"),
    }
    // A key file as the client CA: no certificate in it.
    let bad_ca = tls_config(&c.server_a, Some(&c.ca.key), ClientAuth::Required);
    match try_start(bad_ca) {
        Err(ServerError::Tls(server::tls::TlsError::File { what, .. })) => {
            assert_eq!(what, "client_ca")
        }
        other => panic!("a CA file without certificates: {other:?}"),
    }
    // Client certificates asked for, required or optional, with no CA to
    // check them against: refused, never served without client auth.
    for auth in [ClientAuth::Required, ClientAuth::Optional] {
        let mut no_ca = tls_config(&c.server_a, None, auth);
        no_ca.client_auth = Some(auth);
        let e = try_start(no_ca).unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid configuration: [tls] client_auth needs client_ca, the CA client certificates must chain to",
            "{auth:?}"
        );
    }
}

/// chainlogd as a process: the `[tls]` section with paths relative to the
/// config file, the printed line, and SIGHUP.
#[test]
fn chainlogd_reloads_its_certificate_on_sighup() {
    let test = "chainlogd_reloads_its_certificate_on_sighup";
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = certs_or_skip(test, dir.path()) else {
        return;
    };
    let k = key("svc", "default", &["append", "read"], &[]);
    let live = live_pair(dir.path(), &c.server_a);
    let cfg = write_config(dir.path(), "127.0.0.1:0", &[&k], "");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    // Relative to the config file's directory.
    text = text.replace(
        "data_dir = \".\"\n",
        "data_dir = \".\"\n\n[tls]\ncert = \"live.crt\"\nkey = \"live.key\"\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let d = Daemon::with_config(dir.path());
    wait_until("the tls line", || {
        d.stdout
            .lock()
            .unwrap()
            .contains("chainlogd: tls on protocol, http\n")
    });
    let addr = d.addr.to_string();
    let mut first = Client::connect_tls(&addr, &trusting(&c.ca)).unwrap();
    assert_eq!(first.peer_certificate().unwrap(), c.server_a.der());
    first.auth(&k.text).unwrap();

    certs::install(&c.server_b, &live);
    let pid = d.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c2 = Client::connect_tls(&addr, &trusting(&c.ca)).unwrap();
        if c2.peer_certificate().unwrap() == c.server_b.der() {
            c2.auth(&k.text).unwrap();
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still the old certificate: {}",
            d.stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Still running, the first connection still served.
    assert_eq!(
        first.append(&event("acme", "u1", "a.b", "r")).unwrap().seq,
        0
    );
    // The log line comes after the swap that the loop above saw.
    wait_until("the reload's log line", || {
        d.stderr
            .lock()
            .unwrap()
            .contains("SIGHUP: tls certificate, key and client CA reloaded")
    });
    let status = d.terminate();
    assert!(status.success(), "{status:?}");
}

/// The start-up warning names each listener beyond loopback that is
/// plain, and no other.
#[test]
fn a_plain_listener_beyond_loopback_is_warned_about_and_a_tls_one_is_not() {
    let test = "a_plain_listener_beyond_loopback_is_warned_about_and_a_tls_one_is_not";
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = certs_or_skip(test, dir.path()) else {
        return;
    };
    let k = key("svc", "default", &["append"], &[]);
    let warning = "listening beyond loopback without TLS";
    for (tls, warned) in [
        ("", vec!["protocol", "http"]),
        (
            "\n[tls]\ncert = \"live.crt\"\nkey = \"live.key\"\nlisteners = [\"http\"]\n",
            vec!["protocol"],
        ),
        ("\n[tls]\ncert = \"live.crt\"\nkey = \"live.key\"\n", vec![]),
    ] {
        let run = tempfile::tempdir().unwrap();
        live_pair(run.path(), &c.server_a);
        let cfg = write_config(run.path(), "0.0.0.0:0", &[&k], "");
        let text = std::fs::read_to_string(&cfg)
            .unwrap()
            .replace(
                "http_listen = \"127.0.0.1:0\"",
                "http_listen = \"0.0.0.0:0\"",
            )
            .replace("data_dir = \".\"\n", &format!("data_dir = \".\"\n{tls}"));
        std::fs::write(&cfg, text).unwrap();
        let d = Daemon::with_config(run.path());
        // The warnings come before the log line that says it listens.
        wait_until("chainlogd's start on stderr", || {
            d.stderr.lock().unwrap().contains("chainlogd listening")
        });
        let err = d.stderr.lock().unwrap().clone();
        let lines: Vec<&str> = err.lines().filter(|l| l.contains(warning)).collect();
        let named: Vec<&str> = ["protocol", "http"]
            .into_iter()
            .filter(|l| {
                lines.iter().any(|line| {
                    line.contains(&format!("listener=\"{l}\""))
                        || line.contains(&format!("listener={l} "))
                })
            })
            .collect();
        assert_eq!(named, warned, "{tls}: {err}");
        assert_eq!(lines.len(), warned.len(), "{err}");
        drop(d);
    }
}

/// A raw TLS connection (rustls, no chainlog client) that has sent the
/// protocol's preamble and authenticated with `key`.
fn raw_tls(
    addr: std::net::SocketAddr,
    ca: &Pair,
    key: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    use std::io::Write;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(&ca.cert).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    s.write_all(&proto::frame::client_preamble(1, 1)).unwrap();
    let mut p = [0u8; proto::frame::PREAMBLE_LEN];
    s.read_exact(&mut p).unwrap();
    assert_eq!(proto::frame::parse_server_preamble(&p).unwrap(), 1);
    let mut out = Vec::new();
    proto::msg::encode_request(&mut out, 1, &proto::Request::Auth { key: key.into() });
    s.write_all(&out).unwrap();
    let mut body = Vec::new();
    let h = proto::frame::read_frame(&mut s, 1 << 20, Duration::from_secs(10), &mut body).unwrap();
    assert!(matches!(
        proto::msg::decode_response(h.kind, &body).unwrap(),
        proto::Response::AuthOk { .. }
    ));
    s
}

/// Over TLS as over TCP: a burst of requests beyond what a connection may
/// owe, then the client's close (with close_notify, and without: a bare
/// TCP half-close, which rustls reads as an unexpected end), gets every
/// answer in order and then the server's own close_notify; a query whose
/// pages are a MiB each comes back whole.
#[test]
fn over_tls_a_burst_then_a_close_gets_every_answer_and_large_pages_come_back_whole() {
    use std::io::Write;
    let test = "over_tls_a_burst_then_a_close_gets_every_answer";
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = certs_or_skip(test, dir.path()) else {
        return;
    };
    let k = key("svc", "default", &["append", "read"], &[]);
    let live = live_pair(dir.path(), &c.server_a);
    let server = tls_server(
        dir.path(),
        &[&k],
        tls_config(&live, None, ClientAuth::Required),
    );
    for round in 0..6u64 {
        let mut s = raw_tls(server.addr(), &c.ca, &k.text);
        // 200 pings and 100 appends in one write: more than the 64 replies
        // a connection may owe at once.
        let mut out = Vec::new();
        for i in 0..200u32 {
            proto::msg::encode_request(&mut out, 1000 + i, &proto::Request::Ping(u64::from(i)));
        }
        let bodies: Vec<Vec<u8>> = (0..100)
            .map(|i| event("acme", &format!("u{i}"), "a.b", "r").encode())
            .collect();
        for (i, b) in bodies.iter().enumerate() {
            proto::msg::encode_request(
                &mut out,
                2000 + i as u32,
                &proto::Request::Append {
                    events: vec![b.as_slice()],
                },
            );
        }
        s.write_all(&out).unwrap();
        s.flush().unwrap();
        if round % 2 == 0 {
            s.conn.send_close_notify();
            s.flush().unwrap();
        }
        s.sock.shutdown(std::net::Shutdown::Write).unwrap();
        let mut body = Vec::new();
        let mut next = |s: &mut rustls::StreamOwned<_, _>| {
            let h = proto::frame::read_frame(s, 4 << 20, Duration::from_secs(10), &mut body)
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            (
                h.request_id,
                proto::msg::decode_response(h.kind, &body).unwrap(),
            )
        };
        for i in 0..200u32 {
            assert_eq!(
                next(&mut s),
                (1000 + i, proto::Response::Pong(u64::from(i)))
            );
        }
        for i in 0..100u32 {
            match next(&mut s) {
                (id, proto::Response::Receipts(r)) if id == 2000 + i => {
                    assert_eq!(r[0].seq, round * 100 + u64::from(i), "round {round}")
                }
                other => panic!("round {round}, append {i}: {other:?}"),
            }
        }
        // The server's close_notify: an orderly end, not a cut.
        let mut rest = [0u8; 64];
        assert_eq!(s.read(&mut rest).unwrap(), 0, "round {round}");
    }

    // 4,000 events of about 600 bytes: pages of a MiB, several of them.
    let mut client = Client::connect_tls(&server.addr().to_string(), &trusting(&c.ca)).unwrap();
    client.auth(&k.text).unwrap();
    let detail = "x".repeat(500);
    for b in 0..40 {
        let batch: Vec<_> = (0..100)
            .map(|i| {
                let mut e = event("big", &format!("u{b}-{i}"), "a.b", "r");
                e.metadata = format!("{{\"detail\":\"{detail}\"}}");
                e
            })
            .collect();
        client.append_batch(&batch).unwrap();
    }
    let q = client::Query {
        tenant_id: "big".into(),
        ..client::Query::all()
    };
    let actors: Vec<String> = client.query(q).map(|e| e.unwrap().event.actor_id).collect();
    let expected: Vec<String> = (0..40)
        .flat_map(|b| (0..100).map(move |i| format!("u{b}-{i}")))
        .collect();
    assert_eq!(actors, expected);
}

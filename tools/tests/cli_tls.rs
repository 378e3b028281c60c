//! The CLI over TLS: `--tls-ca` to trust the server, `--tls-cert` and
//! `--tls-key` for a client certificate, the same settings from the
//! config file, and the errors without them. Certificates come from
//! `openssl`, made by the server tests' helper.
#![allow(clippy::unwrap_used)]

#[path = "../../server/tests/common/certs.rs"]
mod certs;
mod cli_common;

use cli_common::*;
use server::config::{Listener, TlsConfig};

fn tls_running(dir: &std::path::Path, c: &certs::Certs, client_ca: bool) -> Running {
    start_with(dir, |cfg| {
        cfg.tls = Some(TlsConfig {
            cert: c.server_a.cert.clone(),
            key: c.server_a.key.clone(),
            client_ca: if client_ca {
                c.ca.cert.clone()
            } else {
                Default::default()
            },
            client_auth: None,
            listeners: vec![Listener::Protocol],
        })
    })
}

fn certs_or_skip(test: &str, dir: &std::path::Path) -> Option<certs::Certs> {
    if certs::openssl_found() {
        return Some(certs::make(&dir.join("certs")));
    }
    if std::env::var("CHAINLOG_TESTS_MUST_RUN").is_ok_and(|v| v == "1") {
        panic!("{test} must run here but the openssl command is not installed");
    }
    eprintln!("SKIPPED {test}: the openssl command is not installed");
    None
}

#[test]
fn the_cli_appends_and_queries_over_tls_with_a_ca_file_or_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = certs_or_skip("the_cli_appends_and_queries_over_tls", dir.path()) else {
        return;
    };
    let r = tls_running(&dir.path().join("data"), &c, false);
    let ca = c.ca.cert.to_str().unwrap();
    let out = r.run(
        &[
            "--tls-ca",
            ca,
            "append",
            "--tenant",
            "acme",
            "--actor",
            "u1",
            "--action",
            "user.login",
            "--resource",
            "session",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("0\t"),
        "{}",
        text(&out.stdout)
    );

    // From the config file instead of flags.
    let file = dir.path().join("cli.toml");
    std::fs::write(&file, format!("tls_ca = {:?}\n", ca)).unwrap();
    let out = r.run(&["--config", file.to_str().unwrap(), "query", "--json"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["actor_id"], "u1");

    // Plain TCP to a TLS port, and TLS trusting the wrong CA: exit 1 with
    // the reason.
    let out = r.run(&["query"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot connect to"),
        "{}",
        text(&out.stderr)
    );
    let out = r.run(
        &["--tls-ca", c.rogue_ca.cert.to_str().unwrap(), "query"],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("UnknownIssuer"),
        "{}",
        text(&out.stderr)
    );
    // A CA file that is not one.
    let out = r.run(&["--tls-ca", c.ca.key.to_str().unwrap(), "query"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no CERTIFICATE in it"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_cli_presents_a_client_certificate_when_the_server_requires_one() {
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = certs_or_skip("the_cli_presents_a_client_certificate", dir.path()) else {
        return;
    };
    let r = tls_running(&dir.path().join("data"), &c, true);
    let ca = c.ca.cert.to_str().unwrap();
    let with_cert = [
        "--tls-ca",
        ca,
        "--tls-cert",
        c.client.cert.to_str().unwrap(),
        "--tls-key",
        c.client.key.to_str().unwrap(),
    ];
    let out = r.run(&[&with_cert[..], &["query", "--count"]].concat(), "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "0");
    let out = r.run(&["--tls-ca", ca, "query", "--count"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("CertificateRequired"),
        "{}",
        text(&out.stderr)
    );
    // --tls-cert without --tls-key is a usage error.
    let out = r.run(&["--tls-ca", ca, "--tls-cert", ca, "query"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn tls_settings_from_the_environment_and_from_a_file_beside_its_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = certs_or_skip("tls_settings_from_the_environment", dir.path()) else {
        return;
    };
    // CHAINLOG_TLS=1: TLS with the system's trust, which SSL_CERT_FILE
    // names (rustls-native-certs reads it); 0: plain TCP, which a TLS port
    // refuses.
    let server_auth = tls_running(&dir.path().join("data-a"), &c, false);
    let with_env = |tls: &str| {
        server_auth
            .cmd(&["query", "--count"])
            .env("CHAINLOG_TLS", tls)
            .env("SSL_CERT_FILE", &c.ca.cert)
            .output()
            .unwrap()
    };
    let out = with_env("1");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "0\n");
    let out = with_env("true");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = with_env("0");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot connect to"),
        "{}",
        text(&out.stderr)
    );

    // A config file whose TLS paths are relative to its own directory,
    // run from another working directory, against a server that requires
    // a client certificate.
    let r = tls_running(&dir.path().join("data-b"), &c, true);
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    for (from, to) in [
        (&c.ca.cert, "ca.crt"),
        (&c.client.cert, "me.crt"),
        (&c.client.key, "me.key"),
    ] {
        std::fs::copy(from, conf.join(to)).unwrap();
    }
    let file = conf.join("cli.toml");
    std::fs::write(
        &file,
        "tls_ca = \"ca.crt\"\ntls_cert = \"me.crt\"\ntls_key = \"me.key\"\n",
    )
    .unwrap();
    let out = r
        .cmd(&["--config", file.to_str().unwrap(), "query", "--count"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "0\n");
    // A certificate without its key is an error, not a silent plain start.
    std::fs::write(&file, "tls_ca = \"ca.crt\"\ntls_cert = \"me.crt\"\n").unwrap();
    let out = r
        .cmd(&["--config", file.to_str().unwrap(), "query", "--count"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "chainlog: {}: tls_cert and tls_key go together: set both or neither\n",
            file.display()
        )
    );

    // bench speaks only plain TCP: asked for TLS it says so, exit 2.
    let out = r
        .cmd(&[
            "--tls-ca",
            c.ca.cert.to_str().unwrap(),
            "bench",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("bench does not speak TLS"),
        "{}",
        text(&out.stderr)
    );
}

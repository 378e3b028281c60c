//! Test certificates, made with the `openssl` command (which `.ci/run`
//! installs): a CA, server certificates for `localhost` and 127.0.0.1, a
//! client certificate, and a second, untrusted CA with a client
//! certificate of its own. Also included by the tools' tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pair {
    /// The certificate's DER bytes (what a TLS peer presents).
    pub fn der(&self) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&self.cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl x509: {out:?}");
        out.stdout
    }
}

/// Everything a TLS test needs, under one directory.
#[derive(Debug, Clone)]
pub struct Certs {
    pub ca: Pair,
    /// Two server certificates from `ca` (for reloads), `localhost` and
    /// 127.0.0.1 in both.
    pub server_a: Pair,
    pub server_b: Pair,
    /// A client certificate from `ca`.
    pub client: Pair,
    /// A CA nobody trusts, and a client certificate from it.
    pub rogue_ca: Pair,
    pub rogue_client: Pair,
}

/// Whether the `openssl` command is here.
pub fn openssl_found() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ca(dir: &Path, name: &str, cn: &str) -> Pair {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "3650",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    Pair {
        cert: dir.join(crt),
        key: dir.join(key),
    }
}

fn leaf(dir: &Path, name: &str, cn: &str, issuer: &Pair, ext: &str) -> Pair {
    let (crt, key, csr, cnf) = (
        format!("{name}.crt"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
    );
    std::fs::write(dir.join(&cnf), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            issuer.cert.to_str().unwrap(),
            "-CAkey",
            issuer.key.to_str().unwrap(),
            "-set_serial",
            &format!("0x{:x}", serial(name)),
            "-out",
            &crt,
            "-days",
            "3650",
            "-extfile",
            &cnf,
        ],
    );
    Pair {
        cert: dir.join(crt),
        key: dir.join(key),
    }
}

/// A distinct serial per certificate name.
fn serial(name: &str) -> u64 {
    name.bytes().fold(0x1000u64, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    }) & 0x7fff_ffff_ffff
}

const SERVER_EXT: &str = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n";
const CLIENT_EXT: &str =
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n";

/// Makes the whole set under `dir`.
pub fn make(dir: &Path) -> Certs {
    std::fs::create_dir_all(dir).unwrap();
    let ca_pair = ca(dir, "ca", "chainlog test CA");
    let rogue = ca(dir, "rogue-ca", "somebody else's CA");
    Certs {
        server_a: leaf(dir, "server-a", "localhost", &ca_pair, SERVER_EXT),
        server_b: leaf(dir, "server-b", "localhost", &ca_pair, SERVER_EXT),
        client: leaf(dir, "client", "billing-service", &ca_pair, CLIENT_EXT),
        rogue_client: leaf(dir, "rogue-client", "intruder", &rogue, CLIENT_EXT),
        ca: ca_pair,
        rogue_ca: rogue,
    }
}

/// Copies `from` to the paths `to` names, each by rename of a full file so
/// that a reload never reads a half-written one.
pub fn install(from: &Pair, to: &Pair) {
    for (src, dst) in [(&from.cert, &to.cert), (&from.key, &to.key)] {
        let tmp = dst.with_extension("tmp");
        std::fs::copy(src, &tmp).unwrap();
        std::fs::rename(&tmp, dst).unwrap();
    }
}

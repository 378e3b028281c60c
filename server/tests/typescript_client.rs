//! The TypeScript client's own tests (`clients/typescript`, Node's test
//! runner), run here so that the one test command runs them too, against
//! this build's chainlogd. `.ci/run` installs the package's two dev
//! dependencies (`npm ci`); without Node or them the test skips, or fails
//! under `CHAINLOG_TESTS_MUST_RUN=1`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn the_typescript_clients_tests_pass_against_this_chainlogd() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/typescript");
    let have_node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_node || !dir.join("node_modules/typescript").exists() {
        return common::skip(
            "the_typescript_clients_tests_pass_against_this_chainlogd",
            "needs node and `npm ci` in clients/typescript",
        );
    }
    let out = Command::new("npm")
        .arg("test")
        .current_dir(&dir)
        .env("CHAINLOGD_BIN", env!("CARGO_BIN_EXE_chainlogd"))
        .env("CHAINLOG_TESTS_MUST_RUN", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "npm test failed:\n{text}");
    // Node's runner ends with its counts: every test ran and passed.
    assert!(text.contains("# fail 0"), "{text}");
    assert!(text.contains("# skipped 0"), "{text}");
}

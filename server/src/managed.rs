//! What admins change at runtime, kept in `<data_dir>/managed.json`.
//!
//! The config file is the operator's and the server never writes it.
//! Changes made over the protocol are kept in this file, and applied over
//! the config at every start:
//! - keys created at runtime (their hash, never their text) add to the
//!   config's;
//! - a revoked runtime key is removed from the file; a revoked config key
//!   is listed under `revoked` by id and hash, so it stays revoked while
//!   the config still holds it (a new config entry with the same id and
//!   another hash is not affected);
//! - a log's schema set at runtime replaces the config's for that log.
//!
//! ```json
//! {
//!   "version": 1,
//!   "keys": [{"id": "billing", "hash": "sha256:...", "log": "default",
//!             "rights": ["append"], "tenants": ["acme"]}],
//!   "revoked": [{"id": "old-admin", "hash": "sha256:..."}],
//!   "schemas": {"default": {"mode": "strict", "actions": ["user.*"]}}
//! }
//! ```
//!
//! The file is written whole, durably, before a change is applied or
//! acknowledged ([`Managed::save`]), so an acknowledged change survives a
//! crash and a crash never leaves half a file.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use proto::msg::Origin;
use serde::{Deserialize, Serialize};

use crate::auth::Keyring;
use crate::config::{KeyConfig, ServerConfig};
use crate::schema::{check_pattern, Mode, Schema};
use crate::ConfigError;

/// The file's name in the data directory.
pub const FILE: &str = "managed.json";
/// The temporary file a new version is written to before it is renamed
/// over [`FILE`].
pub const TMP_FILE: &str = "managed.json.tmp";
/// The format this server writes and reads.
pub const VERSION: u32 = 1;

/// The runtime changes, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Managed {
    /// [`VERSION`].
    pub version: u32,
    /// Keys created at runtime, in creation order.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// Config keys revoked at runtime.
    #[serde(default)]
    pub revoked: Vec<RevokedKey>,
    /// Schemas set at runtime, by log.
    #[serde(default)]
    pub schemas: BTreeMap<String, ManagedSchema>,
}

impl Default for Managed {
    fn default() -> Self {
        Managed {
            version: VERSION,
            keys: Vec::new(),
            revoked: Vec::new(),
            schemas: BTreeMap::new(),
        }
    }
}

/// A config key that was revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokedKey {
    /// Its id.
    pub id: String,
    /// Its hash, `sha256:` and lowercase hex.
    pub hash: String,
}

/// A schema set at runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagedSchema {
    /// Strict or permissive.
    pub mode: Mode,
    /// Allowed action patterns; empty allows every action.
    pub actions: Vec<String>,
}

impl Managed {
    /// The file's path under `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(FILE)
    }

    /// Reads `<data_dir>/managed.json`; no file means no changes. A file
    /// that does not parse is an error, never ignored: it may hold
    /// revocations.
    pub fn load(data_dir: &Path) -> Result<Managed, ConfigError> {
        let path = Managed::path(data_dir);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Managed::default()),
            Err(e) => return Err(ConfigError::Io(path, e)),
        };
        let bad = |why: String| ConfigError::Invalid(format!("{}: {why}", path.display()));
        let m: Managed = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
        if m.version != VERSION {
            return Err(bad(format!(
                "version {} (this server reads version {VERSION})",
                m.version
            )));
        }
        for (log, s) in &m.schemas {
            for a in &s.actions {
                check_pattern(a)
                    .map_err(|why| bad(format!("log {log:?}: action pattern {a:?} {why}")))?;
            }
        }
        Ok(m)
    }

    /// Writes the file, durably, replacing the previous version:
    /// 1. the whole new content goes to `managed.json.tmp`, then `fsync`:
    ///    it is on disk before any name points at it;
    /// 2. rename it over `managed.json`: atomic, so a crash leaves the old
    ///    version or the new one, never a mix;
    /// 3. `fsync` the directory: the rename itself is durable only then.
    ///
    /// The caller applies the change only after this returns `Ok`.
    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let tmp = data_dir.join(TMP_FILE);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&text)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, Managed::path(data_dir))?;
        File::open(data_dir)?.sync_all()
    }

    /// The keys in force: the config's, less those revoked, and those
    /// created at runtime for a served log (keys for a log no longer
    /// configured stay in the file but open nothing).
    pub fn keyring(&self, config: &ServerConfig) -> Result<Keyring, ConfigError> {
        let served = |log: &str| config.logs.iter().any(|l| l.name == log);
        let entries = config.keys.iter().map(|k| (k, Origin::Config)).chain(
            self.keys
                .iter()
                .filter(|k| served(&k.log))
                .map(|k| (k, Origin::Runtime)),
        );
        let mut ring = Keyring::build(entries).map_err(|e| {
            ConfigError::Invalid(format!(
                "{e} (keys created at runtime are kept in {})",
                Managed::path(&config.data_dir).display()
            ))
        })?;
        ring.retain(|k| {
            k.origin == Origin::Runtime
                || !self
                    .revoked
                    .iter()
                    .any(|r| r.id == k.id && r.hash.eq_ignore_ascii_case(&k.hash_text()))
        });
        Ok(ring)
    }

    /// The schema set at runtime for `log`, if any.
    pub fn schema(&self, log: &str) -> Option<Schema> {
        self.schemas
            .get(log)
            .map(|s| Schema::new(s.mode, s.actions.clone()))
    }

    /// Whether `id` names a key: any config entry (revoked or not, of any
    /// log) or any key created at runtime.
    pub fn id_in_use(&self, config: &ServerConfig, id: &str) -> bool {
        config.keys.iter().any(|k| k.id == id) || self.keys.iter().any(|k| k.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_the_same_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            Managed::load(dir.path()).expect("no file"),
            Managed::default()
        );
        let mut m = Managed::default();
        m.keys.push(KeyConfig {
            id: "k".into(),
            hash: crate::auth::hash_key("clk_x"),
            log: "default".into(),
            rights: vec!["read".into()],
            tenants: vec!["acme".into()],
            events_per_sec: 0,
            burst: 0,
        });
        m.revoked.push(RevokedKey {
            id: "old".into(),
            hash: crate::auth::hash_key("clk_y"),
        });
        m.schemas.insert(
            "default".into(),
            ManagedSchema {
                mode: Mode::Strict,
                actions: vec!["user.*".into()],
            },
        );
        m.save(dir.path()).expect("save");
        assert!(!dir.path().join(TMP_FILE).exists());
        assert_eq!(Managed::load(dir.path()).expect("load"), m);
        std::fs::write(Managed::path(dir.path()), b"{\"version\": 1, \"keys\": [").expect("write");
        assert!(Managed::load(dir.path()).is_err());
        std::fs::write(Managed::path(dir.path()), b"{\"version\": 2}").expect("write");
        assert!(Managed::load(dir.path()).is_err());
    }
}

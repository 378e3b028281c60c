//! API keys: generated at random, stored only as SHA-256 hashes, compared
//! in constant time.
//!
//! A key is `clk_` followed by 48 hex digits (192 random bits), so a fast
//! hash is enough: there is nothing to brute-force. Presenting a key hashes
//! it and compares the hash with every configured one, without stopping at
//! the first match, so the time taken says nothing about which key (or
//! how much of one) matched. A wrong, truncated or unknown key is refused
//! with the same answer.
//!
//! The keys in force change at runtime (an admin creates or revokes one):
//! [`KeyStore`] holds the current [`Keyring`] and a generation that moves
//! with every change, so that a connection checks its key is still in force
//! with one atomic load per request, and looks it up again only after a
//! change.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use proto::msg::{rights, Origin};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ConfigError;

/// One API key (in the config file, and in `managed.json` for keys created
/// at runtime).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// A name for logs and metrics.
    pub id: String,
    /// `sha256:` and the hex SHA-256 of the key text.
    pub hash: String,
    /// The log the key opens.
    pub log: String,
    /// Any of `append`, `read`, `admin`.
    pub rights: Vec<String>,
    /// Tenants it may write and read; empty for every tenant.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Events a second this key may append, over both protocols; 0 for no
    /// limit. Over it, appends are answered `busy` (HTTP 429 with
    /// `Retry-After`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub events_per_sec: u64,
    /// Events the key may append at once after a pause; 0 for one second's
    /// worth.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub burst: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A configured key, ready to compare.
#[derive(Debug, Clone)]
pub struct Key {
    /// Its name in the config (for logs; never the key text).
    pub id: String,
    hash: [u8; 32],
    /// The log it opens.
    pub log: String,
    /// [`rights`] bits.
    pub rights: u8,
    /// The tenants it may write and read; empty for all.
    pub tenants: Vec<String>,
    /// The config file, or created at runtime.
    pub origin: Origin,
    /// Its rate limit, shared by every connection using it.
    pub limit: Option<Arc<crate::rate::RateLimit>>,
}

impl Key {
    /// The server's own key for an ingest (`docs/nats.md`): appends to
    /// `log`, every tenant, no rate limit. It has no text, so no client can
    /// present it.
    pub(crate) fn internal(id: String, log: String) -> Key {
        Key {
            id,
            hash: [0; 32],
            log,
            rights: rights::APPEND,
            tenants: Vec::new(),
            origin: Origin::Config,
            limit: None,
        }
    }

    /// Its stored form: `sha256:` and the hex digest.
    pub fn hash_text(&self) -> String {
        format!("sha256:{}", engine::error::hex(&self.hash))
    }

    /// Whether `other` is the same key (same id and hash), whatever its
    /// rights now.
    pub fn same_key(&self, other: &Key) -> bool {
        self.id == other.id && self.hash == other.hash
    }

    /// Whether the key may act for `tenant`.
    pub fn allows_tenant(&self, tenant: &str) -> bool {
        self.tenants.is_empty() || self.tenants.iter().any(|t| t == tenant)
    }

    /// Whether the key holds every right in `r`.
    pub fn has(&self, r: u8) -> bool {
        self.rights & r == r
    }
}

/// Every configured key.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    /// Parses the configured keys.
    pub fn new(configs: &[KeyConfig]) -> Result<Keyring, ConfigError> {
        Keyring::build(configs.iter().map(|k| (k, Origin::Config)))
    }

    /// Parses keys from the config and from runtime changes: ids and hashes
    /// must be unique across them all.
    pub fn build<'a>(
        entries: impl IntoIterator<Item = (&'a KeyConfig, Origin)>,
    ) -> Result<Keyring, ConfigError> {
        let mut keys = Vec::new();
        for (k, origin) in entries {
            let bad = |why: &str| ConfigError::Invalid(format!("key {:?}: {why}", k.id));
            let hex = k
                .hash
                .strip_prefix("sha256:")
                .ok_or_else(|| bad("hash must be \"sha256:\" and 64 hex digits"))?;
            let hash = parse_hex32(hex)
                .ok_or_else(|| bad("hash must be \"sha256:\" and 64 hex digits"))?;
            let mut r = 0;
            for name in &k.rights {
                r |= right_bit(name)
                    .ok_or_else(|| bad(&format!("unknown right {name:?} (append, read, admin)")))?;
            }
            if keys.iter().any(|o: &Key| o.id == k.id || o.hash == hash) {
                return Err(bad("another key has the same id or the same hash"));
            }
            keys.push(Key {
                id: k.id.clone(),
                hash,
                log: k.log.clone(),
                rights: r,
                tenants: k.tenants.clone(),
                origin,
                limit: (k.events_per_sec > 0)
                    .then(|| Arc::new(crate::rate::RateLimit::new(k.events_per_sec, k.burst))),
            });
        }
        Ok(Keyring { keys })
    }

    /// Keeps only the keys `keep` accepts.
    pub fn retain(&mut self, keep: impl FnMut(&Key) -> bool) {
        self.keys.retain(keep);
    }

    /// The key whose hash matches `presented`'s, compared in constant time
    /// against every key.
    pub fn authenticate(&self, presented: &str) -> Option<&Key> {
        let h: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for k in &self.keys {
            if ct_eq(&h, &k.hash) {
                found = Some(k);
            }
        }
        found
    }

    /// The keys.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }
}

/// The keys in force, replaced whole when an admin changes them.
#[derive(Debug)]
pub struct KeyStore {
    ring: RwLock<Arc<Keyring>>,
    /// Moves (under the write lock, after the swap) with every change.
    generation: AtomicU64,
}

impl KeyStore {
    /// Serves `ring`.
    pub fn new(ring: Keyring) -> KeyStore {
        KeyStore {
            ring: RwLock::new(Arc::new(ring)),
            generation: AtomicU64::new(0),
        }
    }

    /// The key `presented` opens (see [`Keyring::authenticate`]), and the
    /// generation it was found in.
    pub fn authenticate(&self, presented: &str) -> Option<(Key, u64)> {
        let ring = self.ring.read();
        let g = self.generation.load(Ordering::Acquire);
        ring.authenticate(presented).map(|k| (k.clone(), g))
    }

    /// Changes with every [`replace`](Self::replace): while it has not
    /// moved, a key found earlier is still in force.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// `key` as it now stands, or `None` if it is no longer in force
    /// (revoked, or revoked and created again under the same id: another
    /// key).
    pub fn current(&self, key: &Key) -> Option<Key> {
        self.ring
            .read()
            .keys
            .iter()
            .find(|k| k.same_key(key))
            .cloned()
    }

    /// The keys in force.
    pub fn ring(&self) -> Arc<Keyring> {
        self.ring.read().clone()
    }

    /// Puts `ring` in force; every connection notices at its next request.
    /// A key that stays (same id and hash) with the same rate limit keeps
    /// its bucket: a change to other keys must not refill it.
    pub fn replace(&self, mut ring: Keyring) {
        let mut r = self.ring.write();
        for k in &mut ring.keys {
            let old = r.keys.iter().find(|o| o.same_key(k));
            if let (Some(new), Some(old)) = (&k.limit, old.and_then(|o| o.limit.as_ref())) {
                if new.same_settings(old) {
                    k.limit = Some(old.clone());
                }
            }
        }
        *r = Arc::new(ring);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// The bit of a right's name (`append`, `read`, `admin`).
pub fn right_bit(name: &str) -> Option<u8> {
    match name {
        "append" => Some(rights::APPEND),
        "read" => Some(rights::READ),
        "admin" => Some(rights::ADMIN),
        _ => None,
    }
}

/// The names of the rights in `bits`, in bit order.
pub fn right_names(bits: u8) -> Vec<String> {
    [
        (rights::APPEND, "append"),
        (rights::READ, "read"),
        (rights::ADMIN, "admin"),
    ]
    .iter()
    .filter(|(b, _)| bits & b != 0)
    .map(|(_, n)| (*n).to_string())
    .collect()
}

/// Equality without data-dependent branches.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The stored form of a key: `sha256:` and the hex digest.
pub fn hash_key(key: &str) -> String {
    format!(
        "sha256:{}",
        engine::error::hex(&Sha256::digest(key.as_bytes()))
    )
}

/// A new random key.
pub fn generate_key() -> std::io::Result<String> {
    let mut b = [0u8; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(format!("clk_{}", engine::error::hex(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_key_authenticates() {
        let key = generate_key().expect("urandom");
        assert_eq!(key.len(), 52);
        let ring = Keyring::new(&[KeyConfig {
            id: "k".into(),
            hash: hash_key(&key),
            log: "default".into(),
            rights: vec!["append".into()],
            tenants: vec![],
            events_per_sec: 0,
            burst: 0,
        }])
        .expect("valid");
        assert_eq!(ring.authenticate(&key).map(|k| k.id.as_str()), Some("k"));
        assert!(ring.authenticate(&key[..51]).is_none());
        assert!(ring.authenticate(&format!("{key}0")).is_none());
        assert!(ring.authenticate("").is_none());
    }

    fn limited(id: &str, per_sec: u64) -> KeyConfig {
        KeyConfig {
            id: id.into(),
            hash: hash_key(&format!("clk_{id}")),
            log: "default".into(),
            rights: vec!["append".into()],
            tenants: vec![],
            events_per_sec: per_sec,
            burst: 10,
        }
    }

    #[test]
    fn a_key_change_keeps_the_other_keys_buckets() {
        // One event a second: nothing refills while the test runs.
        let store = KeyStore::new(Keyring::new(&[limited("a", 1)]).expect("valid"));
        let bucket = |store: &KeyStore, id: &str| {
            store
                .ring()
                .keys()
                .iter()
                .find(|k| k.id == id)
                .and_then(|k| k.limit.clone())
        };
        let a = bucket(&store, "a").expect("limited");
        assert_eq!(a.take(10), Ok(()), "the burst");
        assert!(a.take(1).is_err(), "empty");
        // Another key created: "a" keeps its (empty) bucket.
        store.replace(Keyring::new(&[limited("a", 1), limited("b", 1)]).expect("valid"));
        let kept = bucket(&store, "a").expect("limited");
        assert!(Arc::ptr_eq(&kept, &a));
        assert!(kept.take(1).is_err(), "not refilled");
        // Its limit changed: a new bucket, full.
        store.replace(Keyring::new(&[limited("a", 2)]).expect("valid"));
        let changed = bucket(&store, "a").expect("limited");
        assert!(!Arc::ptr_eq(&changed, &a));
        assert_eq!(changed.take(10), Ok(()));
    }
}

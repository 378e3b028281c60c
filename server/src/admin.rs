//! The admin operations: a log's keys and schema, read and changed at
//! runtime.
//!
//! Each needs the admin right on a key with no tenant limit and acts on
//! that key's log. A change is checked, written to `managed.json` (durably,
//! see [`Managed::save`]), put in force, and only then answered. The lock
//! on the server's [`Managed`] is held throughout, so that changes from
//! different connections reach the file and the server's memory in the
//! same order.

use proto::msg::{
    rights, ErrorCode, ErrorReply, KeyInfo, Origin, SchemaInfo, SchemaMode, SchemaSpec,
};

use crate::auth::{generate_key, hash_key, right_names, Key};
use crate::config::KeyConfig;
use crate::ctx::Ctx;
use crate::managed::{Managed, ManagedSchema, RevokedKey};
use crate::schema::{check_pattern, Mode, Schema};
use crate::store::LogState;

/// The longest key id, in bytes.
pub const MAX_ID_BYTES: usize = 64;
/// The most tenants a key created at runtime may name.
pub const MAX_KEY_TENANTS: usize = 256;
/// The most keys created at runtime (and not revoked) per log. Every
/// `AUTH` compares against every key, and every change rewrites the file.
pub const MAX_RUNTIME_KEYS: usize = 1000;
/// The most action patterns a schema set at runtime may hold.
pub const MAX_PATTERNS: usize = 1000;

/// Whether `key` may use the admin operations.
pub(crate) fn allowed(key: &Key) -> bool {
    key.has(rights::ADMIN) && key.tenants.is_empty()
}

fn invalid(message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorCode::InvalidRequest, message)
}

fn internal(message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorCode::Internal, message)
}

/// The keys in force on `log`, by id: never their text or hash.
pub(crate) fn list_keys(ctx: &Ctx, log: &str) -> Vec<KeyInfo> {
    let ring = ctx.keys.ring();
    let mut keys: Vec<KeyInfo> = ring
        .keys()
        .iter()
        .filter(|k| k.log == log)
        .map(|k| KeyInfo {
            id: k.id.clone(),
            origin: k.origin,
            rights: k.rights,
            tenants: k.tenants.clone(),
        })
        .collect();
    keys.sort_by(|a, b| a.id.cmp(&b.id));
    keys
}

/// Creates a key on `by`'s log; returns its text, which is not kept.
pub(crate) fn create_key(
    ctx: &Ctx,
    by: &Key,
    state: &LogState,
    id: String,
    rights: u8,
    tenants: Vec<String>,
) -> Result<String, ErrorReply> {
    check_id(&id)?;
    if rights == 0 || rights & !rights::ALL != 0 {
        return Err(invalid(format!(
            "rights {rights:#04x}: need at least one of 1 (append), 2 (read), 4 (admin), and no other bit"
        )));
    }
    check_tenants(&tenants, state.config.max_field_bytes)?;
    let mut managed = ctx.managed.lock();
    if managed.id_in_use(&ctx.config, &id) {
        return Err(invalid(format!("key id {id:?} is already in use")));
    }
    if managed.keys.iter().filter(|k| k.log == by.log).count() >= MAX_RUNTIME_KEYS {
        return Err(invalid(format!(
            "this log already has {MAX_RUNTIME_KEYS} keys created at runtime: revoke some first"
        )));
    }
    let text = generate_key().map_err(|e| internal(format!("cannot generate a key: {e}")))?;
    let mut next = managed.clone();
    next.keys.push(KeyConfig {
        id: id.clone(),
        hash: hash_key(&text),
        log: by.log.clone(),
        rights: right_names(rights),
        tenants,
        events_per_sec: 0,
        burst: 0,
    });
    commit_keys(ctx, &mut managed, next)?;
    tracing::info!(log = %by.log, key = %id, by = %by.id, "key created");
    Ok(text)
}

/// Revokes the key `id` of `by`'s log: from the reply on, no request with
/// it is served, on any connection.
pub(crate) fn revoke_key(ctx: &Ctx, by: &Key, id: &str) -> Result<(), ErrorReply> {
    let mut managed = ctx.managed.lock();
    let ring = ctx.keys.ring();
    let Some(key) = ring.keys().iter().find(|k| k.id == id && k.log == by.log) else {
        return Err(invalid(format!("no key {id:?} in force on this log")));
    };
    let mut next = managed.clone();
    match key.origin {
        Origin::Runtime => next.keys.retain(|k| k.id != id),
        Origin::Config => next.revoked.push(RevokedKey {
            id: id.to_owned(),
            hash: key.hash_text(),
        }),
    }
    commit_keys(ctx, &mut managed, next)?;
    // Tails check their key at every step: wake them to end now.
    for s in ctx.logs.values() {
        s.signal_wake();
    }
    tracing::info!(log = %by.log, key = %id, by = %by.id, "key revoked");
    Ok(())
}

/// Writes `next`, then puts its keys in force.
fn commit_keys(ctx: &Ctx, managed: &mut Managed, next: Managed) -> Result<(), ErrorReply> {
    let ring = next
        .keyring(&ctx.config)
        .map_err(|e| internal(e.to_string()))?;
    save(ctx, &next)?;
    *managed = next;
    ctx.keys.replace(ring);
    Ok(())
}

fn save(ctx: &Ctx, next: &Managed) -> Result<(), ErrorReply> {
    next.save(&ctx.config.data_dir).map_err(|e| {
        tracing::error!(error = %e, "cannot write managed.json: change refused");
        internal(format!(
            "cannot write {}: {e}; nothing changed",
            crate::managed::FILE
        ))
    })
}

/// The log's schema.
pub(crate) fn schema(state: &LogState) -> SchemaInfo {
    let (s, runtime) = state.schema_info();
    SchemaInfo {
        origin: if runtime {
            Origin::Runtime
        } else {
            Origin::Config
        },
        spec: SchemaSpec {
            mode: match s.mode {
                Mode::Strict => SchemaMode::Strict,
                Mode::Permissive => SchemaMode::Permissive,
            },
            actions: s.patterns().to_vec(),
        },
    }
}

/// Replaces `by`'s log's schema; the unknown-action counts are recounted
/// under it before this returns.
pub(crate) fn set_schema(
    ctx: &Ctx,
    by: &Key,
    state: &LogState,
    spec: SchemaSpec,
) -> Result<(), ErrorReply> {
    if spec.actions.len() > MAX_PATTERNS {
        return Err(invalid(format!(
            "{} action patterns, more than the maximum of {MAX_PATTERNS}",
            spec.actions.len()
        )));
    }
    let max = state.config.max_field_bytes;
    for a in &spec.actions {
        check_pattern(a).map_err(|why| invalid(format!("action pattern {a:?} {why}")))?;
        if a.len() > max {
            return Err(invalid(format!(
                "action pattern {a:?} is longer than the log's max_field_bytes ({max}): it could match no action"
            )));
        }
    }
    let mode = match spec.mode {
        SchemaMode::Strict => Mode::Strict,
        SchemaMode::Permissive => Mode::Permissive,
    };
    let mut managed = ctx.managed.lock();
    let mut next = managed.clone();
    next.schemas.insert(
        by.log.clone(),
        ManagedSchema {
            mode,
            actions: spec.actions.clone(),
        },
    );
    save(ctx, &next)?;
    *managed = next;
    tracing::info!(log = %by.log, by = %by.id, ?mode, patterns = spec.actions.len(), "schema set");
    state
        .set_schema(Schema::new(mode, spec.actions))
        .map_err(|e| {
            tracing::error!(log = %by.log, error = %e, "recounting unknown actions failed");
            internal(format!(
                "the schema is in force, but recounting unknown actions failed: {e}"
            ))
        })
}

/// 1-64 bytes, no control character, no whitespace.
fn check_id(id: &str) -> Result<(), ErrorReply> {
    if id.is_empty()
        || id.len() > MAX_ID_BYTES
        || id.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(invalid(format!(
            "key id {id:?}: need 1-{MAX_ID_BYTES} bytes of printable characters, without whitespace"
        )));
    }
    Ok(())
}

/// Each tenant as an event's `tenant_id` could be, once.
fn check_tenants(tenants: &[String], max_field_bytes: usize) -> Result<(), ErrorReply> {
    if tenants.len() > MAX_KEY_TENANTS {
        return Err(invalid(format!(
            "{} tenants, more than the maximum of {MAX_KEY_TENANTS}",
            tenants.len()
        )));
    }
    for (i, t) in tenants.iter().enumerate() {
        if t.is_empty() || t.len() > max_field_bytes || t.chars().any(char::is_control) {
            return Err(invalid(format!(
                "tenant {t:?}: need 1-{max_field_bytes} bytes without control characters"
            )));
        }
        if tenants[..i].contains(t) {
            return Err(invalid(format!("tenant {t:?} is named twice")));
        }
    }
    Ok(())
}

//! The API's other routes: checkpoints and proofs, head and stats, schema
//! and keys, health. Each calls the operation the binary protocol calls.

use hyper::{Response, StatusCode};
use proto::msg::{rights, ErrorCode, ErrorReply, Origin, SchemaMode, SchemaSpec};
use serde_json::{json, Value};

use super::body::Body;
use super::json::hex;
use super::reply::{json_response, ok, HttpError};
use super::routes::Request;
use crate::auth::{right_bit, right_names};
use crate::ctx::Ctx;

/// GET /healthz.
pub(crate) fn healthz() -> Response<Body> {
    ok(&json!({"status": "ok"}))
}

/// GET /readyz: every log open and not poisoned.
pub(crate) fn readyz(ctx: &Ctx) -> Response<Body> {
    let mut down = serde_json::Map::new();
    for (name, state) in &ctx.logs {
        if state.log.is_poisoned() {
            down.insert(name.clone(), json!("poisoned"));
        }
    }
    if ctx.stopping() {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "unavailable", "logs": {}, "stopping": true}),
        );
    }
    // Ingests are reported, and do not decide readiness: the API serves
    // while NATS is away (a stopped ingest's log is poisoned, which does).
    let mut ingests = serde_json::Map::new();
    for i in &ctx.ingests {
        let s = i.state();
        ingests.insert(
            i.label().to_string(),
            json!({"state": s.name(), "detail": s.detail(), "pending": i.metrics.pending.load(std::sync::atomic::Ordering::Relaxed)}),
        );
    }
    let mut body = if down.is_empty() {
        json!({"status": "ready"})
    } else {
        json!({"status": "unavailable", "logs": down})
    };
    if !ingests.is_empty() {
        body["ingests"] = serde_json::Value::Object(ingests);
    }
    if down.is_empty() {
        ok(&body)
    } else {
        json_response(StatusCode::SERVICE_UNAVAILABLE, &body)
    }
}

/// Runs `op` on the blocking pool (it signs, syncs, or reads records).
async fn blocking<T, F>(op: F) -> Result<T, HttpError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ErrorReply> + Send + 'static,
{
    match tokio::task::spawn_blocking(op).await {
        Ok(r) => r.map_err(HttpError::from),
        Err(_) => Err(ErrorReply::new(ErrorCode::Internal, "the task failed").into()),
    }
}

/// GET /api/v1/checkpoint.
pub(crate) async fn checkpoint(r: Request) -> Result<Response<Body>, HttpError> {
    let state = r.state.clone();
    let (note, verifier_key) = blocking(move || {
        let issued = state.checkpoints.issue(&state.log).map_err(|e| {
            tracing::warn!(log = %state.config.name, error = %e, "cannot issue a checkpoint");
            ErrorReply::new(ErrorCode::Internal, "cannot issue a checkpoint")
        })?;
        Ok((issued.note, state.checkpoints.verifier().to_string()))
    })
    .await?;
    Ok(ok(&json!({"note": note, "verifier_key": verifier_key})))
}

/// A `u64` query parameter that must be there.
fn required_u64(params: &[(String, String)], name: &str) -> Result<u64, HttpError> {
    let v = params
        .iter()
        .find(|(k, _)| k == name)
        .ok_or_else(|| HttpError::malformed(format!("{name} is required")))?;
    v.1.parse()
        .map_err(|_| HttpError::malformed(format!("{name} must be a non-negative integer")))
}

fn only(params: &[(String, String)], names: &[&str]) -> Result<(), HttpError> {
    match params.iter().find(|(k, _)| !names.contains(&k.as_str())) {
        Some((k, _)) => Err(HttpError::malformed(format!(
            "{k:?} is not a parameter here"
        ))),
        None => Ok(()),
    }
}

/// GET /api/v1/proofs/inclusion?seq=N&size=M.
pub(crate) async fn inclusion_proof(r: Request) -> Result<Response<Body>, HttpError> {
    let params = r.params();
    only(&params, &["seq", "size"])?;
    let (seq, size) = (
        required_u64(&params, "seq")?,
        required_u64(&params, "size")?,
    );
    let (state, key) = (r.state.clone(), r.key.clone());
    let proof = blocking(move || state.inclusion_proof(&key, seq, size)).await?;
    let proto::msg::Response::Inclusion { chain_hash, hashes } = proof else {
        return Err(ErrorReply::new(ErrorCode::Internal, "not an inclusion proof").into());
    };
    Ok(ok(&json!({
        "seq": seq,
        "size": size,
        "chain_hash": hex(&chain_hash),
        "hashes": hashes.iter().map(hex).collect::<Vec<_>>(),
    })))
}

/// GET /api/v1/proofs/consistency?old=N&new=M.
pub(crate) async fn consistency_proof(r: Request) -> Result<Response<Body>, HttpError> {
    let params = r.params();
    only(&params, &["old", "new"])?;
    let (old, new) = (required_u64(&params, "old")?, required_u64(&params, "new")?);
    let state = r.state.clone();
    let proof = blocking(move || state.consistency_proof(old, new)).await?;
    let proto::msg::Response::Consistency { hashes } = proof else {
        return Err(ErrorReply::new(ErrorCode::Internal, "not a consistency proof").into());
    };
    Ok(ok(&json!({
        "old": old,
        "new": new,
        "hashes": hashes.iter().map(hex).collect::<Vec<_>>(),
    })))
}

/// GET /api/v1/head.
pub(crate) fn head(r: &Request) -> Response<Body> {
    match r.state.log.head() {
        Some(h) => ok(&json!({"seq": h.seq, "hash": hex(&h.hash)})),
        None => ok(&json!({"seq": null, "hash": null})),
    }
}

/// GET /api/v1/stats.
pub(crate) fn stats(r: &Request) -> Response<Body> {
    let s = r.state.stats();
    let mut body = json!({
        "log": s.log,
        "next_seq": s.next_seq,
        "head_hash": hex(&s.head_hash),
        "head_created_at": (s.next_seq > 0).then(|| proto::time::format(s.head_created_at)),
        "appends": s.appends,
        "syncs": s.syncs,
        "segments": s.segments,
        "unknown_actions": s.unknown_actions,
    });
    let ingests = crate::ingest::stats_for(&r.ctx.ingests, &s.log);
    if !ingests.is_empty() {
        body["ingests"] = ingests
            .iter()
            .map(|i| {
                json!({
                    "name": i.name, "state": i.state, "detail": i.detail,
                    "received": i.received, "stored": i.stored, "duplicates": i.duplicates,
                    "dead_lettered": i.dead_lettered, "redelivered": i.redelivered,
                    "pending": i.pending,
                    "last_ack_at": (i.last_ack_ms > 0).then(|| proto::time::format(i.last_ack_ms * 1_000_000)),
                })
            })
            .collect();
    }
    ok(&body)
}

fn origin_name(o: Origin) -> &'static str {
    match o {
        Origin::Config => "config",
        Origin::Runtime => "runtime",
    }
}

fn schema_json(r: &Request) -> Value {
    let info = crate::admin::schema(&r.state);
    json!({
        "origin": origin_name(info.origin),
        "mode": match info.spec.mode {
            SchemaMode::Permissive => "permissive",
            SchemaMode::Strict => "strict",
        },
        "actions": info.spec.actions,
    })
}

/// GET /api/v1/schema.
pub(crate) fn get_schema(r: &Request) -> Response<Body> {
    ok(&schema_json(r))
}

/// The JSON body of a request: an object with exactly the members named
/// (`required` ones present).
async fn object_body(
    r: &mut Request,
    required: &[&str],
    optional: &[&str],
) -> Result<serde_json::Map<String, Value>, HttpError> {
    let body = r.body().await?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| HttpError::malformed(format!("the body is not JSON: {e}")))?;
    let Value::Object(m) = v else {
        return Err(HttpError::malformed("the body must be a JSON object"));
    };
    if let Some(k) = m
        .keys()
        .find(|k| !required.contains(&k.as_str()) && !optional.contains(&k.as_str()))
    {
        return Err(HttpError::malformed(format!("{k:?} is not a member here")));
    }
    if let Some(k) = required.iter().find(|k| !m.contains_key(**k)) {
        return Err(HttpError::malformed(format!("{k:?} is required")));
    }
    Ok(m)
}

fn strings(v: Option<&Value>, what: &str) -> Result<Vec<String>, HttpError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                _ => Err(HttpError::malformed(format!("{what} must be strings"))),
            })
            .collect(),
        Some(_) => Err(HttpError::malformed(format!(
            "{what} must be an array of strings"
        ))),
    }
}

/// PUT /api/v1/schema.
pub(crate) async fn put_schema(mut r: Request) -> Result<Response<Body>, HttpError> {
    let m = object_body(&mut r, &["mode"], &["actions"]).await?;
    let mode = match m.get("mode").and_then(Value::as_str) {
        Some("permissive") => SchemaMode::Permissive,
        Some("strict") => SchemaMode::Strict,
        _ => {
            return Err(HttpError::malformed(
                "mode must be \"permissive\" or \"strict\"",
            ))
        }
    };
    let spec = SchemaSpec {
        mode,
        actions: strings(m.get("actions"), "actions")?,
    };
    let (ctx, key, state) = (r.ctx.clone(), r.key.clone(), r.state.clone());
    blocking(move || crate::admin::set_schema(&ctx, &key, &state, spec)).await?;
    Ok(ok(&schema_json(&r)))
}

/// GET /api/v1/schema/unknown-actions.
pub(crate) fn unknown_actions(r: &Request) -> Response<Body> {
    let list: Vec<Value> = r
        .state
        .unknown
        .list_seen()
        .into_iter()
        .map(|(action, s)| {
            json!({
                "action": action, "count": s.count,
                "first_seen": proto::time::format(s.first),
                "last_seen": proto::time::format(s.last),
            })
        })
        .collect();
    ok(&json!({"actions": list}))
}

/// GET /api/v1/keys.
pub(crate) fn list_keys(r: &Request) -> Response<Body> {
    let keys: Vec<Value> = crate::admin::list_keys(&r.ctx, &r.key.log)
        .into_iter()
        .map(|k| {
            json!({
                "id": k.id,
                "origin": origin_name(k.origin),
                "rights": right_names(k.rights),
                "tenants": k.tenants,
            })
        })
        .collect();
    ok(&json!({"keys": keys}))
}

/// POST /api/v1/keys.
pub(crate) async fn create_key(mut r: Request) -> Result<Response<Body>, HttpError> {
    let m = object_body(&mut r, &["id", "rights"], &["tenants"]).await?;
    let id = match m.get("id") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(HttpError::malformed("id must be a string")),
    };
    let mut bits = 0u8;
    for name in strings(m.get("rights"), "rights")? {
        bits |= right_bit(&name).ok_or_else(|| {
            HttpError::malformed(format!("{name:?} is not a right (append, read, admin)"))
        })?;
    }
    debug_assert_eq!(bits & !rights::ALL, 0);
    let tenants = strings(m.get("tenants"), "tenants")?;
    let (ctx, key, state) = (r.ctx.clone(), r.key.clone(), r.state.clone());
    let made = id.clone();
    let text =
        blocking(move || crate::admin::create_key(&ctx, &key, &state, made, bits, tenants)).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"id": id, "key": text}),
    ))
}

/// DELETE /api/v1/keys/{id}.
pub(crate) async fn revoke_key(r: Request) -> Result<Response<Body>, HttpError> {
    let id = r.param(0).to_owned();
    if !crate::admin::list_keys(&r.ctx, &r.key.log)
        .iter()
        .any(|k| k.id == id)
    {
        return Err(HttpError::not_found(format!(
            "no key {id:?} in force on this log"
        )));
    }
    let (ctx, key) = (r.ctx.clone(), r.key.clone());
    blocking(move || crate::admin::revoke_key(&ctx, &key, &id)).await?;
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

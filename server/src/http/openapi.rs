//! The OpenAPI 3.1 document at `GET /api/v1/openapi.json`, made from the
//! route table, so that it lists every route and nothing else; the shapes
//! of bodies are described in `docs/http.md`, which it links.

use hyper::Response;
use serde_json::{json, Map, Value};

use super::body::Body;
use super::reply::ok;
use super::routes::{Op, ROUTES};
use crate::route::Need;

/// The document.
pub(crate) fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let entry = paths.entry(r.path.to_owned()).or_insert_with(|| json!({}));
        let mut op = json!({
            "operationId": format!("{:?}", r.op),
            "summary": r.summary,
            "responses": responses(r.op),
        });
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if r.need == Need::Nothing {
            op["security"] = json!([]);
        }
        entry[r.method.as_str().to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "chainlog",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A tamper-evident, append-only audit log. Request and reply bodies: docs/http.md.",
        },
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": error_schema()},
        },
        "paths": paths,
    })
}

fn responses(op: Op) -> Value {
    let success = match op {
        Op::Append => "201",
        Op::CreateKey => "201",
        Op::RevokeKey => "204",
        _ => "200",
    };
    json!({
        success: {"description": "Done; the body is described in docs/http.md"},
        "default": {
            "description": "An error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        },
    })
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message", "index", "field"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "index": {"type": ["integer", "null"]},
                "field": {"type": ["string", "null"]},
            },
        }},
    })
}

/// The reply.
pub(crate) fn reply() -> Response<Body> {
    ok(&document())
}

//! JSON shapes shared by the tools.

use engine::error::hex;
use engine::Corruption;
use serde_json::{json, Value};

/// A corruption report as JSON: kind (stable name), message, file, offset,
/// seq.
pub fn corruption(c: &Corruption) -> Value {
    json!({
        "kind": c.kind.name(),
        "message": c.kind.to_string(),
        "file": c.file.display().to_string(),
        "offset": c.offset,
        "seq": c.seq,
    })
}

/// `SEQ:HASH` as the tools print and parse a head.
pub fn head_string(seq: u64, hash: &[u8]) -> String {
    format!("{seq}:{}", hex(hash))
}

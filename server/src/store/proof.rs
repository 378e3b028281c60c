//! Merkle proofs over the served log: a record's inclusion in a tree size,
//! and the consistency of two tree sizes. The engine makes and verifies
//! them; this decides who may have one and maps its errors.

use engine::format::record::KIND_DATA;
use proto::event::EventRef;
use proto::msg::{ErrorCode, ErrorReply, Response};

use super::{engine_error, LogState};
use crate::auth::Key;

impl LogState {
    /// The inclusion proof of record `seq` in the tree of `size` records,
    /// with the record's chain hash. A tenant-limited key may prove only
    /// its tenants' records.
    pub fn inclusion_proof(&self, key: &Key, seq: u64, size: u64) -> Result<Response, ErrorReply> {
        let hashes = self.log.inclusion_proof(seq, size).map_err(proof_error)?;
        let record = self.log.read(seq).map_err(proof_error)?;
        if !key.tenants.is_empty() {
            let allowed = record.kind == KIND_DATA
                && EventRef::decode(&record.payload)
                    .is_ok_and(|e| key.tenants.iter().any(|t| t == e.tenant_id));
            if !allowed {
                return Err(ErrorReply::new(
                    ErrorCode::Forbidden,
                    format!("record {seq} is not of this key's tenants"),
                ));
            }
        }
        Ok(Response::Inclusion {
            chain_hash: record.hash,
            hashes,
        })
    }

    /// The consistency proof from the tree of `old` records to that of
    /// `new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Response, ErrorReply> {
        let hashes = self.log.consistency_proof(old, new).map_err(proof_error)?;
        Ok(Response::Consistency { hashes })
    }
}

/// Sizes and seqs out of range are the request's fault; anything else
/// (a stored tree that cannot give a verified proof) is the server's.
fn proof_error(e: engine::Error) -> ErrorReply {
    match e {
        engine::Error::TreeSizeBeyondDurable { .. }
        | engine::Error::InvalidTreeArguments(_)
        | engine::Error::NotFound { .. } => {
            ErrorReply::new(ErrorCode::InvalidRequest, e.to_string())
        }
        e => {
            tracing::error!(error = %e, "cannot make a proof");
            engine_error(&e)
        }
    }
}

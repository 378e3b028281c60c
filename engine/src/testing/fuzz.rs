//! The bodies of the fuzz targets in `fuzz/`, here so that `cargo test`
//! replays the stored corpus and every crashing input ever found through
//! the same code (`engine/tests/fuzz_corpus.rs`). Each body panics only on a
//! real bug: a decoder that accepts bytes it would not write, or a panic
//! inside the engine.

use std::path::Path;
use std::sync::Arc;

use super::{Rng, SimStorage};
use crate::format::footer::{Footer, FOOTER_LEN};
use crate::format::header::{SegmentHeader, HEADER_LEN};
use crate::format::index::{self, IndexKind, OffsetEntry, TimeEntry, INDEX_HEADER_LEN};
use crate::format::record::{self, Decoded};
use crate::storage::{write_all_at, Storage};
use crate::{Config, Log};

/// The record decoder: whatever it accepts re-encodes to the same bytes.
pub fn record(data: &[u8]) {
    if let Ok(Decoded::Record(r)) = record::decode(data, record::MAX_PAYLOAD_LEN) {
        let mut again = Vec::new();
        record::encode(
            &mut again,
            r.seq,
            r.created_at,
            r.kind,
            r.durable_through,
            r.payload,
            &r.hash,
        );
        assert_eq!(again, data[..r.encoded_len()], "record does not round-trip");
    }
}

/// The segment header decoder: whatever it accepts re-encodes to the same
/// bytes.
pub fn segment_header(data: &[u8]) {
    if let Ok(h) = SegmentHeader::decode(data) {
        assert_eq!(
            h.encode()[..],
            data[..HEADER_LEN],
            "header does not round-trip"
        );
    }
}

/// The footer decoder: whatever it accepts re-encodes to the same bytes and
/// is internally consistent.
pub fn segment_footer(data: &[u8]) {
    if let Ok(f) = Footer::decode(data) {
        assert_eq!(
            f.encode()[..],
            data[..FOOTER_LEN],
            "footer does not round-trip"
        );
        assert_eq!(f.record_count, f.last_seq - f.first_seq + 1);
    }
}

/// The signed-note parser: whatever it accepts re-encodes to the same
/// bytes, and its text, parsed as a checkpoint, re-encodes too.
pub fn signed_note(data: &[u8]) {
    if let Ok(n) = crate::note::Note::parse(data) {
        assert_eq!(n.encode().as_bytes(), data, "note does not round-trip");
        checkpoint(n.text.as_bytes());
    }
}

/// The checkpoint parser (a note's text): whatever it accepts re-encodes to
/// the same text.
pub fn checkpoint(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = crate::note::Checkpoint::parse(text) {
        assert_eq!(
            c.encode().as_deref(),
            Ok(text),
            "checkpoint does not round-trip"
        );
    }
}

/// The tlog-proof decoder: whatever it accepts re-encodes to the same bytes,
/// and checking it never panics.
pub fn tlog_proof(data: &[u8]) {
    if let Ok(p) = crate::note::proof::Proof::parse(data) {
        assert_eq!(p.encode().as_bytes(), data, "proof does not round-trip");
        let key = crate::note::SignerKey::from_seed("fuzz.example/log", &[7; 32])
            .expect("a valid key name")
            .verifier();
        let _ = p.verify(&[key], &p.chain_hash().unwrap_or([0; 32]));
    }
}

/// The tree file decoder: whatever it accepts re-encodes to the same bytes.
pub fn tree_file(data: &[u8]) {
    if let Ok(t) = crate::format::tree::decode(data) {
        assert_eq!(
            crate::format::tree::encode(t.first_seq, &t.frontier),
            data,
            "tree file does not round-trip"
        );
    }
}

/// The index file decoders (the first byte picks the kind): whatever they
/// accept has whole entries that re-encode to the same bytes.
pub fn index_file(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let kind = if sel & 1 == 0 {
        IndexKind::Offset
    } else {
        IndexKind::Time
    };
    if let Ok(h) = index::decode_file(kind, body) {
        let entries = &body[INDEX_HEADER_LEN..];
        assert_eq!(
            entries.len() as u64,
            h.entry_count * kind.entry_len() as u64
        );
        for e in entries.chunks(kind.entry_len()) {
            let again = match kind {
                IndexKind::Offset => OffsetEntry::decode(e).encode().to_vec(),
                IndexKind::Time => TimeEntry::decode(e).encode().to_vec(),
            };
            assert_eq!(again, e);
        }
        assert_eq!(index::encode_file(kind, h.first_seq, entries), body);
    }
}

/// The file kinds an `open_dir` input can create, by selector.
const EXTS: [&str; 5] = ["seg", "idx", "tix", "seg.tmp", "tree"];

/// Splits an input into files: repeated (kind: 1 byte, seq: 1 byte,
/// length: 2 bytes little-endian, bytes), the last one taking what is left.
/// The file is named `{seq:020}.{ext}` with `ext` picked by `kind`.
pub fn split_files(data: &[u8]) -> Vec<(String, &[u8])> {
    let mut files = Vec::new();
    let mut rest = data;
    while let [kind, seq, tail @ ..] = rest {
        let name = format!("{seq:020}.{}", EXTS[*kind as usize % EXTS.len()]);
        let (len, tail) = match tail {
            [a, b, tail @ ..] => (u16::from_le_bytes([*a, *b]) as usize, tail),
            _ => (tail.len(), &[][..]),
        };
        let len = len.min(tail.len());
        files.push((name, &tail[..len]));
        rest = &tail[len..];
    }
    files
}

/// The inverse of [`split_files`], for building seed inputs from a real
/// log directory (names `{seq:020}.{ext}` with seq below 256).
pub fn join_files(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, bytes) in files {
        let (seq, ext) = name.split_once('.').expect("NNN.ext");
        let kind = EXTS.iter().position(|e| *e == ext).expect("a known kind") as u8;
        out.push(kind);
        out.push(seq.parse::<u8>().expect("seq below 256"));
        let len = bytes.len().min(u16::MAX as usize);
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(&bytes[..len]);
    }
    out
}

/// Opens a log directory made of these bytes, reads all of it and verifies
/// it. Refusing is fine; panicking is not, and neither is a disagreement
/// between verification and recovery: a directory that verification finds
/// whole (every segment valid, no tail to cut) must open with exactly the
/// head and the records verification counted, every record must read back,
/// and after one more append the directory must verify again, one record
/// longer.
pub fn open_dir(data: &[u8]) {
    open_dir_checks(data);
}

/// [`open_dir`], returning whether the input was a whole log, so that the
/// cross-checks ran (tests assert that the corpus exercises them).
pub fn open_dir_checks(data: &[u8]) -> bool {
    let storage = SimStorage::new(0);
    let dir = Path::new("/fuzz/log");
    if storage.create_dir_all(dir).is_err() {
        return false;
    }
    for (name, bytes) in split_files(data) {
        let path = dir.join(&name);
        let _ = storage.remove(&path);
        if let Ok(f) = storage.create_new(&path) {
            let _ = write_all_at(&*f, bytes, 0);
            let _ = f.sync_data();
        }
    }
    let _ = storage.sync_dir(dir);
    let whole = match crate::verify::verify_dir(&storage, dir) {
        Ok(r) if r.is_valid() && r.tail.is_none() && !r.segments.is_empty() => Some(r),
        _ => None,
    };
    let config = Config {
        log_id: None,
        segment_age: None,
        ..Config::default()
    };
    let log = match Log::open_with_storage(Arc::new(storage.clone()), dir, config) {
        Ok(log) => log,
        Err(e) => {
            assert!(
                whole.is_none(),
                "verification found the log whole, but open refused: {e}"
            );
            return false;
        }
    };
    let head = log.head();
    let mut count = 0u64;
    for r in log.scan(..) {
        match r {
            Ok(_) => count += 1,
            Err(e) => {
                assert!(whole.is_none(), "a verified log's scan failed: {e}");
                break;
            }
        }
    }
    if let Some(h) = head {
        let _ = log.read(h.seq);
        let _ = log.seek_time(h.created_at);
        let _ = log.seek_time(0);
        assert!(count <= h.seq + 1);
    }
    if let Some(rep) = &whole {
        assert_eq!(
            head.map(|h| (h.seq, h.hash)),
            rep.head,
            "open and verify disagree on the head"
        );
        assert_eq!(
            count, rep.records_checked,
            "open and verify disagree on the records"
        );
    }
    let appended = log.append(b"fuzz").is_ok();
    drop(log);
    let after = crate::verify::verify_dir(&storage, dir);
    if let Some(rep) = &whole {
        let after = after.expect("a verified log verifies after an append");
        assert!(
            after.is_valid(),
            "a verified log, after an append: {:?}",
            after.problems()
        );
        assert_eq!(
            after.records_checked,
            rep.records_checked + u64::from(appended)
        );
    }
    whole.is_some()
}

/// Replays every stored input for `target` (`fuzz_dir/corpus/TARGET` and,
/// for inputs that once crashed, `fuzz_dir/artifacts/TARGET`) through
/// `body`, then `iters` seeded mutations of them. A crashing mutation is
/// kept under `artifacts/` before the panic is passed on. Returns the
/// number of stored inputs (the callers assert there are some).
pub fn replay_corpus(fuzz_dir: &Path, target: &str, body: fn(&[u8]), iters: u64) -> usize {
    let mut stored = Vec::new();
    for sub in ["corpus", "artifacts"] {
        let Ok(rd) = std::fs::read_dir(fuzz_dir.join(sub).join(target)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_file() {
                let bytes = std::fs::read(&p).expect("read a stored fuzz input");
                stored.push((p, bytes));
            }
        }
    }
    stored.sort();
    for (path, bytes) in &stored {
        if let Err(p) = std::panic::catch_unwind(|| body(bytes)) {
            eprintln!("{target}: stored input {} crashes", path.display());
            std::panic::resume_unwind(p);
        }
    }
    if stored.is_empty() {
        return 0;
    }
    let mut rng = Rng::new(0xf022);
    for i in 0..iters {
        let base = &stored[rng.below(stored.len() as u64) as usize].1;
        let input = mutate(&mut rng, base);
        if let Err(p) = std::panic::catch_unwind(|| body(&input)) {
            let keep = fuzz_dir.join("artifacts").join(target);
            let _ = std::fs::create_dir_all(&keep);
            let path = keep.join(format!("mutation-{i}"));
            let _ = std::fs::write(&path, &input);
            eprintln!("{target}: mutation {i} crashes; kept as {}", path.display());
            std::panic::resume_unwind(p);
        }
    }
    stored.len()
}

/// Edits for the text formats (signed notes, checkpoints, proof files): one
/// to `max_edits` of a bit flip, a byte overwritten (half the time with one
/// of `interesting`, the format's own punctuation), a byte inserted or
/// removed, or a stretch of up to `stretch` bytes duplicated or cut (a
/// whole line, often).
pub fn mutate_text(
    rng: &mut Rng,
    input: &[u8],
    interesting: &[u8],
    max_edits: u64,
    stretch: u64,
) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(max_edits) {
        let at = rng.below(out.len() as u64 + 1) as usize;
        let byte = if rng.below(2) == 0 {
            *rng.pick(interesting)
        } else {
            rng.next_u64() as u8
        };
        match rng.below(5) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 if at < out.len() => out[at] = byte,
            2 => out.insert(at, byte),
            3 if at < out.len() => {
                out.remove(at);
            }
            _ => {
                let end = (at + rng.below(stretch) as usize).min(out.len());
                if rng.below(2) == 0 {
                    let piece = out[at..end].to_vec();
                    out.splice(at..at, piece);
                } else {
                    out.drain(at..end);
                }
            }
        }
    }
    out
}

/// One to four structure-blind edits: a bit flip, a byte overwrite, a
/// truncation, an insertion of random bytes, or a fresh random input.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len() as u64) as usize;
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len() as u64) as usize;
                v[i] = rng.next_u64() as u8;
            }
            2 if !v.is_empty() => {
                let n = rng.below(v.len() as u64 + 1) as usize;
                v.truncate(n);
            }
            3 => {
                let n = rng.below(64) as usize;
                let extra = rng.bytes(n);
                let at = rng.below(v.len() as u64 + 1) as usize;
                v.splice(at..at, extra);
            }
            _ => {
                let n = rng.below(200) as usize;
                v = rng.bytes(n);
            }
        }
    }
    v
}

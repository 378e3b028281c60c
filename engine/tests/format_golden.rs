//! Codec round trips, and golden bytes that tie the code to docs/format.md:
//! each example structure below is encoded and compared with the hex block
//! of the same name in the document. Set CHAINLOG_PRINT_GOLDEN=1 to print
//! the blocks. Blocks printed by the code could follow a change of the
//! code, so the header, record and footer are also built by hand from the
//! document's field tables and compared with both.

use engine::chain;
use engine::format::footer::{Footer, FOOTER_LEN};
use engine::format::header::{SegmentHeader, HEADER_LEN};
use engine::format::index::{self, IndexKind, OffsetEntry, TimeEntry};
use engine::format::record::{self, Decoded, RecordRef, KIND_DATA, RECORD_OVERHEAD};
use engine::format::Structure;
use engine::CorruptionKind;

const T0: u64 = 1_700_000_000_000_000_000;

fn example_header() -> SegmentHeader {
    SegmentHeader {
        log_id: *b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f",
        first_seq: 42,
        created_at: T0,
        prev_hash: [0x11; 32],
    }
}

fn example_record() -> Vec<u8> {
    let hash = chain::step(&[0x11; 32], 42, T0 + 1, KIND_DATA, b"hello");
    let mut out = Vec::new();
    record::encode(&mut out, 42, T0 + 1, KIND_DATA, 128, b"hello", &hash);
    out
}

fn example_footer() -> Footer {
    Footer {
        first_seq: 42,
        last_seq: 43,
        record_count: 2,
        records_end: 266,
        first_created_at: T0 + 1,
        last_created_at: T0 + 2,
        sealed_at: T0 + 3,
        last_hash: [0x22; 32],
        merkle_root: [0; 32],
        signature: [0; 64],
    }
}

fn example_offset_index() -> Vec<u8> {
    let e = OffsetEntry {
        rel_seq: 0,
        pos: 128,
    }
    .encode();
    index::encode_file(IndexKind::Offset, 42, &e)
}

fn example_time_index() -> Vec<u8> {
    let e = TimeEntry {
        created_at: T0 + 1,
        rel_seq: 0,
        pos: 128,
    }
    .encode();
    index::encode_file(IndexKind::Time, 42, &e)
}

/// A tree file: the frontier after three records whose chain hashes are
/// 32 x 0x11, 0x22 and 0x33, beside a segment starting at seq 0.
fn example_tree() -> Vec<u8> {
    let mut f = engine::merkle::Frontier::new();
    for b in [0x11u8, 0x22, 0x33] {
        f.push(engine::merkle::leaf_hash(&[b; 32]));
    }
    engine::format::tree::encode(0, &f)
}

/// A level file: the nodes from level 6 up that a segment of the records
/// 40 to 129 completes, when record i's chain hash is 32 x i. Three: the
/// two subtrees of 64 leaves ending at 63 and 127 (both starting before
/// the segment), then the one of 128 leaves over both.
fn example_levels() -> Vec<u8> {
    let mut f = engine::merkle::Frontier::new();
    let mut nodes = engine::format::levels::LevelNodes::new(40, 6);
    for i in 0..130u8 {
        let leaf = engine::merkle::leaf_hash(&[i; 32]);
        if i < 40 {
            f.push(leaf);
        } else {
            f.push_with(leaf, |level, index, h| nodes.record(level, index, h));
        }
    }
    nodes.encode(130)
}

fn hex_block(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|c| {
            c.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The bytes of the ```hex block after `<!-- golden:NAME -->` in the doc.
fn doc_block(doc: &str, name: &str) -> Vec<u8> {
    let marker = format!("<!-- golden:{name} -->");
    let at = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("docs/format.md has no {marker}"));
    let rest = &doc[at + marker.len()..];
    let start = rest.find("```hex\n").expect("hex block") + "```hex\n".len();
    let end = rest[start..].find("```").expect("block end") + start;
    rest[start..end]
        .split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).unwrap_or_else(|_| panic!("bad hex {h:?} in {name}")))
        .collect()
}

#[test]
fn golden_bytes_match_docs_format_md() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/format.md"))
        .expect("docs/format.md");
    let examples: [(&str, Vec<u8>); 7] = [
        ("header", example_header().encode().to_vec()),
        ("record", example_record()),
        ("footer", example_footer().encode().to_vec()),
        ("offset-index", example_offset_index()),
        ("time-index", example_time_index()),
        ("tree", example_tree()),
        ("levels", example_levels()),
    ];
    if std::env::var_os("CHAINLOG_PRINT_GOLDEN").is_some() {
        for (name, bytes) in &examples {
            println!(
                "<!-- golden:{name} -->\n```hex\n{}\n```\n",
                hex_block(bytes)
            );
        }
    }
    for (name, bytes) in &examples {
        assert_eq!(
            &doc_block(&doc, name),
            bytes,
            "docs/format.md block {name} differs from the code"
        );
    }
}

#[test]
fn header_round_trip_and_damage() {
    let h = example_header();
    let b = h.encode();
    assert_eq!(b.len(), HEADER_LEN);
    assert_eq!(SegmentHeader::decode(&b), Ok(h));
    let mut bad = b;
    bad[0] = b'X';
    assert!(matches!(
        SegmentHeader::decode(&bad),
        Err(CorruptionKind::BadMagic {
            what: Structure::SegmentHeader,
            ..
        })
    ));
    let mut bad = b;
    bad[40] ^= 1;
    assert!(matches!(
        SegmentHeader::decode(&bad),
        Err(CorruptionKind::ChecksumMismatch {
            what: Structure::SegmentHeader,
            ..
        })
    ));
    assert!(matches!(
        SegmentHeader::decode(&b[..100]),
        Err(CorruptionKind::Truncated {
            needed: 128,
            available: 100,
            ..
        })
    ));
}

#[test]
fn record_round_trip_and_damage() {
    let b = example_record();
    assert_eq!(b.len(), RECORD_OVERHEAD + 5);
    let expected = RecordRef {
        seq: 42,
        created_at: T0 + 1,
        kind: KIND_DATA,
        durable_through: 128,
        payload: b"hello",
        hash: chain::step(&[0x11; 32], 42, T0 + 1, KIND_DATA, b"hello"),
    };
    assert_eq!(record::decode(&b, 1024), Ok(Decoded::Record(expected)));
    // Every strict prefix is incomplete, never an error or a record.
    for n in 0..b.len() {
        assert!(
            matches!(
                record::decode(&b[..n], 1024),
                Ok(Decoded::Incomplete { .. })
            ),
            "prefix of {n} bytes"
        );
    }
    // Every single-bit flip is caught by the CRC (or the length bound).
    for i in 0..b.len() {
        for bit in 0..8 {
            let mut bad = b.clone();
            bad[i] ^= 1 << bit;
            assert!(
                !matches!(record::decode(&bad, 1024), Ok(Decoded::Record(_))),
                "flip of byte {i} bit {bit} accepted"
            );
        }
    }
    // A payload over the limit is rejected before reading it.
    assert!(matches!(
        record::decode(&b, 4),
        Err(CorruptionKind::BadField {
            field: "payload_len",
            ..
        })
    ));
}

#[test]
fn footer_round_trip_and_consistency() {
    let f = example_footer();
    let b = f.encode();
    assert_eq!(b.len(), FOOTER_LEN);
    assert_eq!(Footer::decode(&b), Ok(f.clone()));
    let bad = Footer {
        record_count: 3,
        ..f
    };
    assert!(matches!(
        Footer::decode(&bad.encode()),
        Err(CorruptionKind::BadField {
            field: "record_count",
            ..
        })
    ));
}

#[test]
fn index_files_round_trip_and_damage() {
    let b = example_offset_index();
    let h = index::decode_file(IndexKind::Offset, &b).expect("valid");
    assert_eq!((h.first_seq, h.entry_count), (42, 1));
    assert_eq!(
        OffsetEntry::decode(&b[64..72]),
        OffsetEntry {
            rel_seq: 0,
            pos: 128
        }
    );
    let t = example_time_index();
    assert_eq!(
        index::decode_file(IndexKind::Time, &t)
            .expect("valid")
            .entry_count,
        1
    );
    assert_eq!(
        TimeEntry::decode(&t[64..80]),
        TimeEntry {
            created_at: T0 + 1,
            rel_seq: 0,
            pos: 128
        }
    );
    // The wrong kind, a flipped entry byte, a truncated file.
    assert!(matches!(
        index::decode_file(IndexKind::Time, &b),
        Err(CorruptionKind::BadMagic { .. })
    ));
    let mut bad = b.clone();
    bad[70] ^= 1;
    assert!(matches!(
        index::decode_file(IndexKind::Offset, &bad),
        Err(CorruptionKind::ChecksumMismatch {
            what: Structure::OffsetIndex,
            ..
        })
    ));
    assert!(matches!(
        index::decode_file(IndexKind::Offset, &b[..70]),
        Err(CorruptionKind::BadField {
            field: "entry_count",
            ..
        })
    ));
}

// ---- The examples built by hand from docs/format.md's field tables:
// every field placed at its documented offset, the CRCs by a bitwise
// CRC-32 written here and the hash by SHA-256 over the documented input,
// none of it through the engine's encoders. ----

/// A structure being laid out: each field written once, at its offset.
struct Layout {
    bytes: Vec<u8>,
    written: Vec<bool>,
}

impl Layout {
    fn new(len: usize) -> Layout {
        Layout {
            bytes: vec![0; len],
            written: vec![false; len],
        }
    }

    /// Writes `value` at `offset`, which must hold nothing yet.
    fn put(&mut self, offset: usize, value: &[u8]) {
        for (i, b) in value.iter().enumerate() {
            assert!(
                !self.written[offset + i],
                "byte {} written twice",
                offset + i
            );
            self.written[offset + i] = true;
            self.bytes[offset + i] = *b;
        }
    }

    fn u16(&mut self, offset: usize, v: u16) {
        self.put(offset, &v.to_le_bytes());
    }

    fn u32(&mut self, offset: usize, v: u32) {
        self.put(offset, &v.to_le_bytes());
    }

    fn u64(&mut self, offset: usize, v: u64) {
        self.put(offset, &v.to_le_bytes());
    }

    /// The finished bytes: every byte must have been written (reserved
    /// ones as explicit zeros), so a field the table lists and the test
    /// forgot cannot hide behind the zero fill.
    fn done(self) -> Vec<u8> {
        if let Some(i) = self.written.iter().position(|w| !w) {
            panic!("byte {i} was never written");
        }
        self.bytes
    }
}

/// CRC-32 (IEEE 802.3, reflected, init and final XOR 0xffffffff), bit by
/// bit, as the document defines it.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for part in parts {
        for &b in *part {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
    }
    !crc
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Segment header: log_id 00..0f, first_seq 42, created_at T, prev_hash
/// 32 x 0x11.
fn header_by_hand() -> Vec<u8> {
    let mut l = Layout::new(128);
    l.put(0, b"CLOGSEG\0");
    l.u16(8, 1);
    l.u16(10, 128);
    l.u32(12, 0);
    l.put(16, &(0u8..16).collect::<Vec<_>>());
    l.u64(32, 42);
    l.u64(40, T0);
    l.put(48, &[0x11; 32]);
    l.put(80, &[0; 44]);
    let crc = crc32(&[&l.bytes[..124]]);
    l.u32(124, crc);
    l.done()
}

/// Record: seq 42, created_at T+1, kind 1, durable_through 128, payload
/// `hello`, chained from 32 x 0x11.
fn record_by_hand() -> Vec<u8> {
    let payload = b"hello";
    let n = payload.len();
    let mut l = Layout::new(64 + n);
    l.u32(0, n as u32);
    l.u64(8, 42);
    l.u64(16, T0 + 1);
    l.put(24, &[1]);
    l.put(25, &[0; 3]);
    l.u32(28, 128);
    l.put(32, payload);
    let hash = sha256(&[
        &[0x11; 32],
        &42u64.to_le_bytes(),
        &(T0 + 1).to_le_bytes(),
        &[1],
        payload,
    ]);
    l.put(32 + n, &hash);
    let crc = crc32(&[&l.bytes[..4], &l.bytes[8..]]);
    l.u32(4, crc);
    l.done()
}

/// Footer: seqs 42..=43, records_end 266, times T+1, T+2, sealed T+3,
/// last_hash 32 x 0x22.
fn footer_by_hand() -> Vec<u8> {
    let mut l = Layout::new(256);
    l.put(0, b"CLOGEND\0");
    l.u16(8, 1);
    l.u16(10, 256);
    l.u32(12, 0);
    l.u64(16, 42);
    l.u64(24, 43);
    l.u64(32, 2);
    l.u64(40, 266);
    l.u64(48, T0 + 1);
    l.u64(56, T0 + 2);
    l.u64(64, T0 + 3);
    l.put(72, &[0x22; 32]);
    l.put(104, &[0; 32]);
    l.put(136, &[0; 64]);
    l.put(200, &[0; 52]);
    let crc = crc32(&[&l.bytes[..252]]);
    l.u32(252, crc);
    l.done()
}

/// The tree file of [`example_tree`], with the RFC 6962 hashes computed
/// here: leaf = SHA-256(0x00 || chain hash), node = SHA-256(0x01 || l || r).
fn tree_by_hand() -> Vec<u8> {
    let leaf = |b: u8| sha256(&[&[0x00], &[b; 32]]);
    let (l0, l1, l2) = (leaf(0x11), leaf(0x22), leaf(0x33));
    let first_two = sha256(&[&[0x01], &l0, &l1]);
    let mut hashes = Vec::new();
    hashes.extend_from_slice(&first_two);
    hashes.extend_from_slice(&l2);
    let mut l = Layout::new(64 + 64);
    l.put(0, b"CLOGTRE\0");
    l.u16(8, 1);
    l.u16(10, 2);
    l.u32(12, 0);
    l.u64(16, 0);
    l.u64(24, 3);
    l.u32(32, crc32(&[&hashes]));
    l.put(36, &[0; 24]);
    let crc = crc32(&[&l.bytes[..60]]);
    l.u32(60, crc);
    l.put(64, &hashes);
    l.done()
}

/// The level file of [`example_levels`], its nodes computed here by the
/// definition of the tree's hash over leaves 32 x i.
fn levels_by_hand() -> Vec<u8> {
    fn mth(leaves: std::ops::Range<u8>) -> [u8; 32] {
        if leaves.len() == 1 {
            return sha256(&[&[0x00], &[leaves.start; 32]]);
        }
        let mid = leaves.start + (leaves.len() / 2) as u8;
        sha256(&[&[0x01], &mth(leaves.start..mid), &mth(mid..leaves.end)])
    }
    let mut nodes = Vec::new();
    nodes.extend_from_slice(&mth(0..64));
    nodes.extend_from_slice(&mth(64..128));
    nodes.extend_from_slice(&mth(0..128));
    let mut l = Layout::new(64 + 96);
    l.put(0, b"CLOGLVL\0");
    l.u16(8, 1);
    l.u16(10, 6);
    l.u32(12, 0);
    l.u64(16, 40);
    l.u64(24, 130);
    l.u64(32, 3);
    l.u32(40, crc32(&[&nodes]));
    l.put(44, &[0; 16]);
    let crc = crc32(&[&l.bytes[..60]]);
    l.u32(60, crc);
    l.put(64, &nodes);
    l.done()
}

#[test]
fn the_documented_layouts_built_by_hand_match_the_code_and_the_doc() {
    // The CRC written here is the standard one (its check value).
    assert_eq!(crc32(&[b"123456789"]), 0xcbf4_3926);
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/format.md"))
        .expect("docs/format.md");
    let cases: [(&str, Vec<u8>, Vec<u8>); 5] = [
        (
            "header",
            header_by_hand(),
            example_header().encode().to_vec(),
        ),
        ("record", record_by_hand(), example_record()),
        (
            "footer",
            footer_by_hand(),
            example_footer().encode().to_vec(),
        ),
        ("tree", tree_by_hand(), example_tree()),
        ("levels", levels_by_hand(), example_levels()),
    ];
    for (name, by_hand, by_code) in &cases {
        assert_eq!(
            hex_block(by_hand),
            hex_block(by_code),
            "{name}: the code's encoding differs from the documented layout"
        );
        assert_eq!(
            &doc_block(&doc, name),
            by_hand,
            "{name}: docs/format.md's hex block differs from its own table"
        );
    }
    // The genesis hash, as documented: SHA-256 of the 20-byte string with
    // its NUL, then the log id.
    let id: [u8; 16] = core::array::from_fn(|i| i as u8);
    assert_eq!(b"chainlog genesis v1\0".len(), 20);
    assert_eq!(
        chain::genesis(&id),
        sha256(&[b"chainlog genesis v1\0", &id])
    );
}

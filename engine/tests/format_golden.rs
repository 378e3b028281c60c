//! Codec round trips, and golden bytes that tie the code to docs/format.md:
//! each example structure below is encoded and compared with the hex block
//! of the same name in the document. Set CHAINLOG_PRINT_GOLDEN=1 to print
//! the blocks.

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
    let examples: [(&str, Vec<u8>); 5] = [
        ("header", example_header().encode().to_vec()),
        ("record", example_record()),
        ("footer", example_footer().encode().to_vec()),
        ("offset-index", example_offset_index()),
        ("time-index", example_time_index()),
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

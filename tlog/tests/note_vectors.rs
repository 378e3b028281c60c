//! Signed notes and checkpoints: the published examples verify (used as
//! data, sources named at each), our own signatures round-trip, and every
//! tampering is refused with its own error.

use tlog::merkle::{leaf_hash, Frontier};
use tlog::note::{
    self, base64, Checkpoint, CheckpointError, LineProblem, Note, NoteError, SignerKey,
    VerifierKey, MAX_NOTE_LEN, MAX_SIGNATURES,
};

/// The example verifier key and note of C2SP signed-note.md, commit
/// 5ba5ee830903e91240fc6f9f3a7a9293d49e69c9.
const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

/// The signer key, verifier key, text and signature line of the examples in
/// golang.org/x/mod's sumdb/note/example_test.go, commit
/// fe2ec04f7c3c3aa6fad97631aafcff6e49e2d1db (the ecosystem's reference
/// implementation of signed notes).
const GO_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_SIG_LINE: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

fn vkey(s: &str) -> VerifierKey {
    VerifierKey::parse(s).expect("verifier key")
}

fn signer(name: &str, seed: u8) -> SignerKey {
    SignerKey::from_seed(name, &[seed; 32]).expect("signer key")
}

#[test]
fn the_spec_example_verifies() {
    let k = vkey(SPEC_VKEY);
    let n = note::open(SPEC_NOTE.as_bytes(), std::slice::from_ref(&k)).expect("verifies");
    assert_eq!(n.text, "This is an example message.\n");
    assert_eq!(n.signatures.len(), 1);
    assert_eq!(n.signatures[0].name, "example.com/foo");
    assert_eq!(n.signatures[0].id, 0x530d_903a);
    assert_eq!(n.encode(), SPEC_NOTE);
}

#[test]
fn the_go_example_key_signs_the_same_bytes_and_verifies() {
    let s = SignerKey::parse(GO_SKEY).expect("signer key");
    assert_eq!(s.to_secret_string(), GO_SKEY);
    assert_eq!(s.verifier(), vkey(GO_VKEY));
    assert_eq!(s.verifier().to_string(), GO_VKEY);
    let signed = note::sign(GO_TEXT, &[&s]).expect("sign");
    // Ed25519 is deterministic: the same key and text, the same signature.
    assert_eq!(signed, format!("{GO_TEXT}\n{GO_SIG_LINE}"));
    let n = note::open(signed.as_bytes(), &[vkey(GO_VKEY)]).expect("verifies");
    assert_eq!(n.text, GO_TEXT);
}

#[test]
fn unknown_keys_are_ignored_and_one_known_signature_is_needed() {
    let go = vkey(GO_VKEY);
    let spec = vkey(SPEC_VKEY);
    // The Go note verified by a list holding other keys too.
    let note = format!("{GO_TEXT}\n{GO_SIG_LINE}");
    let keys = [spec.clone(), go.clone()];
    let n = Note::parse(note.as_bytes()).expect("parse");
    assert_eq!(n.verify(&keys), Ok(vec![&keys[1]]));
    // Only other keys: refused, saying how many signatures were seen.
    assert_eq!(
        note::open(note.as_bytes(), std::slice::from_ref(&spec)),
        Err(NoteError::NoKnownSignature { signatures: 1 })
    );
    assert_eq!(
        note::open(note.as_bytes(), &[]),
        Err(NoteError::NoKnownSignature { signatures: 1 })
    );
    // A cosignature from an unknown key beside the known one is ignored.
    let witness = signer("witness.example/w1", 9);
    let mut two = note::sign(GO_TEXT, &[&witness]).expect("sign");
    two.push_str(GO_SIG_LINE);
    let n = Note::parse(two.as_bytes()).expect("parse");
    assert_eq!(n.signatures.len(), 2);
    assert_eq!(n.verify(std::slice::from_ref(&go)), Ok(vec![&go]));
    let both = [go.clone(), witness.verifier()];
    assert_eq!(n.verify(&both), Ok(vec![&both[1], &both[0]]));
}

#[test]
fn a_key_with_the_same_name_but_another_id_is_someone_else() {
    // Another key that calls itself PeterNeumann signs the same text: its ID
    // differs, so it is unknown to a verifier holding the real key.
    let impostor = signer("PeterNeumann", 1);
    assert_ne!(impostor.id(), vkey(GO_VKEY).id());
    let forged = note::sign(GO_TEXT, &[&impostor]).expect("sign");
    assert_eq!(
        note::open(forged.as_bytes(), &[vkey(GO_VKEY)]),
        Err(NoteError::NoKnownSignature { signatures: 1 })
    );
    // A line with the real name and ID but the impostor's signature bytes
    // is a known key's failed signature: the note is refused outright.
    let impostor_sig = &Note::parse(forged.as_bytes()).expect("parse").signatures[0];
    let mut bytes = vkey(GO_VKEY).id().to_be_bytes().to_vec();
    bytes.extend_from_slice(&impostor_sig.signature);
    let spliced = format!(
        "{GO_TEXT}\n\u{2014} PeterNeumann {}\n",
        base64::encode(&bytes)
    );
    assert_eq!(
        note::open(spliced.as_bytes(), &[vkey(GO_VKEY)]),
        Err(NoteError::BadSignature {
            name: "PeterNeumann".into(),
            id: 0xc74f_20a3
        })
    );
    // Even when another known key's signature verifies.
    let mut with_good = note::sign(GO_TEXT, &[&impostor]).expect("sign");
    with_good.push_str(&spliced[GO_TEXT.len() + 1..]);
    assert_eq!(
        note::open(with_good.as_bytes(), &[vkey(GO_VKEY), impostor.verifier()]),
        Err(NoteError::BadSignature {
            name: "PeterNeumann".into(),
            id: 0xc74f_20a3
        })
    );
}

#[test]
fn edited_text_is_refused() {
    let edited = SPEC_NOTE.replace("example message", "example massage");
    assert_eq!(
        note::open(edited.as_bytes(), &[vkey(SPEC_VKEY)]),
        Err(NoteError::BadSignature {
            name: "example.com/foo".into(),
            id: 0x530d_903a
        })
    );
    // A flipped bit in the signature itself.
    let mut n = Note::parse(SPEC_NOTE.as_bytes()).expect("parse");
    n.signatures[0].signature[10] ^= 1;
    assert!(matches!(
        note::open(n.encode().as_bytes(), &[vkey(SPEC_VKEY)]),
        Err(NoteError::BadSignature { .. })
    ));
    // A truncated signature from a known key.
    n.signatures[0].signature.truncate(63);
    assert!(matches!(
        note::open(n.encode().as_bytes(), &[vkey(SPEC_VKEY)]),
        Err(NoteError::BadSignature { .. })
    ));
}

#[test]
fn note_shape_errors() {
    let sig = "\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=";
    let cases: Vec<(Vec<u8>, NoteError)> = vec![
        (
            format!("tab\there\n\n{sig}\n").into_bytes(),
            NoteError::ControlChar {
                offset: 3,
                byte: b'\t',
            },
        ),
        (
            format!("crlf\r\n\n{sig}\n").into_bytes(),
            NoteError::ControlChar {
                offset: 4,
                byte: b'\r',
            },
        ),
        (
            b"bad \xff utf8\n\n".to_vec(),
            NoteError::NotUtf8 { offset: 4 },
        ),
        (
            format!("text\n\n{sig}").into_bytes(),
            NoteError::NoFinalNewline,
        ),
        (
            format!("text\n{sig}\n").into_bytes(),
            NoteError::NoSeparator,
        ),
        (b"text\n\n".to_vec(), NoteError::NoSignatures),
        (
            format!("text\n\n{sig}\n\n").into_bytes(),
            NoteError::NoSignatures,
        ),
        (
            format!("text\n\n{}\n", &sig[4..]).into_bytes(),
            NoteError::SignatureLine {
                line: 1,
                problem: LineProblem::NoDash,
            },
        ),
        (
            format!("text\n\n- {}\n", &sig[4..]).into_bytes(),
            NoteError::SignatureLine {
                line: 1,
                problem: LineProblem::NoDash,
            },
        ),
        (
            format!("text\n\n{sig}\n\u{2014} example.com/foo\n").into_bytes(),
            NoteError::SignatureLine {
                line: 2,
                problem: LineProblem::NoSpace,
            },
        ),
        (
            "text\n\n\u{2014}  AAAAAAA=\n".as_bytes().to_vec(),
            NoteError::SignatureLine {
                line: 1,
                problem: LineProblem::BadName,
            },
        ),
        (
            "text\n\n\u{2014} a+b AAAAAAA=\n".as_bytes().to_vec(),
            NoteError::SignatureLine {
                line: 1,
                problem: LineProblem::BadName,
            },
        ),
        (
            "text\n\n\u{2014} a AAAAAAA\n".as_bytes().to_vec(),
            NoteError::SignatureLine {
                line: 1,
                problem: LineProblem::NotBase64,
            },
        ),
        (
            "text\n\n\u{2014} a AAAAAAA= \n".as_bytes().to_vec(),
            NoteError::SignatureLine {
                line: 1,
                problem: LineProblem::NotBase64,
            },
        ),
        (
            "text\n\n\u{2014} a AAAAAA==\n".as_bytes().to_vec(),
            NoteError::SignatureLine {
                line: 1,
                problem: LineProblem::TooShort,
            },
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(
            Note::parse(&bytes),
            Err(expected),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
    // A text may hold empty lines: the last one separates.
    let n = Note::parse("a\n\nb\n\n\n\u{2014} a AAAAAAA=\n".as_bytes()).expect("parse");
    assert_eq!(n.text, "a\n\nb\n\n");
}

#[test]
fn size_and_signature_count_bounds() {
    let key = signer("example.com/log", 3);
    let line = note::sign("x\n", &[&key]).expect("sign")[3..].to_owned();
    let with = |count: usize| format!("x\n\n{}", line.repeat(count));
    for count in [1, 16, MAX_SIGNATURES] {
        let n = note::open(with(count).as_bytes(), &[key.verifier()]).expect("within bounds");
        assert_eq!(n.signatures.len(), count);
    }
    assert_eq!(
        Note::parse(with(MAX_SIGNATURES + 1).as_bytes()),
        Err(NoteError::TooManySignatures {
            max: MAX_SIGNATURES
        })
    );
    let many: Vec<&SignerKey> = vec![&key; MAX_SIGNATURES + 1];
    assert_eq!(
        note::sign("x\n", &many),
        Err(NoteError::TooManySignatures {
            max: MAX_SIGNATURES
        })
    );
    assert_eq!(note::sign("x\n", &[]), Err(NoteError::NoSignatures));
    let mut big = "a".repeat(MAX_NOTE_LEN);
    big.push('\n');
    assert_eq!(
        Note::parse(big.as_bytes()),
        Err(NoteError::TooLarge {
            len: MAX_NOTE_LEN + 1,
            max: MAX_NOTE_LEN
        })
    );
    assert!(matches!(
        note::sign(&big, &[&key]),
        Err(NoteError::TooLarge { .. })
    ));
    // The largest text whose note still fits is signed and reads back.
    let room = MAX_NOTE_LEN - 1 - line.len();
    let mut largest = "a".repeat(room - 1);
    largest.push('\n');
    let signed = note::sign(&largest, &[&key]).expect("fits");
    assert_eq!(signed.len(), MAX_NOTE_LEN);
    assert!(note::open(signed.as_bytes(), &[key.verifier()]).is_ok());
    assert_eq!(
        note::sign("no newline", &[&key]),
        Err(NoteError::NoFinalNewline)
    );
    assert_eq!(
        note::sign("a\u{7}\n", &[&key]),
        Err(NoteError::ControlChar { offset: 1, byte: 7 })
    );
}

fn checkpoint(size: u64) -> Checkpoint {
    let mut f = Frontier::new();
    for i in 0..size {
        f.push(leaf_hash(&i.to_le_bytes()));
    }
    Checkpoint {
        origin: "example.com/chainlog/events".into(),
        size,
        root_hash: f.root(),
        extensions: Vec::new(),
    }
}

#[test]
fn checkpoints_round_trip_through_a_signed_note() {
    let key = signer("example.com/chainlog/events", 42);
    for size in [0, 1, 2, 1000] {
        let c = checkpoint(size);
        let signed = c.sign(&key).expect("sign");
        assert!(signed.starts_with(&format!("example.com/chainlog/events\n{size}\n")));
        assert_eq!(
            Checkpoint::open(signed.as_bytes(), &[key.verifier()]),
            Ok(c)
        );
    }
    let mut c = checkpoint(5);
    c.extensions = vec!["ext: one".into()];
    let signed = c.sign(&key).expect("sign");
    assert_eq!(
        Checkpoint::open(signed.as_bytes(), &[key.verifier()]),
        Ok(c)
    );
}

#[test]
fn checkpoint_tampering_is_refused() {
    let key = signer("example.com/chainlog/events", 42);
    let other = signer("example.com/chainlog/events", 43);
    let c = checkpoint(1000);
    let signed = c.sign(&key).expect("sign");
    let known = [key.verifier()];
    let bad_sig = CheckpointError::Note(NoteError::BadSignature {
        name: key.name().into(),
        id: key.id(),
    });
    // An edited size (a truncated log's checkpoint) or root.
    let smaller = signed.replacen("\n1000\n", "\n999\n", 1);
    assert_eq!(
        Checkpoint::open(smaller.as_bytes(), &known),
        Err(bad_sig.clone())
    );
    let root = base64::encode(&c.root_hash);
    let other_root = base64::encode(&checkpoint(999).root_hash);
    let rerooted = signed.replacen(&root, &other_root, 1);
    assert_eq!(Checkpoint::open(rerooted.as_bytes(), &known), Err(bad_sig));
    // Re-signed by another key (same name, so another ID).
    let resigned = checkpoint(999).sign(&other).expect("sign");
    assert_eq!(
        Checkpoint::open(resigned.as_bytes(), &known),
        Err(CheckpointError::Note(NoteError::NoKnownSignature {
            signatures: 1
        }))
    );
    // Validly signed, but not a canonical checkpoint: the size "01".
    let root_line = base64::encode(&checkpoint(1).root_hash);
    let odd = note::sign(
        &format!("example.com/chainlog/events\n01\n{root_line}\n"),
        &[&key],
    )
    .expect("sign");
    assert_eq!(
        Checkpoint::open(odd.as_bytes(), &known),
        Err(CheckpointError::SizeLeadingZero("01".into()))
    );
    let short = note::sign("example.com/chainlog/events\n1\n", &[&key]).expect("sign");
    assert_eq!(
        Checkpoint::open(short.as_bytes(), &known),
        Err(CheckpointError::TooFewLines { lines: 2 })
    );
}

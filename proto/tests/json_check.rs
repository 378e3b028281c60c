//! The metadata JSON check (`proto::json::check_object`): a table of
//! accepted and refused texts with exact offsets and kinds, the nesting
//! bound at 126..=130 levels, the facts about serde_json it relies on, and
//! a seeded differential run against serde_json (200,000 generated and
//! mutated texts, or CHAINLOG_FUZZ_ITERS).
#![allow(clippy::unwrap_used)]

use engine::testing::Rng;
use proto::event::{Event, Limits};
use proto::json::{check_object, JsonError, JsonErrorKind as K, MAX_DEPTH};

/// The parser the check replaced: one JSON value, skipped, not built.
fn reference(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

#[test]
fn accepts_every_grammar_rule() {
    for text in [
        "{}",
        " \t\r\n{ \t\r\n} \t\r\n",
        r#"{"a":1}"#,
        r#"{ "a" : 1 , "b" : [ ] , "c" : { } }"#,
        r#"{"a":"b","a":"c"}"#, // duplicate keys
        r#"{"":""}"#,
        r#"{"t":true,"f":false,"n":null}"#,
        r#"{"a":[true,false,null,"s",1,{},[]]}"#,
        r#"{"n":[0,-0,1,-1,10,1234567890123456789012345678901234567890]}"#,
        r#"{"n":[0.5,-0.0,1.25,10.01,0e0,0E0,1e5,1E+5,1e-5,-1.5e+300,2e999999]}"#,
        r#"{"e":"\" \\ \/ \b \f \n \r \t"}"#,
        r#"{"u":"\u0000\u001f\u00e9\uFFFF\uabcD"}"#,
        r#"{"pair":"\ud83d\ude00"}"#,
        r#"{"lone high":"\ud800","lone low":"\udc00","reversed":"\udc00\ud800"}"#,
        "{\"raw\":\"é 日本 😀 \u{7f} \u{80} \u{2028}\"}",
        "{\"\u{a0}key\u{feff}\":1}",
        r#"{"s":"/* not a comment */ // nor this"}"#,
        r#"{"long":"0123456789abcdefghijklmnopqrstuvwxyz0123456789"}"#,
    ] {
        assert_eq!(check_object(text), Ok(()), "{text:?}");
        assert!(reference(text), "serde_json refuses {text:?}");
    }
}

#[test]
fn refuses_with_the_offset_and_what_was_expected() {
    let cases: &[(&str, usize, K)] = &[
        // Not an object at all.
        ("", 0, K::Object),
        ("   ", 3, K::Object),
        ("[1,2]", 0, K::Object),
        ("\"s\"", 0, K::Object),
        ("42", 0, K::Object),
        ("null", 0, K::Object),
        ("\u{a0}{}", 0, K::Object), // no-break space is not JSON whitespace
        ("\u{b}{}", 0, K::Object),  // nor is vertical tab
        ("\u{feff}{}", 0, K::Object),
        // Keys and colons.
        ("{", 1, K::Key),
        ("{a:1}", 1, K::Key),
        ("{1:1}", 1, K::Key),
        ("{,}", 1, K::Key),
        (r#"{"a":1,}"#, 7, K::Key),
        (r#"{"a"}"#, 4, K::Colon),
        (r#"{"a" 1}"#, 5, K::Colon),
        (r#"{"a"="#, 4, K::Colon),
        (r#"{"a""#, 4, K::Colon),
        // Values.
        (r#"{"a":}"#, 5, K::Value),
        (r#"{"a":"#, 5, K::Value),
        (r#"{"a":'x'}"#, 5, K::Value),
        (r#"{"a":+1}"#, 5, K::Value),
        (r#"{"a":.5}"#, 5, K::Value),
        (r#"{"a":[1,]}"#, 8, K::Value),
        (r#"{"a":[,1]}"#, 6, K::Value),
        (r#"{"a":[}"#, 6, K::Value),
        (r#"{"a":NaN}"#, 5, K::Value),
        // Literals: the offset is the literal's first byte.
        (r#"{"a":tru}"#, 5, K::Literal("true")),
        (r#"{"a":True}"#, 5, K::Value),
        (r#"{"a":fals"#, 5, K::Literal("false")),
        (r#"{"a":nul}"#, 5, K::Literal("null")),
        (r#"{"a":nil}"#, 5, K::Literal("null")),
        (r#"{"a":nullx}"#, 9, K::CommaOrObjectEnd),
        // Numbers.
        (r#"{"a":-}"#, 6, K::Digit),
        (r#"{"a":-a}"#, 6, K::Digit),
        (r#"{"a":1.}"#, 7, K::Digit),
        (r#"{"a":1.e5}"#, 7, K::Digit),
        (r#"{"a":1e}"#, 7, K::Digit),
        (r#"{"a":1E+}"#, 8, K::Digit),
        (r#"{"a":1e-x}"#, 8, K::Digit),
        (r#"{"a":01}"#, 6, K::CommaOrObjectEnd),
        (r#"{"a":-01}"#, 7, K::CommaOrObjectEnd),
        (r#"{"a":1.5.5}"#, 8, K::CommaOrObjectEnd),
        (r#"{"a":1e5.5}"#, 8, K::CommaOrObjectEnd),
        (r#"{"a":0x10}"#, 6, K::CommaOrObjectEnd),
        // Separators and closers.
        (r#"{"a":1 "b":2}"#, 7, K::CommaOrObjectEnd),
        (r#"{"a":1]"#, 6, K::CommaOrObjectEnd),
        (r#"{"a":1"#, 6, K::CommaOrObjectEnd),
        (r#"{"a":[1 2]}"#, 8, K::CommaOrArrayEnd),
        (r#"{"a":[1}"#, 7, K::CommaOrArrayEnd),
        (r#"{"a":[1"#, 7, K::CommaOrArrayEnd),
        (r#"{"a":[1]"#, 8, K::CommaOrObjectEnd),
        // Strings.
        (r#"{"a"#, 3, K::StringEnd),
        (r#"{"a":"b"#, 7, K::StringEnd),
        (r#"{"a":"b\""#, 9, K::StringEnd),
        (r#"{"a":"\x"}"#, 7, K::Escape),
        (r#"{"a":"\'"}"#, 7, K::Escape),
        (r#"{"a":"\U0041"}"#, 7, K::Escape),
        (r#"{"a":"\"#, 7, K::Escape),
        (r#"{"a":"\u12G4"}"#, 10, K::HexDigit),
        (r#"{"a":"\u12"}"#, 10, K::HexDigit),
        (r#"{"a":"\u"#, 8, K::HexDigit),
        (r#"{"a":"\u123"#, 11, K::HexDigit),
        ("{\"a\":\"x\ty\"}", 7, K::ControlCharacter(b'\t')),
        ("{\"a\":\"\n\"}", 6, K::ControlCharacter(b'\n')),
        ("{\"a\":\"\0\"}", 6, K::ControlCharacter(0)),
        ("{\"a\":\"\u{1f}\"}", 6, K::ControlCharacter(0x1f)),
        ("{\"a\u{1}\":1}", 3, K::ControlCharacter(1)),
        // In the fast scan's eight-byte steps, not only its tail.
        (
            "{\"abcdefghijklmnop\nq\":1}",
            18,
            K::ControlCharacter(b'\n'),
        ),
        (
            "{\"é日本😀abcdefgh\u{1b}\":1}",
            22,
            K::ControlCharacter(0x1b),
        ),
        // After the object.
        (r#"{"a":1} x"#, 8, K::End),
        (r#"{"a":1}{"b":2}"#, 7, K::End),
        ("{}}", 2, K::End),
        ("{},", 2, K::End),
        ("{}\u{a0}", 2, K::End),
        ("{} \0", 3, K::End),
        // Comments are not JSON.
        ("{/**/}", 1, K::Key),
        ("{} // c", 3, K::End),
    ];
    for &(text, offset, kind) in cases {
        assert_eq!(
            check_object(text),
            Err(JsonError { offset, kind }),
            "{text:?}"
        );
        assert!(
            !(reference(text) && text.trim_start().starts_with('{')),
            "serde_json accepts {text:?}"
        );
    }
}

#[test]
fn every_string_byte_position_is_scanned() {
    // A special byte at each position of strings of every length up to
    // two and a half scan steps, so each byte of both words of the
    // sixteen-byte scan, and of the tail, meets each kind of special byte.
    for len in 0..40 {
        for at in 0..len {
            for special in [b'"', b'\\', b'\n', 0, 0x1f] {
                let mut body = vec![b'x'; len];
                body[at] = special;
                let text = format!("{{\"{}\":1}}", String::from_utf8(body).unwrap());
                let want = reference(&text);
                assert_eq!(check_object(&text).is_ok(), want, "{text:?}");
                if special < 0x20 {
                    assert_eq!(
                        check_object(&text),
                        Err(JsonError {
                            offset: 2 + at,
                            kind: K::ControlCharacter(special)
                        })
                    );
                }
            }
        }
    }
}

/// The top-level object holding a chain of `{"k":` (or `[`) round `inner`:
/// `depth` levels when `inner` is a container.
fn nest(depth: usize, arrays: bool, inner: &str) -> String {
    let mut s = String::from("{\"k\":");
    for _ in 1..depth - 1 {
        s.push_str(if arrays { "[" } else { "{\"k\":" });
    }
    s.push_str(inner);
    for _ in 1..depth - 1 {
        s.push(if arrays { ']' } else { '}' });
    }
    s.push('}');
    s
}

#[test]
fn nesting_is_bounded_at_128_levels() {
    assert_eq!(MAX_DEPTH, 128);
    for depth in 126..=130 {
        for arrays in [false, true] {
            // The innermost level is an empty container: it counts too.
            let inner = if arrays { "[]" } else { "{}" };
            let text = nest(depth, arrays, inner);
            assert!(reference(&text), "serde_json skips any depth");
            if depth <= MAX_DEPTH {
                assert_eq!(check_object(&text), Ok(()), "depth {depth}");
            } else {
                // Refused at the bracket that opens level 129.
                let opener = if arrays {
                    5 + MAX_DEPTH - 1
                } else {
                    5 * MAX_DEPTH
                };
                assert_eq!(
                    check_object(&text),
                    Err(JsonError {
                        offset: opener,
                        kind: K::Depth
                    }),
                    "depth {depth}"
                );
            }
            proto::fuzz::json_check(text.as_bytes(), reference);
        }
    }
    // Deep but closed levels do not add up: depth is the open count.
    let wide = format!("{{\"a\":[{}]}}", vec![nest(127, true, "1"); 3].join(","));
    assert_eq!(check_object(&wide), Ok(()));
    // The bound holds however much deeper the text goes.
    let hostile = "[".repeat(1 << 20);
    let hostile = format!("{{\"a\":{hostile}");
    assert_eq!(check_object(&hostile).map_err(|e| e.kind), Err(K::Depth));
}

/// The facts about serde_json that the module doc states: its skipping
/// path (the reference) checks neither depth nor surrogate pairing; its
/// building path refuses both, and refuses 128 levels, not only 129.
#[test]
fn serde_json_facts_the_check_is_built_on() {
    use serde_json::Value;
    assert!(reference(&nest(10_000, true, "1")));
    assert!(serde_json::from_str::<Value>(&nest(127, false, "{}")).is_ok());
    assert!(serde_json::from_str::<Value>(&nest(128, false, "{}")).is_err());
    let lone = r#"{"a":"\ud800"}"#;
    assert!(reference(lone));
    assert!(serde_json::from_str::<Value>(lone).is_err());
    assert!(reference(r#"{"a":1,"a":2}"#));
}

#[test]
fn errors_read_as_what_was_expected_and_where() {
    let shown = |t: &str| check_object(t).unwrap_err().to_string();
    assert_eq!(shown(r#"{"status" 200}"#), "expected ':' at byte 10");
    assert_eq!(shown(r#"{"a":1"#), "expected ',' or '}' at byte 6");
    assert_eq!(shown(r#"{"a":tru}"#), "expected 'true' at byte 5");
    assert_eq!(
        shown("{\"a\":\"\n\"}"),
        "expected an escape in place of control character U+000A at byte 6"
    );
    assert_eq!(
        shown(&nest(129, true, "[]")),
        "expected at most 128 levels of nesting at byte 132"
    );

    let limits = Limits::default();
    let now = 1_700_000_000_000_000_000;
    let refused = |metadata: &str| {
        let e = Event {
            actor_id: "u".into(),
            action: "a.b".into(),
            resource: "r".into(),
            tenant_id: "t".into(),
            metadata: metadata.into(),
            occurred_at: now,
            ..Event::default()
        };
        e.as_ref().validate(&limits, now).unwrap_err().to_string()
    };
    assert_eq!(refused("[1]"), "metadata is not a JSON object");
    assert_eq!(refused("  "), "metadata is not a JSON object");
    assert_eq!(
        refused(r#"{"a" 1}"#),
        "metadata is not valid JSON: expected ':' at byte 5"
    );
}

/// Writes valid JSON, with whitespace, escapes, non-ASCII text and numbers
/// of every shape.
struct Gen<'r> {
    rng: &'r mut Rng,
    out: String,
}

impl Gen<'_> {
    fn ws(&mut self) {
        while self.rng.one_in(4) {
            let c = *self.rng.pick(&[' ', '\t', '\n', '\r']);
            self.out.push(c);
        }
    }

    fn value(&mut self, depth: usize) {
        let containers = if depth < 6 { 3 } else { 0 };
        match self.rng.below(containers + 5) {
            0 => self.string(),
            1 => self.number(),
            2 => {
                let w = *self.rng.pick(&["true", "false", "null"]);
                self.out.push_str(w);
            }
            3 | 4 => self.string(),
            5 | 6 => self.object(depth + 1),
            _ => self.array(depth + 1),
        }
    }

    fn object(&mut self, depth: usize) {
        self.out.push('{');
        self.ws();
        for i in 0..self.rng.below(5) {
            if i > 0 {
                self.out.push(',');
                self.ws();
            }
            self.string();
            self.ws();
            self.out.push(':');
            self.ws();
            self.value(depth);
            self.ws();
        }
        self.out.push('}');
    }

    fn array(&mut self, depth: usize) {
        self.out.push('[');
        self.ws();
        for i in 0..self.rng.below(5) {
            if i > 0 {
                self.out.push(',');
                self.ws();
            }
            self.value(depth);
            self.ws();
        }
        self.out.push(']');
    }

    fn string(&mut self) {
        const PIECES: &[&str] = &[
            "a", "key", "Z", " ", "0", "é", "日本", "😀", "\u{7f}", "\u{80}", "\u{2028}", "\u{a0}",
            "\u{feff}", "{", "}", "[", "]", ":", ",", "'", "/", "\\\"", "\\\\", "\\/", "\\b",
            "\\f", "\\n", "\\r", "\\t",
        ];
        const HEX: &[u8] = b"0123456789abcdefABCDEF";
        self.out.push('"');
        for _ in 0..self.rng.below(12) {
            if self.rng.one_in(6) {
                self.out.push_str("\\u");
                if self.rng.one_in(3) {
                    // A surrogate, paired or not.
                    let high = *self.rng.pick(&["d8", "DB", "dc", "DF"]);
                    self.out.push_str(high);
                    for _ in 0..2 {
                        self.out.push(*self.rng.pick(HEX) as char);
                    }
                } else {
                    for _ in 0..4 {
                        self.out.push(*self.rng.pick(HEX) as char);
                    }
                }
            } else if self.rng.one_in(8) {
                // A run long enough for the eight-byte scan.
                let n = self.rng.below(40) as usize;
                self.out.extend(std::iter::repeat_n('x', n));
            } else {
                let p = *self.rng.pick(PIECES);
                self.out.push_str(p);
            }
        }
        self.out.push('"');
    }

    fn number(&mut self) {
        if self.rng.one_in(2) {
            self.out.push('-');
        }
        if self.rng.one_in(3) {
            self.out.push('0');
        } else {
            self.out.push(char::from(b'1' + self.rng.below(9) as u8));
            self.digits(0);
        }
        if self.rng.one_in(3) {
            self.out.push('.');
            self.digits(1);
        }
        if self.rng.one_in(3) {
            self.out.push(*self.rng.pick(&['e', 'E']));
            let sign = *self.rng.pick(&["", "+", "-"]);
            self.out.push_str(sign);
            self.digits(1);
        }
    }

    fn digits(&mut self, at_least: usize) {
        let most = if self.rng.one_in(10) { 40 } else { 4 };
        let n = at_least + self.rng.below(most) as usize;
        for _ in 0..n {
            self.out.push(char::from(b'0' + self.rng.below(10) as u8));
        }
    }

    /// A chain of 120..=135 levels (objects and arrays mixed) round a value.
    fn deep(&mut self) {
        let levels = 120 + self.rng.below(16) as usize;
        let mut closers = Vec::new();
        self.out.push_str("{\"deep\":");
        closers.push('}');
        while closers.len() < levels {
            if self.rng.one_in(2) {
                self.out.push('[');
                closers.push(']');
            } else {
                self.out.push_str("{\"k\":");
                closers.push('}');
            }
        }
        self.value(6);
        while let Some(c) = closers.pop() {
            self.out.push(c);
        }
    }
}

/// One to three edits that keep the text UTF-8: an ASCII byte replaced, a
/// character deleted, a truncation, an insertion, a slice duplicated.
fn mutate(rng: &mut Rng, text: &mut String) {
    const INSERTS: &[&str] = &[
        "{", "}", "[", "]", ":", ",", "\"", "\\", " ", "\t", "\n", "\r", "0", "1", "-", "+", ".",
        "e", "E", "x", "t", "n", "u", "\0", "\u{1}", "\u{1f}", "\u{7f}", "\u{a0}", "\u{b}",
        "\u{c}", "\u{feff}", "é", "null", "tru", "1e", "-0", "01", "\\u12", "\\ud800", "//",
        "/**/", "{}", "[]", "\"\"", "\"k\":",
    ];
    let boundary = |t: &String, mut at: usize| {
        while !t.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    for _ in 0..1 + rng.below(3) {
        let at = boundary(text, rng.below(text.len() as u64 + 1) as usize);
        match rng.below(6) {
            0 if text[at..].starts_with(|c: char| c.is_ascii()) => {
                let c = rng
                    .pick(INSERTS)
                    .chars()
                    .next()
                    .filter(char::is_ascii)
                    .unwrap_or('#');
                text.replace_range(at..at + 1, c.encode_utf8(&mut [0; 4]));
            }
            1 => {
                if let Some(c) = text[at..].chars().next() {
                    text.replace_range(at..at + c.len_utf8(), "");
                }
            }
            2 => text.truncate(at),
            3 | 4 => text.insert_str(at, rng.pick::<&str>(INSERTS)),
            _ => {
                let end = boundary(text, at + rng.below((text.len() - at) as u64 + 1) as usize);
                let slice = text[at..end].to_string();
                text.insert_str(end, &slice);
            }
        }
    }
}

#[test]
fn agrees_with_serde_json_on_generated_and_mutated_texts() {
    let iters: usize = std::env::var("CHAINLOG_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let mut rng = Rng::new(0x6a73_6f6e_6368_6b31);
    let (mut accepted, mut refused, mut too_deep) = (0usize, 0usize, 0usize);
    for _ in 0..iters {
        let mut g = Gen {
            rng: &mut rng,
            out: String::new(),
        };
        g.ws();
        match g.rng.below(40) {
            0 => g.deep(),
            1 => g.value(5), // rarely an object: the top-level rule
            _ => g.object(1),
        }
        g.ws();
        let mut text = g.out;
        if rng.below(5) < 3 {
            mutate(&mut rng, &mut text);
        }
        proto::fuzz::json_check(text.as_bytes(), reference);
        match check_object(&text) {
            Ok(()) => accepted += 1,
            Err(e) if e.kind == K::Depth => too_deep += 1,
            Err(_) => refused += 1,
        }
    }
    eprintln!("{iters} texts: {accepted} accepted, {refused} refused, {too_deep} too deep");
    // The run is worth something only if both outcomes are common.
    assert!(
        accepted > iters / 4 && refused > iters / 4,
        "a lopsided run"
    );
}

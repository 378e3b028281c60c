//! A log's action schema: the action patterns it allows, and what happens
//! to an action outside them.
//!
//! A pattern is an action name in which `*` stands for any run of one or
//! more characters: `user.*` allows `user.created` and `user.password.reset`
//! but not `user`; `*.deleted` allows `document.deleted`. A log with no
//! patterns allows every action.

use std::collections::HashMap;

use parking_lot::Mutex;

/// What to do with an action no pattern allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Refuse the event (`invalid_event`, field `action`).
    Strict,
    /// Store it, and count it among the unknown actions.
    #[default]
    Permissive,
}

/// The most distinct unknown actions counted by name; more are counted
/// under [`OVERFLOW`], so that a client inventing actions cannot grow the
/// server's memory.
pub const MAX_TRACKED: usize = 10_000;
/// The name under which unknown actions beyond [`MAX_TRACKED`] are counted.
pub const OVERFLOW: &str = "(other)";

/// Patterns and mode, with the unknown actions seen.
#[derive(Debug, Default)]
pub struct Schema {
    /// Strict or permissive.
    pub mode: Mode,
    patterns: Vec<String>,
    unknown: Mutex<HashMap<String, u64>>,
}

impl Schema {
    /// A schema of `patterns`.
    pub fn new(mode: Mode, patterns: Vec<String>) -> Schema {
        Schema {
            mode,
            patterns,
            unknown: Mutex::new(HashMap::new()),
        }
    }

    /// Whether any pattern allows `action` (always, with no patterns).
    pub fn allows(&self, action: &str) -> bool {
        self.patterns.is_empty()
            || self
                .patterns
                .iter()
                .any(|p| glob(p.as_bytes(), action.as_bytes()))
    }

    /// Counts a stored event whose action the schema does not allow.
    pub fn count_unknown(&self, action: &str) {
        let mut u = self.unknown.lock();
        if let Some(n) = u.get_mut(action) {
            *n += 1;
        } else if u.len() < MAX_TRACKED {
            u.insert(action.to_owned(), 1);
        } else {
            *u.entry(OVERFLOW.to_owned()).or_insert(0) += 1;
        }
    }

    /// The unknown actions and their counts, most frequent first.
    pub fn unknown(&self) -> Vec<(String, u64)> {
        let mut v: Vec<_> = self
            .unknown
            .lock()
            .iter()
            .map(|(a, n)| (a.clone(), *n))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }

    /// Stored events with unknown actions.
    pub fn unknown_total(&self) -> u64 {
        self.unknown.lock().values().sum()
    }
}

/// `*` matches one or more bytes; everything else matches itself.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (1..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_documented() {
        let s = Schema::new(
            Mode::Strict,
            vec![
                "user.*".into(),
                "document.deleted".into(),
                "*.viewed".into(),
            ],
        );
        for ok in [
            "user.created",
            "user.password.reset",
            "document.deleted",
            "page.viewed",
        ] {
            assert!(s.allows(ok), "{ok}");
        }
        for no in [
            "user",
            "user.",
            "document.created",
            "documentdeleted",
            ".viewed",
            "users.created",
        ] {
            assert!(!s.allows(no), "{no}");
        }
        assert!(Schema::new(Mode::Strict, vec![]).allows("anything"));
    }

    #[test]
    fn unknown_actions_are_counted_and_bounded() {
        let s = Schema::new(Mode::Permissive, vec!["a.*".into()]);
        s.count_unknown("b.x");
        s.count_unknown("b.x");
        s.count_unknown("c.y");
        assert_eq!(s.unknown(), vec![("b.x".into(), 2), ("c.y".into(), 1)]);
        for i in 0..MAX_TRACKED + 5 {
            s.count_unknown(&format!("z.{i}"));
        }
        let u = s.unknown();
        assert_eq!(u.len(), MAX_TRACKED + 1);
        assert_eq!(u.iter().find(|(a, _)| a == OVERFLOW).map(|x| x.1), Some(7));
        assert_eq!(s.unknown_total(), 3 + MAX_TRACKED as u64 + 5);
    }
}

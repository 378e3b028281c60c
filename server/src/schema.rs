//! A log's action schema: the action patterns it allows, what happens to
//! an action outside them, and the counts of stored events with such
//! actions.
//!
//! A pattern is an action name in which `*` stands for any run of one or
//! more characters: `user.*` allows `user.created` and `user.password.reset`
//! but not `user`; `*.deleted` allows `document.deleted`. A log with no
//! patterns allows every action.
//!
//! The schema can be replaced at runtime. The counts must then follow it,
//! so a replacement starts a recount ([`UnknownActions::begin_recount`]):
//! the events already counted are counted again under the new schema while
//! the indexer counts new ones apart, and the two are merged when the
//! recount ends. Until then the counts reported are the previous schema's.

use std::collections::HashMap;

use parking_lot::Mutex;

/// What to do with an action no pattern allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
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

/// Why an action pattern is refused.
pub fn check_pattern(p: &str) -> Result<(), &'static str> {
    if p.is_empty() {
        return Err("is empty");
    }
    if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("has whitespace or a control character");
    }
    Ok(())
}

/// Patterns and mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    /// Strict or permissive.
    pub mode: Mode,
    patterns: Vec<String>,
}

impl Schema {
    /// A schema of `patterns`.
    pub fn new(mode: Mode, patterns: Vec<String>) -> Schema {
        Schema { mode, patterns }
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `action` is counted among the unknown actions: one no
    /// pattern allows, or any action at all while there are no patterns
    /// (every action is unknown to an empty schema, which is how a log's
    /// actions are discovered before a schema is written).
    pub fn counts_as_unknown(&self, action: &str) -> bool {
        self.patterns.is_empty() || !self.allows(action)
    }

    /// Whether any pattern allows `action` (always, with no patterns).
    pub fn allows(&self, action: &str) -> bool {
        self.patterns.is_empty()
            || self
                .patterns
                .iter()
                .any(|p| glob(p.as_bytes(), action.as_bytes()))
    }
}

/// How many stored events carry an action, and when the first and the
/// last of them were stored (`created_at`, nanoseconds since 1970).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// Events.
    pub count: u64,
    /// The earliest `created_at` among them.
    pub first: u64,
    /// The latest.
    pub last: u64,
}

impl Seen {
    fn add(&mut self, other: Seen) {
        if self.count == 0 {
            *self = other;
            return;
        }
        self.count += other.count;
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
    }
}

/// Unknown actions and how many stored events carry each (with when they
/// were first and last stored), bounded to [`MAX_TRACKED`] names plus
/// [`OVERFLOW`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    counts: HashMap<String, Seen>,
}

impl Tally {
    /// Counts one more event with `action`, stored at `created_at`.
    pub fn add(&mut self, action: &str, created_at: u64) {
        self.add_seen(
            action,
            Seen {
                count: 1,
                first: created_at,
                last: created_at,
            },
        );
    }

    pub(crate) fn add_seen(&mut self, action: &str, seen: Seen) {
        if let Some(c) = self.counts.get_mut(action) {
            c.add(seen);
        } else if self.counts.len() < MAX_TRACKED {
            self.counts.insert(action.to_owned(), seen);
        } else {
            self.counts
                .entry(OVERFLOW.to_owned())
                .or_default()
                .add(seen);
        }
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: Tally) {
        let mut other: Vec<_> = other.counts.into_iter().collect();
        // Most frequent first, so that the bound drops the rarest names.
        other.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(&b.0)));
        for (a, seen) in other {
            self.add_seen(&a, seen);
        }
    }

    /// The actions and their counts, most frequent first (ties by name).
    pub fn sorted(&self) -> Vec<(String, u64)> {
        self.sorted_seen()
            .into_iter()
            .map(|(a, s)| (a, s.count))
            .collect()
    }

    /// The actions with their counts and times, most frequent first.
    pub fn sorted_seen(&self) -> Vec<(String, Seen)> {
        let mut v: Vec<_> = self.counts.iter().map(|(a, s)| (a.clone(), *s)).collect();
        v.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(&b.0)));
        v
    }

    /// Events counted.
    pub fn total(&self) -> u64 {
        self.counts.values().map(|s| s.count).sum()
    }
}

/// A log's unknown-action counts, as the indexer keeps them.
#[derive(Debug, Default)]
pub struct UnknownActions {
    inner: Mutex<Counting>,
}

#[derive(Debug, Default)]
struct Counting {
    /// What is reported: every indexed event, under the current schema
    /// (under the previous one while a recount runs).
    live: Tally,
    /// While a recount runs: the events indexed since it began, under the
    /// new schema.
    fresh: Option<Tally>,
}

impl UnknownActions {
    /// Counts a stored event (stored at `created_at`) whose action the
    /// schema counts as unknown.
    pub fn count(&self, action: &str, created_at: u64) {
        let mut c = self.inner.lock();
        match &mut c.fresh {
            Some(f) => f.add(action, created_at),
            None => c.live.add(action, created_at),
        }
    }

    /// Adds counts made elsewhere (the event index files' at start).
    pub fn add_tally(&self, t: Tally) {
        let mut c = self.inner.lock();
        match &mut c.fresh {
            Some(f) => f.merge(t),
            None => c.live.merge(t),
        }
    }

    /// From now on, counts go apart until [`finish_recount`](Self::finish_recount).
    /// The caller holds the indexer back while the schema is swapped and
    /// this is called, so that every event is counted either before (and
    /// recounted) or after (and kept).
    pub fn begin_recount(&self) {
        let mut c = self.inner.lock();
        assert!(c.fresh.is_none(), "a recount is already running");
        c.fresh = Some(Tally::default());
    }

    /// Replaces the counts with `recounted` (the events indexed before the
    /// recount began, under the new schema) and those indexed since.
    pub fn finish_recount(&self, mut recounted: Tally) {
        let mut c = self.inner.lock();
        if let Some(f) = c.fresh.take() {
            recounted.merge(f);
        }
        c.live = recounted;
    }

    /// Whether a recount is running.
    pub fn recounting(&self) -> bool {
        self.inner.lock().fresh.is_some()
    }

    /// The unknown actions and their counts, most frequent first.
    pub fn list(&self) -> Vec<(String, u64)> {
        self.inner.lock().live.sorted()
    }

    /// The same, with when each was first and last stored.
    pub fn list_seen(&self) -> Vec<(String, Seen)> {
        self.inner.lock().live.sorted_seen()
    }

    /// Stored events with unknown actions.
    pub fn total(&self) -> u64 {
        self.inner.lock().live.total()
    }
}

/// `*` matches one or more bytes; everything else matches itself.
///
/// Iterative, with one backtrack point (the last `*`): a `*` is a byte
/// that must be there followed by a run that may be empty, and for such
/// runs only the last one ever needs to grow. O(pattern × action), so a
/// pattern set at runtime cannot make matching blow up.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    // The pattern position after the last `*`, and where its run ends.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if p.get(pi) == Some(&b'*') {
            pi += 1;
            si += 1;
            star = Some((pi, si));
        } else if p.get(pi) == Some(&s[si]) {
            pi += 1;
            si += 1;
        } else if let Some((after, end)) = star {
            // The last `*` takes one more byte; retry what follows it.
            pi = after;
            si = end + 1;
            star = Some((after, si));
        } else {
            return false;
        }
    }
    // The action is used up: so must the pattern be (a `*` left over would
    // need a byte).
    pi == p.len()
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

    /// The recursive definition the iterative matcher must agree with.
    fn glob_reference(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (1..=s.len()).any(|i| glob_reference(rest, &s[i..])),
            Some((c, rest)) => s.first() == Some(c) && glob_reference(rest, &s[1..]),
        }
    }

    #[test]
    fn the_matcher_agrees_with_the_definition() {
        // Every pattern and action up to 6 bytes over {a, b, *} / {a, b}.
        fn words(alphabet: &[u8], max: usize) -> Vec<Vec<u8>> {
            let mut all = vec![Vec::new()];
            let mut last = vec![Vec::new()];
            for _ in 0..max {
                let mut next = Vec::new();
                for w in &last {
                    for c in alphabet {
                        let mut w2 = w.clone();
                        w2.push(*c);
                        next.push(w2);
                    }
                }
                all.extend(next.iter().cloned());
                last = next;
            }
            all
        }
        let patterns = words(b"ab*", 6);
        let actions = words(b"ab", 6);
        let mut checked = 0u64;
        for p in &patterns {
            for a in &actions {
                assert_eq!(
                    glob(p, a),
                    glob_reference(p, a),
                    "pattern {:?} action {:?}",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(a)
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 1093 * 127);
    }

    #[test]
    fn many_stars_do_not_blow_up() {
        let p = "*a".repeat(40) + "b";
        let a = "a".repeat(4096);
        let started = std::time::Instant::now();
        assert!(!Schema::new(Mode::Strict, vec![p]).allows(&a));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn unknown_actions_are_counted_and_bounded() {
        let u = UnknownActions::default();
        u.count("b.x", 20);
        u.count("b.x", 10);
        u.count("c.y", 30);
        assert_eq!(u.list(), vec![("b.x".into(), 2), ("c.y".into(), 1)]);
        let seen = |count, first, last| Seen { count, first, last };
        assert_eq!(
            u.list_seen(),
            vec![
                ("b.x".into(), seen(2, 10, 20)),
                ("c.y".into(), seen(1, 30, 30))
            ]
        );
        for i in 0..MAX_TRACKED + 5 {
            u.count(&format!("z.{i}"), 100 + i as u64);
        }
        let l = u.list_seen();
        assert_eq!(l.len(), MAX_TRACKED + 1);
        // The 7 past the bound (the last 7 z's) are counted together,
        // with the earliest and latest of their times.
        let overflow = l.iter().find(|(a, _)| a == OVERFLOW).map(|x| x.1);
        let last_z = 100 + (MAX_TRACKED + 4) as u64;
        assert_eq!(overflow, Some(seen(7, last_z - 6, last_z)));
        assert_eq!(u.total(), 3 + MAX_TRACKED as u64 + 5);
    }

    #[test]
    fn an_empty_schema_counts_every_action_and_patterns_only_the_others() {
        let empty = Schema::default();
        assert!(empty.counts_as_unknown("user.login") && empty.allows("user.login"));
        let s = Schema::new(Mode::Permissive, vec!["user.*".into()]);
        assert!(!s.counts_as_unknown("user.login"));
        assert!(s.counts_as_unknown("document.deleted"));
    }

    #[test]
    fn a_recount_replaces_the_counts_and_keeps_what_came_meanwhile() {
        let u = UnknownActions::default();
        u.count("old.a", 1);
        u.count("old.a", 2);
        u.begin_recount();
        assert!(u.recounting());
        u.count("new.b", 50);
        // The previous counts are reported until the recount ends.
        assert_eq!(u.list(), vec![("old.a".into(), 2)]);
        let mut recounted = Tally::default();
        for at in [3, 4, 5] {
            recounted.add("new.b", at);
        }
        recounted.add("re.c", 6);
        u.finish_recount(recounted);
        assert!(!u.recounting());
        assert_eq!(u.list(), vec![("new.b".into(), 4), ("re.c".into(), 1)]);
        assert_eq!(
            u.list_seen()[0].1,
            Seen {
                count: 4,
                first: 3,
                last: 50
            }
        );
        assert_eq!(u.total(), 5);
    }
}

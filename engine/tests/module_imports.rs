//! The engine's modules import each other without a cycle: when two need
//! each other, the shared part is a third module (style.md). A module is a
//! file or folder directly under `engine/src`; an import is any
//! `crate::NAME` path in its code (comments and unit tests left out), with
//! the names the crate root re-exports counted as the module they come
//! from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// A file's code: without `//` comments (doc comments included), and
/// without its unit tests (from its `#[cfg(test)]` on, which by this
/// crate's convention ends a file): tests may use the test harness
/// (`testing`), which stands on the whole engine.
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("read source")
        .lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(path).expect("read_dir") {
        out.extend(rust_files(&e.expect("entry").path()));
    }
    out.retain(|p| p.extension().is_some_and(|x| x == "rs"));
    out
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first segment of every `crate::` path in `text`, including each
/// item of a `crate::{a, b::c}` group.
fn crate_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let body = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(
                body.split(',')
                    .map(|p| ident(p.trim()).to_owned())
                    .filter(|p| !p.is_empty()),
            );
        } else {
            out.push(ident(rest).to_owned());
        }
    }
    out
}

/// Names re-exported by lib.rs (`pub use MODULE::{...}`), to their module.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let module = ident(rest).to_owned();
        let items = rest[module.len()..]
            .trim_start_matches("::")
            .trim_end_matches(';')
            .trim_matches(|c| c == '{' || c == '}');
        for item in items.split(',') {
            let name = item.trim().rsplit("::").next().unwrap_or("").trim();
            if !name.is_empty() {
                out.insert(name.to_owned(), module.clone());
            }
        }
    }
    out
}

/// The module graph: for each module, the other modules it imports.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = src();
    let mut modules = BTreeMap::new();
    for e in std::fs::read_dir(&src).expect("read_dir") {
        let path = e.expect("entry").path();
        let name = path
            .file_stem()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if name != "lib" && (path.is_dir() || path.extension().is_some_and(|x| x == "rs")) {
            modules.insert(name, path);
        }
    }
    let roots = root_reexports(&code(&src.join("lib.rs")));
    let mut graph = BTreeMap::new();
    for (name, path) in &modules {
        let mut deps = BTreeSet::new();
        for file in rust_files(path) {
            for p in crate_paths(&code(&file)) {
                let target = if modules.contains_key(&p) {
                    Some(p)
                } else {
                    roots.get(&p).cloned()
                };
                if let Some(t) = target.filter(|t| t != name) {
                    deps.insert(t);
                }
            }
        }
        graph.insert(name.clone(), deps);
    }
    graph
}

/// A cycle in `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(graph, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(graph, n, &mut Vec::new(), &mut done))
}

#[test]
fn the_checker_finds_a_cycle_when_there_is_one() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.insert("a".into(), ["b".to_owned()].into());
    g.insert("b".into(), ["c".to_owned()].into());
    g.insert("c".into(), BTreeSet::new());
    assert_eq!(find_cycle(&g), None);
    g.insert("c".into(), ["a".to_owned()].into());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        crate_paths("use crate::{chain, format::Hash};\nlet x = crate::error::hex(&h);"),
        vec!["chain", "format", "error"]
    );
}

#[test]
fn engine_modules_import_each_other_without_a_cycle() {
    let g = graph();
    // The graph is real: the layers named in lib.rs are all there, and the
    // top layers depend on the ones below.
    for m in [
        "chain", "format", "segment", "recovery", "writer", "log", "verify",
    ] {
        assert!(g.contains_key(m), "module {m} not found: {g:?}");
    }
    assert!(g["log"].contains("writer"), "{g:?}");
    assert!(g["recovery"].contains("segment"), "{g:?}");
    assert_eq!(find_cycle(&g), None, "import cycle; the graph: {g:#?}");
    // The writer and verification stand on the walk and the chain, not on
    // recovery.
    for m in ["writer", "verify"] {
        assert!(!g[m].contains("recovery"), "{m} imports recovery");
    }
}

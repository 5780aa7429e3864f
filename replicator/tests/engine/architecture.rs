//! The replicator's modules point one way: no import circles.
//!
//! For every module, its child modules form a graph: an arrow from child `a`
//! to child `b` when any file under `a` names `b` by a `crate::`, `super::`
//! or `self::` path (in a `use` or in code). The parent itself (its
//! `mod.rs`) is the shared root its children stand on and is not a node, so
//! a child naming its parent's items is no arrow. The crate root's children
//! are the top-level modules (api, site, recovery, replication, storage...);
//! `site`'s children are `control`, `protection`, `runs`...; and so on down.
//! A circle in any of these graphs fails the test, named arrow by arrow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Circles that are known and not yet broken, as `parent: a -> b -> a`.
/// Only ever shrinks: a new circle fails, and so does a listed one that is
/// gone (so the list is kept true).
const KNOWN: &[&str] = &[];

/// The same check over the `ferry` TUI crate (`src/` at the workspace
/// root), with its own known list, which likewise only shrinks (it is
/// empty: the last one, `app -> editor -> app`, went when the test fixture
/// that builds an `App` moved from `editor::fixture` to `app::fixture`).
const KNOWN_TUI: &[&str] = &["crate: app -> model -> ui -> app"];

#[test]
fn the_tui_has_no_new_import_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../src");
    let found = circles(&src);
    let known: BTreeSet<String> = KNOWN_TUI.iter().map(|s| s.to_string()).collect();
    let new: Vec<&String> = found.iter().filter(|c| !known.contains(*c)).collect();
    let gone: Vec<&String> = known.iter().filter(|c| !found.contains(*c)).collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "import circles between modules of ferry (the TUI):\n  new: {new:#?}\n  gone from the known list: {gone:#?}"
    );
}

#[test]
fn no_import_circles_between_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = circles(&src);
    let known: BTreeSet<String> = KNOWN.iter().map(|s| s.to_string()).collect();
    let new: Vec<&String> = found.iter().filter(|c| !known.contains(*c)).collect();
    let gone: Vec<&String> = known.iter().filter(|c| !found.contains(*c)).collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "import circles between modules of ferry-replicator:\n  new: {new:#?}\n  gone from the known list: {gone:#?}"
    );
}

/// Every circle, one per strongly connected set of sibling modules, written
/// as `parent: a -> b -> ... -> a` starting from the smallest name.
fn circles(src: &Path) -> BTreeSet<String> {
    let files = rust_files(src);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|(m, _)| m.clone()).collect();
    // parent -> child -> children it points at
    let mut graphs: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (module, path) in &files {
        let text = std::fs::read_to_string(path).expect("readable source");
        for target in paths(&strip(&text), module) {
            // The longest common prefix is the parent both stand in.
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if common >= module.len() || common >= target.len() {
                continue; // a module naming itself, an ancestor or a descendant
            }
            let parent = module[..common].to_vec();
            let mut child = parent.clone();
            child.push(target[common].clone());
            if !modules.contains(&child) {
                continue; // an item of the parent, not a child module
            }
            graphs
                .entry(parent)
                .or_default()
                .entry(module[common].clone())
                .or_default()
                .insert(target[common].clone());
        }
    }
    let mut out = BTreeSet::new();
    for (parent, graph) in &graphs {
        for cycle in cycles(graph) {
            out.insert(format!("{}: {}", display(parent), cycle.join(" -> ")));
        }
    }
    out
}

fn display(module: &[String]) -> String {
    if module.is_empty() {
        "crate".into()
    } else {
        format!("crate::{}", module.join("::"))
    }
}

/// The library's files with their module paths (`main.rs` is a binary).
fn rust_files(src: &Path) -> Vec<(Vec<String>, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let mut module: Vec<String> = rel
                .iter()
                .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            match module.last().map(String::as_str) {
                Some("main") if module.len() == 1 => continue,
                Some("lib") if module.len() == 1 => module.clear(),
                Some("mod") => {
                    module.pop();
                }
                _ => {}
            }
            out.push((module, path));
        }
    }
    out
}

/// Source without comments, string and char literals.
fn strip(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == 'r' && (next == Some('#') || next == Some('"')) && !ident_before(&b, i) {
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'), else a lifetime.
            if next == Some('\\') {
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

#[derive(Debug, PartialEq)]
enum Tok {
    Ident(String),
    Sep,
    Open,
    Close,
    Comma,
    Other,
}

fn tokens(text: &str) -> Vec<Tok> {
    let b: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(b[start..i].iter().collect()));
            continue;
        }
        if c == ':' && b.get(i + 1) == Some(&':') {
            out.push(Tok::Sep);
            i += 2;
            continue;
        }
        match c {
            '{' => out.push(Tok::Open),
            '}' => out.push(Tok::Close),
            ',' => out.push(Tok::Comma),
            c if c.is_whitespace() => {}
            _ => out.push(Tok::Other),
        }
        i += 1;
    }
    out
}

/// Every module path named from `module` by `crate::`, `super::` or
/// `self::`, as a path from the crate root (items included; the caller
/// keeps the module part).
fn paths(text: &str, module: &[String]) -> Vec<Vec<String>> {
    let toks = tokens(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let start = match &toks[i] {
            Tok::Ident(w) if w == "crate" => Some(Vec::new()),
            Tok::Ident(w) if w == "self" => Some(module.to_vec()),
            Tok::Ident(w) if w == "super" => {
                Some(module[..module.len().saturating_sub(1)].to_vec())
            }
            _ => None,
        };
        let preceded_by_sep = i > 0 && toks[i - 1] == Tok::Sep;
        match start {
            Some(mut prefix) if !preceded_by_sep && toks.get(i + 1) == Some(&Tok::Sep) => {
                let mut j = i + 2;
                // `super::super::x`
                while matches!(toks.get(j), Some(Tok::Ident(w)) if w == "super")
                    && toks.get(j + 1) == Some(&Tok::Sep)
                {
                    prefix.pop();
                    j += 2;
                }
                i = tree(&toks, j, prefix, &mut out);
            }
            _ => i += 1,
        }
    }
    out
}

/// Reads a use-tree (or a plain path) from `toks[i]` after `prefix::`;
/// returns where it ends.
fn tree(toks: &[Tok], mut i: usize, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    loop {
        match toks.get(i) {
            Some(Tok::Ident(w)) => {
                if w != "self" {
                    prefix.push(w.clone());
                }
                if toks.get(i + 1) == Some(&Tok::Sep) {
                    i += 2;
                    continue;
                }
                out.push(prefix);
                return i + 1;
            }
            Some(Tok::Open) => {
                i += 1;
                loop {
                    match toks.get(i) {
                        Some(Tok::Close) => return i + 1,
                        Some(Tok::Comma) => i += 1,
                        None => return i,
                        _ => i = tree(toks, i, prefix.clone(), out),
                    }
                }
            }
            _ => {
                out.push(prefix);
                return i + 1;
            }
        }
    }
}

/// One circle per strongly connected set of two or more nodes (Tarjan),
/// each written as a walk from its smallest node back to itself.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = graph
        .keys()
        .chain(graph.values().flat_map(|s| s.iter()))
        .collect();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for &n in &nodes {
        if seen.contains(n) {
            continue;
        }
        // The set n is in: nodes reachable from n that reach back to n.
        let from = reach(graph, n);
        let set: BTreeSet<&String> = from
            .iter()
            .copied()
            .filter(|m| reach(graph, m).contains(n))
            .collect();
        seen.extend(set.iter().map(|s| (*s).clone()));
        if set.len() < 2 {
            continue;
        }
        out.push(walk(graph, n, &set));
    }
    out
}

fn reach<'a>(graph: &'a BTreeMap<String, BTreeSet<String>>, n: &'a String) -> BTreeSet<&'a String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![n];
    while let Some(m) = stack.pop() {
        for t in graph.get(m).into_iter().flatten() {
            if seen.insert(t) {
                stack.push(t);
            }
        }
    }
    seen
}

/// A shortest circle through `n` inside `set` (breadth first).
fn walk(
    graph: &BTreeMap<String, BTreeSet<String>>,
    n: &String,
    set: &BTreeSet<&String>,
) -> Vec<String> {
    let mut back: BTreeMap<&String, &String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([n]);
    while let Some(m) = queue.pop_front() {
        for t in graph.get(m).into_iter().flatten() {
            if !set.contains(t) {
                continue;
            }
            if t == n {
                let mut path = vec![n.clone()];
                let mut at = m;
                while at != n {
                    path.push(at.clone());
                    at = back[at];
                }
                path.push(n.clone());
                let end = path.len() - 1;
                path[1..end].reverse();
                return path;
            }
            if !back.contains_key(t) {
                back.insert(t, m);
                queue.push_back(t);
            }
        }
    }
    vec![n.clone()]
}

#[test]
fn a_circle_is_found_and_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).expect("dir");
    std::fs::write(src.join("lib.rs"), "pub mod a; pub mod b; pub mod c;").expect("write");
    std::fs::write(
        src.join("a/mod.rs"),
        "pub mod x; pub mod y; use crate::b::B;",
    )
    .expect("write");
    // Siblings under `a` naming each other, one through `super`.
    std::fs::write(
        src.join("a/x.rs"),
        "use super::y::Y; // crate::c is a comment",
    )
    .expect("write");
    std::fs::write(
        src.join("a/y.rs"),
        "fn f() { crate::a::x::g(\"crate::c\"); }",
    )
    .expect("write");
    std::fs::write(src.join("b.rs"), "use crate::{c::{self, C}, a};").expect("write");
    std::fs::write(
        src.join("c.rs"),
        "pub struct C; fn f<'a>(c: &'a char) -> char { 'x' }",
    )
    .expect("write");
    let found: Vec<String> = circles(src).into_iter().collect();
    assert_eq!(found, vec!["crate: a -> b -> a", "crate::a: x -> y -> x"]);
}

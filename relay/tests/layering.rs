//! The relay's modules import in one direction: reads the `crate::`, `super::` and child
//! module paths of every file under `src/` (comments skipped) and fails on any circle
//! between files. `lib.rs` only declares and re-exports, so it is left out; a module's
//! `mod.rs` and the files beside it are separate nodes, so a child must not import its
//! parent's `mod.rs` either. `cargo test -p sluice-relay --test layering -- --nocapture`
//! prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`client::shared`) of every source file, by file.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> =
                rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                parts.pop();
            }
            out.insert(parts.join("::"), path);
        }
    }
    out
}

/// The paths a line names that start at `prefix` (`crate::`, `super::`, `child::`), each
/// as its segments after the prefix; `a::{b, c::d}` gives `a::b` and `a::c::d`.
fn paths_after(line: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find(prefix) {
        let boundary =
            rest[..i].chars().next_back().is_none_or(|c| !c.is_alphanumeric() && c != '_');
        let after = &rest[i + prefix.len()..];
        rest = after;
        if !boundary {
            continue;
        }
        expand(after, &mut Vec::new(), &mut out);
    }
    out
}

fn expand(text: &str, base: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let text = text.trim_start();
    if let Some(group) = text.strip_prefix('{') {
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    expand(&group[start..i], &mut base.clone(), out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&group[start..i], &mut base.clone(), out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let ident: String = text.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    if ident.is_empty() {
        if !base.is_empty() {
            out.push(base.clone());
        }
        return;
    }
    base.push(ident.clone());
    match text[ident.len()..].strip_prefix("::") {
        Some(more) => expand(more, base, out),
        None => out.push(base.clone()),
    }
}

/// The longest module among `known` that `path` starts with.
fn resolve(path: &[String], known: &BTreeMap<String, PathBuf>) -> Option<String> {
    (1..=path.len()).rev().map(|n| path[..n].join("::")).find(|m| known.contains_key(m))
}

/// The module graph: module -> modules it imports.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let known = modules(&src);
    let mut graph = BTreeMap::new();
    for (module, file) in &known {
        if module.is_empty() {
            continue; // lib.rs
        }
        let is_mod_rs = file.file_name().is_some_and(|f| f == "mod.rs");
        let own: Vec<String> = module.split("::").map(String::from).collect();
        // What `super::` means in this file, and the children it declares.
        let parent = &own[..own.len() - 1];
        let text = std::fs::read_to_string(file).unwrap();
        let children: Vec<String> = text
            .lines()
            .filter_map(|l| {
                let l = l.trim().trim_start_matches("pub(crate) ").trim_start_matches("pub ");
                l.strip_prefix("mod ")?.strip_suffix(';').map(String::from)
            })
            .collect();
        // Code without comment lines, as one string: a `use` may span lines.
        let code: String = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut edges = BTreeSet::new();
        {
            let line = code.as_str();
            let mut found: Vec<Vec<String>> = paths_after(line, "crate::");
            for p in paths_after(line, "super::") {
                let mut full = parent.to_vec();
                if !is_mod_rs {
                    full.extend(p);
                } else {
                    // In a mod.rs, `super` is the module's parent.
                    full.truncate(full.len().saturating_sub(1));
                    full.extend(p);
                }
                found.push(full);
            }
            for child in &children {
                for p in paths_after(line, &format!("{child}::")) {
                    let mut full = own.clone();
                    full.push(child.clone());
                    full.extend(p);
                    found.push(full);
                }
            }
            for path in found {
                if let Some(target) = resolve(&path, &known) {
                    if target != *module && !target.is_empty() {
                        edges.insert(target);
                    }
                }
            }
        }
        graph.insert(module.clone(), edges);
    }
    graph
}

/// A circle in the graph, if any (depth-first).
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|n| n == node) {
            let mut c = stack[i..].to_vec();
            c.push(node.to_string());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn relay_modules_import_in_one_direction() {
    let graph = graph();
    for (module, edges) in &graph {
        let edges: Vec<&str> = edges.iter().map(String::as_str).collect();
        println!("{module} -> {}", edges.join(", "));
    }
    assert!(graph.contains_key("client::forward_out") && graph.contains_key("server::forward_in"));
    if let Some(c) = circle(&graph) {
        panic!("modules import each other: {}", c.join(" -> "));
    }
}

#[test]
fn the_reader_sees_grouped_and_nested_paths() {
    let p = paths_after("use crate::{codes, error::{A, B}}; x = super::y::z(crate::q)", "crate::");
    let flat: Vec<String> = p.iter().map(|p| p.join("::")).collect();
    assert_eq!(flat, ["codes", "error::A", "error::B", "q"]);
    assert!(paths_after("notcrate::x", "crate::").is_empty());
}

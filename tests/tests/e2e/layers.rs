//! The library crates' modules form layers (node's table is in `node/src/lib.rs`, the others'
//! here and in ARCHITECTURE.md): each top-level module imports only from its own layer or lower
//! ones, no two modules import each other (directly or through others), and only the
//! configuration layer names clap.
//!
//! The check reads the sources: every `crate::name` (in `use` lines and inline paths, with
//! `crate::{a, b}` groups) and every `super::name` that leaves a top-level module counts as an
//! import of `name`. Comments are skipped. It is data-driven ([`Crate`]) so that other crates'
//! tables can be added.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One crate's layer table.
struct Crate {
    /// Directory of the crate, relative to the workspace root.
    dir: &'static str,
    /// Each top-level module and its layer (0 is the bottom).
    layers: &'static [(&'static str, u32)],
    /// Modules that may name clap.
    clap: &'static [&'static str],
}

const NODE: Crate = Crate {
    dir: "node",
    layers: &[
        ("units", 0),
        ("admission", 0),
        ("lock", 0),
        ("driver", 0),
        ("log_limit", 0),
        ("out_queue", 0),
        ("metrics", 0),
        ("trace_context", 0),
        ("upstream", 0),
        ("drain", 0),
        ("publish_auth", 0),
        ("play_auth", 0),
        ("webhook", 0),
        ("quota", 0),
        ("settings", 1),
        ("hub", 2),
        ("hls", 3),
        ("playout", 3),
        ("recording", 3),
        ("transcode", 3),
        ("catalog", 4),
        ("rtmp", 4),
        ("http", 4),
        ("registry", 4),
        ("placement", 4),
        ("peers", 4),
        ("relay_feed", 4),
        ("relayed_publish", 4),
        ("forward", 4),
        ("relay_source", 4),
        ("rendition_claims", 4),
        ("playout_cluster", 4),
        ("relay_tls", 4),
        ("tls", 4),
        ("load_report", 4),
        ("orders", 4),
        ("config", 5),
        ("server", 6),
        ("runtime", 6),
    ],
    clap: &["config"],
};

const RELAY: Crate = Crate {
    dir: "relay",
    layers: &[
        ("codes", 0),
        ("codec", 0),
        ("side", 0),
        ("certs", 0),
        ("lock", 0),
        ("tls", 1),
        ("publish", 1),
        ("config", 2),
        ("identity", 2),
        ("error", 2),
        ("serving", 3),
        ("wire", 3),
        ("receive", 4),
        ("client", 5),
        ("server", 5),
        ("session", 6),
        ("endpoint", 7),
    ],
    clap: &[],
};

const CLUSTER: Crate = Crate {
    dir: "cluster",
    layers: &[
        ("types", 0),
        ("ladder", 0),
        ("schedule", 0),
        ("backoff", 0),
        ("lock", 0),
        ("keys", 1),
        ("values", 1),
        ("ring", 1),
        ("rules", 1),
        ("damping", 1),
        ("lease", 0),
        ("signed_token", 0),
        ("cert_store", 0),
        ("telemetry", 0),
        ("registry", 2),
        ("cache", 2),
        ("placement", 2),
        ("backend", 3),
        ("registrar", 4),
        ("etcd", 5),
        ("memory", 5),
        ("orders", 5),
        ("observer", 6),
    ],
    clap: &[],
};

const EDGE: Crate = Crate {
    dir: "edge",
    layers: &[("args", 0), ("table", 0), ("pull", 1), ("upstream", 2)],
    clap: &[],
};

const CATALOG: Crate =
    Crate { dir: "catalog", layers: &[("item", 0), ("query", 1), ("db", 2)], clap: &[] };

const CONTROL_PLANE: Crate = Crate {
    dir: "control-plane",
    layers: &[
        ("assign", 0),
        ("lock", 0),
        ("page", 0),
        ("play_sign", 0),
        ("grpc_trace", 0),
        ("origin_api", 0),
        ("simulate", 1),
        ("view", 1),
        ("counters", 1),
        ("service", 2),
        ("convert", 3),
        ("auth", 3),
        ("tls", 3),
        ("metrics", 3),
        ("admin", 4),
        ("ladders", 4),
        ("schedule", 4),
        ("catalog", 4),
        ("recordings", 4),
        ("api", 4),
        ("watch", 4),
        ("grpc", 5),
        ("http", 5),
        ("keda", 5),
        ("config", 6),
        ("serve", 7),
    ],
    clap: &["config"],
};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments (line comments, and block comments on their own lines).
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut in_block = false;
    for line in text.lines() {
        let t = line.trim_start();
        if in_block {
            in_block = !t.contains("*/");
            continue;
        }
        if t.starts_with("/*") {
            in_block = !t.contains("*/");
            continue;
        }
        // Cut at the first `//` outside a string (not the one in "http://...").
        let cut = line
            .match_indices("//")
            .map(|(i, _)| i)
            .find(|&i| line[..i].matches('"').count() % 2 == 0);
        let line = cut.map_or(line, |i| &line[..i]);
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The first path segments named after `prefix` (`crate::`), including each item of a
/// `prefix{a, b::c}` group.
fn names_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // `foo_crate::` or `$crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => start = true,
                    c if start && depth == 1 && !c.is_whitespace() => {
                        names.push(ident_at(&group[j..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            names.push(ident_at(rest));
        }
    }
    names
}

/// Top-level module of a file under `src` (`None` for the crate root files).
fn module_of(src: &Path, file: &Path) -> Option<(String, usize)> {
    let rel = file.strip_prefix(src).unwrap();
    let parts: Vec<String> =
        rel.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    // The crate roots, and binaries under `src/bin/` (separate crates that use the library).
    if (parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main")) || parts[0] == "bin" {
        return None;
    }
    // Depth below the crate root of the file's own module (`foo.rs` and `foo/mod.rs`: 1).
    let depth =
        if parts.last().is_some_and(|p| p == "mod") { parts.len() - 1 } else { parts.len() };
    Some((parts[0].clone(), depth))
}

/// Module -> the modules it imports, and the modules that name clap.
fn imports(krate: &Crate) -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) {
    let src = workspace().join(krate.dir).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut clap = BTreeSet::new();
    for file in files {
        let Some((module, depth)) = module_of(&src, &file) else { continue };
        let code = code(&std::fs::read_to_string(&file).unwrap());
        let mut used: Vec<&str> = names_after(&code, "crate::");
        // `super::` repeated up to the crate root names a top-level module.
        let up = "super::".repeat(depth);
        used.extend(names_after(&code, &up));
        let deps = graph.entry(module.clone()).or_default();
        for name in used {
            if name != module && krate.layers.iter().any(|(m, _)| *m == name) {
                deps.insert(name.to_string());
            }
        }
        let names_clap = code.match_indices("clap").any(|(i, _)| {
            let before = code[..i].chars().last();
            let after = code[i + 4..].chars().next();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
        });
        if names_clap {
            clap.insert(module);
        }
    }
    (graph, clap)
}

fn check(krate: &Crate) -> Vec<String> {
    let (graph, clap) = imports(krate);
    let layer: BTreeMap<&str, u32> = krate.layers.iter().copied().collect();
    let mut problems = Vec::new();
    for module in graph.keys() {
        if !layer.contains_key(module.as_str()) {
            problems.push(format!("{}: module `{module}` is not in the layer table", krate.dir));
        }
    }
    for (module, deps) in &graph {
        let Some(&own) = layer.get(module.as_str()) else { continue };
        for dep in deps {
            let theirs = layer[dep.as_str()];
            if theirs > own {
                problems.push(format!(
                    "{}: `{module}` (layer {own}) imports `{dep}` (layer {theirs}), a higher layer",
                    krate.dir
                ));
            }
        }
    }
    // Circles: a depth-first search that finds a module on its own path.
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        out: &mut Vec<String>,
    ) {
        if let Some(i) = path.iter().position(|p| *p == m) {
            out.push(format!("circle: {} -> {m}", path[i..].join(" -> ")));
            return;
        }
        if !done.insert(m) {
            return;
        }
        path.push(m);
        for dep in graph.get(m).into_iter().flatten() {
            visit(dep, graph, path, done, out);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done, &mut problems);
    }
    for module in clap {
        if !krate.clap.contains(&module.as_str()) {
            problems
                .push(format!("{}: `{module}` names clap (only {:?} may)", krate.dir, krate.clap));
        }
    }
    problems
}

#[test]
fn library_modules_form_layers() {
    let problems: Vec<String> =
        [NODE, RELAY, CLUSTER, EDGE, CATALOG, CONTROL_PLANE].iter().flat_map(check).collect();
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_imports() {
    let code = code("use crate::{hub::Hub, metrics::{Metrics, Protocol}};\n// crate::config\nlet x = crate::settings::Limits::default(); let u = \"http://x\"; // crate::server\nsuper::super::lock::lock(&m);");
    let mut names = names_after(&code, "crate::");
    names.sort_unstable();
    assert_eq!(names, ["hub", "metrics", "settings"]);
    assert_eq!(names_after(&code, "super::super::"), ["lock"]);
    let (graph, _) = imports(&NODE);
    assert!(graph["server"].contains("hub") && graph["hls"].contains("hub"));
    assert!(graph["hub"].contains("metrics"));
}

//! The Helm chart's rendered manifests as typed Kubernetes objects (k8s-openapi), and the
//! real binaries' flags to compare them with.
//!
//! `helm/test.sh` (run by `scripts/test.sh` before the Rust tests) renders `helm/sluice` for
//! each value set and Kubernetes version into `<target>/helm/rendered/SET-KUBE.json`, one JSON
//! array of objects each. Without that directory the tests fail, naming the script, unless
//! `SLUICE_TEST_ALLOW_MISSING` lists `helm` (or is `all`; see [`crate::deps`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::deps::ALLOW_MISSING_VAR;
use crate::paths;

/// Where `helm/test.sh` writes the rendered manifests.
pub fn rendered_dir() -> PathBuf {
    paths::target_dir().join("helm").join("rendered")
}

/// One `helm template` output: a value set on one Kubernetes version.
pub struct RenderedSet {
    /// `SET-KUBE`, e.g. `default-1.35`.
    pub name: String,
    pub objects: Vec<Value>,
}

/// Every rendered set; `None` (after a loud notice) when they are missing and the opt-out
/// allows it. Panics when they are missing otherwise, or unreadable.
pub fn rendered_sets(test: &str) -> Option<Vec<RenderedSet>> {
    let dir = rendered_dir();
    let mut sets = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                let objects: Vec<Value> = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
                let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
                sets.push(RenderedSet { name, objects });
            }
        }
    }
    if sets.is_empty() {
        let what = format!("no rendered manifests in {}: run helm/test.sh first", dir.display());
        if !helm_allowed_missing() {
            panic!("{test}: {what}. To skip instead, set {ALLOW_MISSING_VAR}=helm");
        }
        eprintln!("\n*** {test} SKIPPED: {what} ({ALLOW_MISSING_VAR}) ***\n");
        return None;
    }
    sets.sort_by(|a, b| a.name.cmp(&b.name));
    Some(sets)
}

fn helm_allowed_missing() -> bool {
    std::env::var(ALLOW_MISSING_VAR)
        .is_ok_and(|v| v.split(',').any(|item| matches!(item.trim(), "helm" | "all")))
}

/// A rendered Deployment or StatefulSet.
pub struct Workload {
    pub kind: &'static str,
    pub name: String,
    /// `spec.replicas` (absent when an autoscaler owns it).
    pub replicas: Option<i32>,
    pub selector: BTreeMap<String, String>,
    pub template: PodTemplateSpec,
}

impl Workload {
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default()
    }

    pub fn containers(&self) -> &[Container] {
        self.template.spec.as_ref().map_or(&[], |s| s.containers.as_slice())
    }

    /// The container running `binary` (its command's first word).
    pub fn container_running(&self, binary: &str) -> Option<&Container> {
        self.containers().iter().find(|c| command_of(c) == Some(binary))
    }
}

/// The program a container runs (the first word of its command).
pub fn command_of(c: &Container) -> Option<&str> {
    c.command.as_ref().and_then(|cmd| cmd.first()).map(String::as_str)
}

impl RenderedSet {
    /// The objects of `kind`, deserialised as `T` (panics on a malformed one).
    pub fn of_kind<T: DeserializeOwned>(&self, kind: &str) -> Vec<T> {
        self.raw_of_kind(kind)
            .map(|v| {
                serde_json::from_value(v.clone())
                    .unwrap_or_else(|e| panic!("{}: {kind} does not parse: {e}\n{v:#}", self.name))
            })
            .collect()
    }

    /// The objects of `kind`, untyped (for custom resources such as KEDA's).
    pub fn raw_of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    /// Every Deployment and StatefulSet.
    pub fn workloads(&self) -> Vec<Workload> {
        let mut out = Vec::new();
        for d in self.of_kind::<Deployment>("Deployment") {
            let spec = d.spec.expect("a Deployment has a spec");
            out.push(Workload {
                kind: "Deployment",
                name: d.metadata.name.unwrap_or_default(),
                replicas: spec.replicas,
                selector: spec.selector.match_labels.unwrap_or_default(),
                template: spec.template,
            });
        }
        for s in self.of_kind::<StatefulSet>("StatefulSet") {
            let spec = s.spec.expect("a StatefulSet has a spec");
            out.push(Workload {
                kind: "StatefulSet",
                name: s.metadata.name.unwrap_or_default(),
                replicas: spec.replicas,
                selector: spec.selector.match_labels.unwrap_or_default(),
                template: spec.template,
            });
        }
        out
    }

    /// The workload running `binary`.
    pub fn workload_running(&self, binary: &str) -> Workload {
        self.workloads()
            .into_iter()
            .find(|w| w.container_running(binary).is_some())
            .unwrap_or_else(|| panic!("{}: no workload runs {binary}", self.name))
    }
}

/// Whether every `selector` label is among `labels` (an empty selector selects nothing here:
/// the chart never means "everything").
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The long flags `binary --help` lists, e.g. `--drain-timeout`.
pub fn help_flags(binary: &str) -> BTreeSet<String> {
    let out = Command::new(paths::binary(binary))
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("{binary} --help: {e}"));
    assert!(out.status.success(), "{binary} --help failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '<' || c == '=')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()).to_string())
        .collect()
}

/// The flag of an argument `--name=value` (or `--name`); `None` for anything else.
pub fn flag_name(arg: &str) -> Option<&str> {
    let name = arg.split('=').next()?;
    (name.starts_with("--") && name.len() > 2).then_some(name)
}

/// The value of `--name=value` among `args`.
pub fn flag_value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
}

/// An integer from an `IntOrString` that must be a plain number (no percentage).
pub fn int(v: &IntOrString) -> i32 {
    match v {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => s.parse().unwrap_or_else(|_| panic!("{s:?} is not a number")),
    }
}

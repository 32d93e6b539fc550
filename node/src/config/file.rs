//! The TOML file: flat keys (the long flag names, `rtmp-listen` or `rtmp_listen`) that apply to
//! every binary, and an `[origin]` and an `[edge]` section for what differs per binary (and a
//! `[control_plane]` section, which the nodes skip and the control plane checks). Each
//! binary applies the top level, then its own section (which may also override common keys,
//! e.g. another `rtmp-listen` when both run on one host); it checks the other section's keys
//! but ignores its values. An unknown key is an error anywhere, so a typo never silently falls
//! back to a default.
//!
//! The settings groups are serde structs with `deny_unknown_fields`; since the file is flat,
//! each key is handed to the group whose field it names (serde's `flatten` cannot be combined
//! with `deny_unknown_fields`).

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use toml::{Table, Value};

use crate::settings::{
    AdmissionSettings, ClusterSettings, EdgeSettings, HlsSettings, Limits, NodeSettings,
    OriginSettings, RelaySettings,
};

/// What is wrong with a config file (the caller names the file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("unknown key '{0}'")]
    UnknownKey(String),
    #[error("key '{key}': {message}")]
    Value { key: String, message: String },
    #[error("'config' cannot be set inside the config file")]
    ConfigKey,
    #[error("'{0}' must be a section ([{0}])")]
    NotASection(String),
}

/// The settings only one binary reads, kept in its own section of the file.
pub trait RoleSettings: DeserializeOwned + Default {
    /// This binary's section.
    const SECTION: &'static str;
    /// The other binary's section, whose keys are checked but not applied.
    const OTHER_SECTION: &'static str;
    /// The keys the other binary's role settings have.
    fn other_fields() -> &'static [&'static str];
}

impl RoleSettings for OriginSettings {
    const SECTION: &'static str = "origin";
    const OTHER_SECTION: &'static str = "edge";
    fn other_fields() -> &'static [&'static str] {
        fields_of::<EdgeSettings>()
    }
}

impl RoleSettings for EdgeSettings {
    const SECTION: &'static str = "edge";
    const OTHER_SECTION: &'static str = "origin";
    fn other_fields() -> &'static [&'static str] {
        fields_of::<OriginSettings>()
    }
}

/// The keys of the common groups, in file order of the groups.
pub(crate) fn common_groups() -> [&'static [&'static str]; 6] {
    [
        fields_of::<NodeSettings>(),
        fields_of::<Limits>(),
        fields_of::<HlsSettings>(),
        fields_of::<ClusterSettings>(),
        fields_of::<RelaySettings>(),
        fields_of::<AdmissionSettings>(),
    ]
}

/// The settings in `text`, on top of the defaults, for the binary whose role settings are `R`.
pub fn parse<R: RoleSettings>(text: &str) -> Result<(NodeSettings, R), FileError> {
    let table: Table = text.parse().map_err(|e: toml::de::Error| {
        let line =
            e.span().map_or(0, |s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let message = e.message().trim().lines().collect::<Vec<_>>().join(": ");
        FileError::Syntax { line, message }
    })?;
    let mut top = normalise(table);
    let own = take_section(&mut top, R::SECTION)?;
    let other = take_section(&mut top, R::OTHER_SECTION)?;
    // The control plane's section: its binary checks its keys; a node skips it, so one file can
    // serve the whole cluster.
    take_section(&mut top, CONTROL_PLANE_SECTION)?;

    // The other binary's section: keys only.
    let common = common_groups();
    let mut other_groups: Vec<&[&str]> = common.to_vec();
    other_groups.push(R::other_fields());
    split(other, &other_groups, R::OTHER_SECTION)?;

    // Ours: the top level, then our section over it.
    let mut merged = top;
    let prefix = if own.is_empty() { "" } else { R::SECTION };
    for (k, v) in own {
        merged.insert(k, v);
    }
    let mut groups: Vec<&[&str]> = common.to_vec();
    groups.push(fields_of::<R>());
    let mut parts = split(merged, &groups, prefix)?.into_iter();
    let mut next = || parts.next().unwrap_or_default();
    let mut node: NodeSettings = group(&next(), prefix)?;
    node.limits = group(&next(), prefix)?;
    node.hls = group(&next(), prefix)?;
    node.cluster = group(&next(), prefix)?;
    node.relay = group(&next(), prefix)?;
    node.admission = group(&next(), prefix)?;
    let role: R = group(&next(), prefix)?;
    Ok((node, role))
}

/// Keys with `_` written as `-`, at the top level and in sections.
fn normalise(table: Table) -> Table {
    table
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Table(t) => Value::Table(normalise(t)),
                v => v,
            };
            (k.replace('_', "-"), v)
        })
        .collect()
}

/// The control plane's section (`[control_plane]`, after [`normalise`]).
const CONTROL_PLANE_SECTION: &str = "control-plane";

fn take_section(top: &mut Table, name: &str) -> Result<Table, FileError> {
    match top.remove(name) {
        None => Ok(Table::new()),
        Some(Value::Table(t)) => Ok(t),
        Some(_) => Err(FileError::NotASection(name.to_string())),
    }
}

fn path(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Hands each key of `table` to the group that has it.
fn split(table: Table, groups: &[&[&str]], prefix: &str) -> Result<Vec<Table>, FileError> {
    let mut out = vec![Table::new(); groups.len()];
    for (key, value) in table {
        if key == "config" {
            return Err(FileError::ConfigKey);
        }
        let Some(i) = groups.iter().position(|g| g.contains(&key.as_str())) else {
            return Err(FileError::UnknownKey(path(prefix, &key)));
        };
        out[i].insert(key, value);
    }
    Ok(out)
}

/// One group from its keys; an error names the first key that does not deserialize.
fn group<T: DeserializeOwned>(table: &Table, prefix: &str) -> Result<T, FileError> {
    T::deserialize(Value::Table(table.clone())).map_err(|whole| {
        for (key, value) in table {
            let one: Table = [(key.clone(), value.clone())].into_iter().collect();
            if let Err(e) = T::deserialize(Value::Table(one)) {
                return FileError::Value {
                    key: path(prefix, key),
                    message: e.message().to_string(),
                };
            }
        }
        FileError::Value { key: prefix.to_string(), message: whole.message().to_string() }
    })
}

/// The field names (file keys) of a `#[derive(Deserialize)]` struct, as serde_derive hands
/// them to `deserialize_struct`.
pub(crate) fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    struct Fields<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Fields<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            *self.0 = fields;
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

//! `-o table|json|yaml`: one view encoded in the chosen format. Only this goes to stdout;
//! logs, progress and errors go to stderr, so `-o json` output can be piped to a parser.
//!
//! YAML is written with `serde-saphyr`: pure Rust with `forbid(unsafe_code)` and maintained,
//! where `serde_yaml` is archived, `serde_yml` had an unsoundness advisory (RUSTSEC-2025-0068)
//! and is deprecated, and the `serde_yaml` forks (`serde_norway`, `serde_yaml_ng`) still bind
//! the C-translated `unsafe-libyaml`.

use std::io::Write;

use serde::Serialize;

use crate::args::Format;
use crate::error::CtlError;

/// The whole document for `value` in `format`; `table` renders the table form.
pub fn encode<T: Serialize>(
    format: Format,
    value: &T,
    table: impl FnOnce(&T) -> String,
) -> Result<String, CtlError> {
    match format {
        Format::Table => Ok(table(value)),
        Format::Json => serde_json::to_string_pretty(value)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| CtlError::Encode { format: "json", message: e.to_string() }),
        Format::Yaml => yaml(value),
    }
}

/// One record of a stream of them (`streams watch`): a table line, one compact JSON object
/// per line (NDJSON), or one YAML document each.
pub fn encode_record<T: Serialize>(
    format: Format,
    value: &T,
    table: impl FnOnce(&T) -> String,
) -> Result<String, CtlError> {
    match format {
        Format::Table => Ok(table(value)),
        Format::Json => serde_json::to_string(value)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| CtlError::Encode { format: "json", message: e.to_string() }),
        Format::Yaml => yaml(value).map(|doc| format!("---\n{doc}")),
    }
}

fn yaml<T: Serialize>(value: &T) -> Result<String, CtlError> {
    let mut text = serde_saphyr::to_string(value)
        .map_err(|e| CtlError::Encode { format: "yaml", message: e.to_string() })?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Write to stdout and flush.
pub fn print(text: &str) {
    write(&mut std::io::stdout().lock(), text);
}

/// Write to `out` (stdout, or a buffer in tests) and flush: every record of `streams watch`
/// shows at once. A closed pipe, as in `| head`, ends the program quietly.
pub fn write(out: &mut dyn Write, text: &str) {
    if out.write_all(text.as_bytes()).and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    struct Doc {
        name: String,
        count: u64,
        ratio: f64,
        missing: Option<u64>,
        map: BTreeMap<String, u64>,
        list: Vec<String>,
    }

    fn doc() -> Doc {
        Doc {
            name: "live/x".into(),
            count: 3,
            ratio: 0.6,
            missing: None,
            map: [("edge-1".to_string(), 2)].into(),
            list: vec!["avc1.64001f".into()],
        }
    }

    #[test]
    fn json_is_pretty_and_parses_back() {
        let text = encode(Format::Json, &doc(), |_| unreachable!()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["map"]["edge-1"], 2);
        assert_eq!(v["missing"], serde_json::Value::Null);
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn yaml_parses_back_to_the_same_values() {
        let text = encode(Format::Yaml, &doc(), |_| unreachable!()).unwrap();
        let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(v["name"], "live/x", "{text}");
        assert_eq!(v["count"], 3, "{text}");
        assert_eq!(v["ratio"], 0.6, "{text}");
        assert_eq!(v["map"]["edge-1"], 2, "{text}");
        assert_eq!(v["list"][0], "avc1.64001f", "{text}");
    }

    #[test]
    fn table_uses_the_renderer() {
        assert_eq!(encode(Format::Table, &doc(), |d| d.name.clone()).unwrap(), "live/x");
    }

    #[test]
    fn records_are_one_line_of_json_or_one_yaml_document() {
        let line = encode_record(Format::Json, &doc(), |_| unreachable!()).unwrap();
        assert_eq!(line.matches('\n').count(), 1);
        let yaml = encode_record(Format::Yaml, &doc(), |_| unreachable!()).unwrap();
        assert!(yaml.starts_with("---\n"), "{yaml}");
    }
}

//! A parser for the Prometheus text exposition format, enough to read sample values.

use std::collections::BTreeMap;

/// One sample: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// All samples of one scrape, plus the `# TYPE` declarations.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub samples: Vec<Sample>,
    /// Metric family name -> type (`counter`, `gauge`, ...).
    pub types: BTreeMap<String, String>,
}

impl Metrics {
    /// Parse exposition text; any malformed line is an error (the server must emit valid text).
    pub fn parse(text: &str) -> Result<Metrics, String> {
        let mut m = Metrics::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('#') {
                let mut parts = rest.split_whitespace();
                if parts.next() == Some("TYPE") {
                    let name = parts.next().ok_or(format!("line {}: TYPE without name", i + 1))?;
                    let ty = parts.next().ok_or(format!("line {}: TYPE without type", i + 1))?;
                    m.types.insert(name.to_string(), ty.to_string());
                }
                continue;
            }
            m.samples
                .push(parse_sample(line).map_err(|e| format!("line {} {line:?}: {e}", i + 1))?);
        }
        Ok(m)
    }

    /// Value of the sample named `name` whose labels include all of `labels`; if several
    /// match, their sum.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = None;
        for s in &self.samples {
            if s.name == name
                && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            {
                *found.get_or_insert(0.0) += s.value;
            }
        }
        found
    }

    /// Like [`Metrics::get`], 0 when absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// Whether any sample has this name.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let (name_end, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = find_label_end(line, open).ok_or("unterminated label set")?;
            (open, parse_labels(&line[open + 1..close])?, &line[close + 1..])
        }
        None => {
            let end = line.find(char::is_whitespace).ok_or("no value")?;
            (end, BTreeMap::new(), &line[end..])
        }
    };
    let name = line[..name_end].trim();
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(format!("bad metric name {name:?}"));
    }
    let value_text = rest.split_whitespace().next().ok_or("no value")?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse::<f64>().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok(Sample { name: name.to_string(), labels, value })
}

fn find_label_end(line: &str, open: usize) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut in_str = false;
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'}' if !in_str => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or("label without '='")?;
        let key = rest[..eq].trim().to_string();
        rest = rest[eq + 1..].trim_start();
        let mut chars = rest.char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err("label value not quoted".into());
        }
        let mut value = String::new();
        let mut end = None;
        let mut escaped = false;
        for (i, c) in chars {
            if escaped {
                value.push(match c {
                    'n' => '\n',
                    other => other,
                });
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(i);
                break;
            } else {
                value.push(c);
            }
        }
        let end = end.ok_or("unterminated label value")?;
        labels.insert(key, value);
        rest = rest[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exposition_text() {
        let text = "# HELP sluice_viewers Viewers.\n# TYPE sluice_viewers gauge\n\
                    sluice_viewers{protocol=\"rtmp\"} 3\nsluice_viewers{protocol=\"flv\"} 2\n\
                    sluice_bytes_in_total 1.5e3\nweird{a=\"x,\\\"}y\",b=\"2\"} 7 1700000000\n";
        let m = Metrics::parse(text).unwrap();
        assert_eq!(m.get("sluice_viewers", &[("protocol", "rtmp")]), Some(3.0));
        assert_eq!(m.get("sluice_viewers", &[]), Some(5.0));
        assert_eq!(m.value("sluice_bytes_in_total", &[]), 1500.0);
        assert_eq!(m.get("weird", &[("a", "x,\"}y"), ("b", "2")]), Some(7.0));
        assert_eq!(m.get("missing", &[]), None);
        assert_eq!(m.types.get("sluice_viewers").map(String::as_str), Some("gauge"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Metrics::parse("not a metric line at all\n").is_err());
        assert!(Metrics::parse("m{a=\"1\" 2\n").is_err());
    }
}

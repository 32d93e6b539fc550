//! Aligned text tables and `key: value` blocks.

/// Rows under a header, each column as wide as its widest cell.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table { headers: headers.iter().map(ToString::to_string).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as lines; columns are separated by two spaces and the last one is not
    /// padded (no trailing blanks).
    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let width = |cell: &str| cell.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(width(cell));
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(columns) {
                line.push_str(cell);
                if i + 1 < columns {
                    let pad = widths[i] - width(cell) + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key: value` lines with the values aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let pad = width - key.chars().count();
        out.push_str(&format!("{key}:{} {value}\n", " ".repeat(pad)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_lines_have_no_trailing_blanks() {
        let mut t = Table::new(&["ID", "STATE", "VIEWERS"]);
        t.row(vec!["edge-1".into(), "ready".into(), "12".into()]);
        t.row(vec!["e2".into(), "draining".into(), "".into()]);
        assert_eq!(
            t.render(),
            "ID      STATE     VIEWERS\nedge-1  ready     12\ne2      draining\n"
        );
    }

    #[test]
    fn multibyte_cells_count_as_one_column_each() {
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["✓".into(), "x".into()]);
        assert_eq!(t.render(), "A  B\n✓  x\n");
    }

    #[test]
    fn fields_align() {
        let text = fields(&[("id", "e1".into()), ("version", "0.1.0".into())]);
        assert_eq!(text, "id:      e1\nversion: 0.1.0\n");
    }
}

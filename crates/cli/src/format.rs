//! `--format` handling shared by `ps`, `images`, `history`: docker's `table` prefix,
//! `json`, custom templates, and Go's tabwriter layout (min width 10, padding 3).

use serde_json::Value;

use crate::template::{Template, TemplateError};

/// Go `text/tabwriter` with docker's settings: a cell is text ended by `\t`; each column is
/// as wide as its widest cell in a run of consecutive lines plus `padding`, at least
/// `min_width`; the text after a line's last tab is not padded.
pub fn tabwrite(text: &str, min_width: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    // cells(line) = number of tab-terminated cells.
    let cells = |l: &Vec<&str>| l.len() - 1;
    let max_cols = lines.iter().map(cells).max().unwrap_or(0);
    // widths[line][col]
    let mut widths = vec![vec![0usize; max_cols]; lines.len()];
    for col in 0..max_cols {
        let mut i = 0;
        while i < lines.len() {
            if cells(&lines[i]) <= col {
                i += 1;
                continue;
            }
            let start = i;
            let mut w = min_width;
            while i < lines.len() && cells(&lines[i]) > col {
                w = w.max(lines[i][col].chars().count() + padding);
                i += 1;
            }
            for row in widths.iter_mut().take(i).skip(start) {
                row[col] = w;
            }
        }
    }
    let mut out = String::with_capacity(text.len() * 2);
    for (n, line) in lines.iter().enumerate() {
        for (col, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if col < cells(line) {
                let pad = widths[n][col].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        if n + 1 < lines.len() {
            out.push('\n');
        }
    }
    out
}

/// A `--format` value resolved against a command's default table.
pub struct Formatter {
    template: Template,
    table: bool,
}

impl Formatter {
    /// `format` as given (None or `table` = the default table; `json` = one JSON object per
    /// line); `default_table` is the command's `table ...` format.
    pub fn new(format: Option<&str>, default_table: &str) -> Result<Formatter, TemplateError> {
        let format = match format.map(str::trim) {
            None | Some("") | Some("table") => default_table.to_string(),
            Some("json") => "{{json .}}".to_string(),
            Some(f) => f.to_string(),
        };
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with([' ', '\t']) => (true, rest),
            _ => (false, format.as_str()),
        };
        // docker replaces the two-character escapes `\t` and `\n` typed in shells.
        let body = body
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        let template = Template::parse(&body)
            .map_err(|e| TemplateError(format!("template parsing error: {e}")))?;
        Ok(Formatter { template, table })
    }

    /// Renders every row (each followed by a newline); tables get the header row and
    /// tabwriter layout.
    pub fn render(&self, header: &Value, rows: &[Value]) -> Result<String, TemplateError> {
        let mut out = String::new();
        if self.table {
            let h = self.template.render(header)?;
            if !h.trim().is_empty() {
                out.push_str(&h);
                out.push('\n');
            }
        }
        for row in rows {
            out.push_str(&self.template.render(row)?);
            out.push('\n');
        }
        if self.table {
            // The final newline ends the last line rather than starting an empty one.
            let body = out.strip_suffix('\n').unwrap_or(&out);
            let mut t = tabwrite(body, 10, 3);
            t.push('\n');
            return Ok(t);
        }
        Ok(out)
    }
}

/// docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// docker's `TruncateID`: strips `sha256:` and keeps 12 characters.
pub fn truncate_id(id: &str) -> String {
    let id = id.split_once(':').map(|(_, h)| h).unwrap_or(id);
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tabwriter_pads_like_go() {
        let t = tabwrite(
            "CONTAINER ID\tIMAGE\tNAMES\nabc\tbusybox:latest\tweb",
            10,
            3,
        );
        assert_eq!(
            t,
            "CONTAINER ID   IMAGE            NAMES\nabc            busybox:latest   web"
        );
    }

    #[test]
    fn ps_header_has_dockers_spacing() {
        let f = Formatter::new(
            None,
            "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}",
        )
        .unwrap();
        let header = json!({"ID":"CONTAINER ID","Image":"IMAGE","Command":"COMMAND",
            "RunningFor":"CREATED","Status":"STATUS","Ports":"PORTS","Names":"NAMES"});
        assert_eq!(
            f.render(&header, &[]).unwrap(),
            "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"
        );
    }

    #[test]
    fn custom_and_json_formats() {
        let row = json!({"ID": "abc", "Names": "web"});
        let f = Formatter::new(Some("{{.ID}}: {{.Names}}"), "table {{.ID}}").unwrap();
        assert_eq!(
            f.render(&json!({}), std::slice::from_ref(&row)).unwrap(),
            "abc: web\n"
        );
        let f = Formatter::new(Some("json"), "table {{.ID}}").unwrap();
        assert_eq!(
            f.render(&json!({}), std::slice::from_ref(&row)).unwrap(),
            "{\"ID\":\"abc\",\"Names\":\"web\"}\n"
        );
        let f = Formatter::new(Some(r"table {{.ID}}\t{{.Names}}"), "").unwrap();
        let header = json!({"ID": "CONTAINER ID", "Names": "NAMES"});
        assert_eq!(
            f.render(&header, &[row]).unwrap(),
            "CONTAINER ID   NAMES\nabc            web\n"
        );
    }

    #[test]
    fn ellipsis_and_ids() {
        assert_eq!(ellipsis("short", 20), "short");
        assert_eq!(
            ellipsis("sh -c 'while true; do sleep 1; done'", 20),
            "sh -c 'while true; …"
        );
        assert_eq!(truncate_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(truncate_id("0123456789abcdef"), "0123456789ab");
    }
}

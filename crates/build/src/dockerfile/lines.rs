//! Physical lines to logical lines, Docker's way (BuildKit `parser/parser.go`):
//! - parser directives are read from the first lines only: the first line that is not a
//!   directive (an instruction, a blank line, any other comment) ends them for good;
//! - the escape character at the end of a line (trailing blanks allowed) continues it,
//!   unless it is itself escaped (`\\`);
//! - inside a continuation, comment lines are dropped and empty lines are dropped with a
//!   warning; the first line loses its leading blanks, continuation lines keep theirs;
//! - heredoc bodies are raw lines, read after the logical line that opened them.

use super::Directives;

/// One logical line: continuations joined.
#[derive(Debug)]
pub(super) struct Logical {
    /// 1-based line of its first physical line.
    pub line: usize,
    /// 1-based column of its first character (the keyword).
    pub column: usize,
    /// Its first physical line, leading blanks removed (to place errors in it).
    pub first: String,
    /// The joined text.
    pub text: String,
}

/// An error at a 1-based line.
#[derive(Debug)]
pub(super) struct LineError {
    pub line: usize,
    pub message: String,
}

/// Reads a Dockerfile's lines.
pub(super) struct Reader<'a> {
    lines: Vec<&'a str>,
    /// Index of the next physical line.
    next: usize,
    pub directives: Directives,
    /// Directives seen (lowercase), to refuse a second one.
    seen: Vec<String>,
    /// Set at the first line that is not a directive.
    directives_done: bool,
    pub warnings: Vec<String>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Reader {
            lines: text.split_inclusive('\n').collect(),
            next: 0,
            directives: Directives::default(),
            seen: Vec::new(),
            directives_done: false,
            warnings: Vec::new(),
        }
    }

    /// The number of physical lines read so far (the current line, 1-based).
    pub(super) fn line(&self) -> usize {
        self.next
    }

    fn take(&mut self) -> Option<&'a str> {
        let line = self.lines.get(self.next).copied();
        if line.is_some() {
            self.next += 1;
        }
        line
    }

    /// The next logical line, `None` at the end of the file.
    pub(super) fn next_logical(&mut self) -> Result<Option<Logical>, LineError> {
        loop {
            let Some(raw) = self.take() else {
                return Ok(None);
            };
            let line = self.next;
            let trimmed = trim_newline(raw);
            let stripped = trimmed.trim_start();
            let column = trimmed.chars().count() - stripped.chars().count() + 1;
            self.directive(stripped)
                .map_err(|message| LineError { line, message })?;
            let content = if stripped.starts_with('#') {
                ""
            } else {
                stripped
            };
            let (body, mut done) = trim_continuation(content, self.directives.escape);
            if done && body.is_empty() {
                continue;
            }
            let mut text = body.to_string();
            let mut empty_continuation = false;
            while !done {
                let Some(raw) = self.take() else { break };
                let next = trim_newline(raw);
                if next.trim_start().starts_with('#') {
                    continue;
                }
                if next.trim_start().is_empty() {
                    empty_continuation = true;
                    continue;
                }
                let (body, end) = trim_continuation(next, self.directives.escape);
                text.push_str(body);
                done = end;
            }
            if empty_continuation {
                // Docker's warning, word for word.
                self.warnings
                    .push(format!("Empty continuation line found in: {text}"));
            }
            return Ok(Some(Logical {
                line,
                column,
                first: stripped.to_string(),
                text,
            }));
        }
    }

    /// Reads a heredoc's body up to the line that is exactly `name` (after removing
    /// leading tabs when `chomp`); the body keeps its line endings. `None` when the file
    /// ends first.
    pub(super) fn heredoc_body(&mut self, name: &str, chomp: bool) -> Option<String> {
        let mut body = String::new();
        while let Some(raw) = self.take() {
            let mut candidate = trim_newline(raw);
            if chomp {
                candidate = candidate.trim_start_matches('\t');
            }
            if candidate == name {
                return Some(body);
            }
            body.push_str(raw);
        }
        None
    }

    /// Reads `line` (leading blanks removed) as a parser directive while directives may
    /// still come.
    fn directive(&mut self, line: &str) -> Result<(), String> {
        if self.directives_done {
            return Ok(());
        }
        let Some((key, value)) = line.strip_prefix('#').and_then(split_directive) else {
            self.directives_done = true;
            return Ok(());
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.directives_done = true;
            return Ok(());
        }
        if self.seen.contains(&key) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        match key.as_str() {
            "escape" => {
                self.directives.escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(format!(
                            "invalid escape token '{value}' does not match ` or \\"
                        ))
                    }
                }
            }
            "syntax" => self.directives.syntax = Some(value.to_string()),
            _ => self.directives.check = Some(value.to_string()),
        }
        self.seen.push(key);
        Ok(())
    }
}

/// `key = value` of a directive comment (after the `#`): a key of ASCII letters and digits
/// starting with a letter, a non-empty value; blanks around both are allowed.
fn split_directive(body: &str) -> Option<(&str, &str)> {
    let body = body.trim_start();
    let key_end = body
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(body.len());
    let key = &body[..key_end];
    if !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = body[key_end..].trim_start().strip_prefix('=')?.trim();
    (!value.is_empty()).then_some((key, value))
}

/// A line without its line ending (`\n`, `\r\n`).
fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// A line without its continuation: `(text before the escape character, false)` when the
/// line ends with an unescaped escape character (blanks after it allowed), else
/// `(line, true)`.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let end = line.trim_end_matches([' ', '\t']);
    if let Some(before) = end.strip_suffix(escape) {
        if before.is_empty() || !before.ends_with(escape) {
            return (before, false);
        }
    }
    (line, true)
}

/// Removes the leading tabs of every line (`<<-`).
pub(super) fn chomp(body: &str) -> String {
    body.split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

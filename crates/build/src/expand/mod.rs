//! Docker's word processing: variable expansion and quote removal, for the instructions
//! Docker expands (ADD COPY ENV EXPOSE FROM LABEL STOPSIGNAL USER VOLUME WORKDIR ONBUILD, and
//! ARG defaults), never for RUN, CMD and ENTRYPOINT text.
//!
//! This follows BuildKit's shell lexer (`frontend/dockerfile/shell/lex.go`), which the
//! classic builder shares:
//! - `$V` and `${V}`; `${V:-w}` / `${V-w}` (default when unset-or-empty / unset),
//!   `${V:+w}` / `${V+w}` (alternative), `${V:?msg}` / `${V?msg}` (error);
//! - BuildKit's patterns: `${V#pat}`, `${V##pat}`, `${V%pat}`, `${V%%pat}`, `${V/pat/r}`,
//!   `${V//pat/r}` with `*`, `?` and `\` escapes (see [`pattern`]);
//! - `$1`, `$@`, `$$` and the other special parameters are names like any other: unset, so
//!   empty, as Docker has them;
//! - outside quotes the escape character keeps the next character literal; inside double
//!   quotes it only escapes `"`, `$` and itself (else it stays); inside single quotes
//!   nothing is special;
//! - an expanded value outside quotes is split into words by [`words`], a quoted one never.
//!
//! Errors read as Docker's: `failed to process "${U:?}": U: is not allowed to be unset`.

mod pattern;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The deepest a `${V:-word}` may sit in another's word. BuildKit's lexer has no bound (Go's
/// stacks grow); a thread's stack here does not, and a Dockerfile must not crash berthd.
const MAX_NESTING: usize = 100;

/// The most bytes the variables of one expansion may substitute (values, and what pattern
/// replacements make of them); a [`Budget`] bounds a whole build's.
pub const MAX_SUBSTITUTED: u64 = 32 << 20;

/// An expansion error (`${V:?msg}` of an unset variable, a bad substitution, an unterminated
/// quote), worded as Docker's: `failed to process "<word>": <reason>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError(pub String);

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExpandError {}

/// The variables in scope: a name's value, `None` when unset.
pub trait Vars {
    /// The value of `name`, `None` when unset (an empty value is set).
    fn get(&self, name: &str) -> Option<String>;

    /// The budget substitutions are charged to, beyond each expansion's own bound.
    fn budget(&self) -> Option<&Budget> {
        None
    }
}

/// The bytes variables may still substitute, shared by the expansions of a build: a few
/// lines that each double a variable (`ENV A=$A$A`) would otherwise fill berthd's memory.
#[derive(Debug)]
pub struct Budget {
    left: AtomicU64,
    total: u64,
}

impl Budget {
    pub fn new(bytes: u64) -> Budget {
        Budget {
            left: AtomicU64::new(bytes),
            total: bytes,
        }
    }

    /// Takes `n` bytes; false (and nothing taken) when fewer are left.
    fn take(&self, n: u64) -> bool {
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(n)
            })
            .is_ok()
    }
}

/// Variables looked up by `get`, their substitutions charged to `budget`.
pub struct Charged<'a, F: Fn(&str) -> Option<String>> {
    pub get: F,
    pub budget: &'a Budget,
}

impl<F: Fn(&str) -> Option<String>> Vars for Charged<'_, F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.get)(name)
    }
    fn budget(&self) -> Option<&Budget> {
        Some(self.budget)
    }
}

impl<F: Fn(&str) -> Option<String>> Vars for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Processes one word: expands variables and removes quotes and escapes (Docker's
/// `ProcessWord`). Whitespace is kept: `a "b c"` gives `a b c`.
pub fn word(raw: &str, vars: &dyn Vars, escape: char) -> Result<String, ExpandError> {
    Lexer::new(raw, vars, escape, Mode::default())
        .run()
        .map(|(word, _)| word)
}

/// Processes a list of words (`EXPOSE`, a shell-form list): each expanded, then split on
/// unquoted whitespace, including whitespace that came from an unquoted variable's value
/// (Docker's `ProcessWords`). An empty quoted word (`""`) gives no word, as in Docker.
pub fn words(raw: &str, vars: &dyn Vars, escape: char) -> Result<Vec<String>, ExpandError> {
    Lexer::new(raw, vars, escape, Mode::default())
        .run()
        .map(|(_, words)| words)
}

/// The variable names `raw` refers to, in order of first use, without duplicates: every
/// name Docker would look up while expanding it, including those inside `${V:-$W}` words
/// (Docker processes the word whether or not it is used). The build cache uses this to know
/// which build args an instruction depends on. Malformed text gives the names read before
/// the error.
pub fn referenced(raw: &str, escape: char) -> Vec<String> {
    let unset = |_: &str| None;
    let mode = Mode {
        capture: true,
        lenient: true,
        ..Mode::default()
    };
    let mut lexer = Lexer::new(raw, &unset, escape, mode);
    let _ = lexer.process(None);
    lexer.seen
}

/// A COPY or ADD heredoc's body with its variables expanded (a delimiter not quoted), as
/// BuildKit does it: quotes are plain text, the escape character is always a backslash and
/// is removed (`\$` keeps a `$`; a backslash before any other character goes too, as in
/// BuildKit).
pub fn heredoc_body(raw: &str, vars: &dyn Vars) -> Result<String, ExpandError> {
    let mode = Mode {
        skip_quotes: true,
        ..Mode::default()
    };
    Lexer::new(raw, vars, '\\', mode)
        .run()
        .map(|(word, _)| word)
}

/// Docker's lexing of a line for heredoc markers: quotes and escapes kept, unset variables
/// left as written, the escape character always `\`. A line that does not lex gives no
/// words (Docker ignores the error there).
pub(crate) fn heredoc_line_words(line: &str) -> Vec<String> {
    let unset = |_: &str| None;
    let mode = Mode {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset: true,
        ..Mode::default()
    };
    Lexer::new(line, &unset, '\\', mode)
        .run()
        .map(|(_, words)| words)
        .unwrap_or_default()
}

/// The words of a heredoc delimiter (`"EOF"`, `E'O'F`) with quotes removed, and with them
/// kept: Docker's test for a quoted delimiter compares the two.
pub(crate) fn heredoc_delimiter_words(
    rest: &str,
) -> Result<(Vec<String>, Vec<String>), ExpandError> {
    let unset = |_: &str| None;
    let mode = Mode {
        skip_unset: true,
        ..Mode::default()
    };
    let (_, plain) = Lexer::new(rest, &unset, '\\', mode).run()?;
    let raw_mode = Mode {
        raw_quotes: true,
        ..mode
    };
    let (_, raw) = Lexer::new(rest, &unset, '\\', raw_mode).run()?;
    Ok((plain, raw))
}

/// How a [`Lexer`] treats quotes, escapes and unset names.
#[derive(Debug, Clone, Copy, Default)]
struct Mode {
    /// Keep the quote characters in the output.
    raw_quotes: bool,
    /// Keep the escape characters in the output.
    raw_escapes: bool,
    /// Leave a reference to an unset variable as written.
    skip_unset: bool,
    /// Record every name looked up, in `Lexer::seen`.
    capture: bool,
    /// `${V?msg}` of an unset `V` is not an error (for [`referenced`]).
    lenient: bool,
    /// Quotes are ordinary characters (a COPY heredoc's body).
    skip_quotes: bool,
}

/// The words being built by [`Lexer::process`]: Docker's `wordsStruct`.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    /// An unquoted character: whitespace ends the current word.
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.buf.push(c);
        self.in_word = true;
    }

    /// An expanded variable's value: split like unquoted text.
    fn add_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    /// Quoted text: never split.
    fn add_raw_str(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

/// One pass over a word.
struct Lexer<'a> {
    source: &'a str,
    chars: Vec<char>,
    pos: usize,
    escape: char,
    vars: &'a dyn Vars,
    mode: Mode,
    /// Whether the escape character is kept right now (patterns keep it).
    raw_escapes: bool,
    seen: Vec<String>,
    /// How deep the current `${...}` sits.
    depth: usize,
    /// Bytes substituted so far.
    substituted: u64,
    /// Steps the pattern operations took so far.
    work: pattern::Work,
}

impl<'a> Lexer<'a> {
    fn new(source: &'a str, vars: &'a dyn Vars, escape: char, mode: Mode) -> Self {
        Lexer {
            source,
            chars: source.chars().collect(),
            pos: 0,
            escape,
            vars,
            mode,
            raw_escapes: mode.raw_escapes,
            seen: Vec::new(),
            depth: 0,
            substituted: 0,
            work: pattern::Work::default(),
        }
    }

    /// The whole source: the processed word and its split words.
    fn run(&mut self) -> Result<(String, Vec<String>), ExpandError> {
        self.process(None).map_err(|reason| {
            // A long word is shown by its start.
            let shown = match self.source.char_indices().nth(200) {
                Some((i, _)) => format!("{:?}...", &self.source[..i]),
                None => format!("{:?}", self.source),
            };
            ExpandError(format!("failed to process {shown}: {reason}"))
        })
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes up to `stop` (consumed) or the end; with `raw_escapes` for its duration.
    fn process_with(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let out = self.process(stop);
        self.raw_escapes = saved;
        out
    }

    fn process(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match c {
                '$' => {
                    let value = self.dollar()?;
                    result.push_str(&value);
                    words.add_str(&value);
                }
                '<' => {
                    let text = self.possible_heredoc();
                    result.push_str(&text);
                    words.add_raw_str(&text);
                }
                '\'' if !self.mode.skip_quotes => {
                    let text = self.single_quoted()?;
                    result.push_str(&text);
                    words.add_raw_str(&text);
                }
                '"' if !self.mode.skip_quotes => {
                    let text = self.double_quoted()?;
                    result.push_str(&text);
                    words.add_raw_str(&text);
                }
                c if c == self.escape => {
                    self.pos += 1;
                    if self.raw_escapes {
                        result.push(c);
                        words.add_raw_char(c);
                    }
                    // An escape character at the very end is dropped.
                    let Some(n) = self.next() else { break };
                    result.push(n);
                    words.add_raw_char(n);
                }
                c => {
                    self.pos += 1;
                    result.push(c);
                    words.add_char(c);
                }
            }
        }
        match stop {
            Some(s) => Err(format!(
                "unexpected end of statement while looking for matching {s}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    fn single_quoted(&mut self) -> Result<String, String> {
        let mut out = String::new();
        self.pos += 1;
        if self.mode.raw_quotes {
            out.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.mode.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, String> {
        let mut out = String::new();
        self.pos += 1;
        if self.mode.raw_quotes {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.pos += 1;
                    if self.mode.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) => {
                    self.pos += 1;
                    let mut c = c;
                    if c == self.escape {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        // Only `"`, `$` and the escape itself are escaped in double quotes;
                        // before anything else the escape character stays.
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.pos += 1;
                                c = n;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    /// `<<` and the blanks after it stay one word: a heredoc marker `<< EOF` is not split.
    fn possible_heredoc(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.pos += 1;
        let mut out = String::from("<<");
        while let Some(c @ (' ' | '\t' | '\r')) = self.peek() {
            out.push(c);
            self.pos += 1;
        }
        out
    }

    /// A name: a run of digits, one special parameter, or letters, digits and `_`.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return c.to_string();
            }
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            self.pos += 1;
            name.push(c);
        }
        name
    }

    /// Records `name` for [`referenced`], in the order the text names them.
    fn note(&mut self, name: &str) {
        if self.mode.capture && !name.is_empty() && !self.seen.iter().any(|n| n == name) {
            self.seen.push(name.to_string());
        }
    }

    fn lookup(&mut self, name: &str) -> Result<Option<String>, String> {
        let value = self.vars.get(name);
        if let Some(v) = &value {
            self.charge(v.len())?;
        }
        Ok(value)
    }

    /// Counts `n` bytes substituted against this expansion's bound and the build's budget.
    fn charge(&mut self, n: usize) -> Result<(), String> {
        self.substituted += n as u64;
        if self.substituted > MAX_SUBSTITUTED {
            return Err(format!(
                "variables substitute more than the {} MiB berth's builder allows in one word",
                MAX_SUBSTITUTED >> 20
            ));
        }
        match self.vars.budget() {
            Some(b) if !b.take(n as u64) => Err(format!(
                "variables substitute more than the {} MiB berth's builder allows in a build",
                b.total >> 20
            )),
            _ => Ok(()),
        }
    }

    /// A reference at `$`: its value.
    fn dollar(&mut self) -> Result<String, String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            self.note(&name);
            return Ok(match self.lookup(&name)? {
                Some(v) => v,
                None if self.mode.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1;
        if self.depth >= MAX_NESTING {
            return Err(format!("substitutions nested more than {MAX_NESTING} deep"));
        }
        self.depth += 1;
        let out = self.braced();
        self.depth -= 1;
        out
    }

    /// `${...}`, after the `{`.
    fn braced(&mut self) -> Result<String, String> {
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.name();
        self.note(&name);
        match self.next() {
            Some('}') => Ok(match self.lookup(&name)? {
                Some(v) => v,
                None if self.mode.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':') => {
                let op = self.next();
                self.modifier(&name, true, op)
            }
            Some(op @ ('+' | '-' | '?' | '#' | '%')) => self.modifier(&name, false, Some(op)),
            Some('/') => self.replace(&name),
            // Docker prints the end of input as U+FFFD here; saying what is missing helps more.
            None => Err("syntax error: missing '}'".into()),
            Some(c) => Err(format!("unsupported modifier ({c}) in substitution")),
        }
    }

    /// `${name[:]op word}`, after `op`.
    fn modifier(&mut self, name: &str, colon: bool, op: Option<char>) -> Result<String, String> {
        let shown = format!(
            "{}{}",
            if colon { ":" } else { "" },
            op.map(String::from).unwrap_or_default()
        );
        let pattern = matches!(op, Some('#' | '%'));
        if colon && pattern {
            return Err(format!("unsupported modifier ({shown}) in substitution"));
        }
        let (word, _) = self.process_with(Some('}'), pattern).map_err(|e| {
            if self.peek().is_none() {
                "syntax error: missing '}'".to_string()
            } else {
                e
            }
        })?;
        let value = self.lookup(name)?;
        if value.is_none() && self.mode.skip_unset {
            return Ok(format!("${{{name}{shown}{word}}}"));
        }
        let set = match &value {
            Some(v) => !(colon && v.is_empty()),
            None => false,
        };
        match op {
            Some('-') if set => Ok(value.unwrap_or_default()),
            Some('-') => Ok(word),
            Some('+') if set => Ok(word),
            Some('+') => Ok(String::new()),
            Some('?') => match value {
                None if !self.mode.lenient => Err(format!(
                    "{name}: {}",
                    if word.is_empty() {
                        "is not allowed to be unset"
                    } else {
                        &word
                    }
                )),
                Some(v) if v.is_empty() && colon && !self.mode.lenient => Err(format!(
                    "{name}: {}",
                    if word.is_empty() {
                        "is not allowed to be empty"
                    } else {
                        &word
                    }
                )),
                v => Ok(v.unwrap_or_default()),
            },
            Some(op @ ('#' | '%')) => {
                let value = value.unwrap_or_default();
                let (greedy, pat) = match word.strip_prefix(op) {
                    Some(rest) => (true, rest),
                    None => (false, word.as_str()),
                };
                let glob = pattern::Glob::parse(pat)
                    .map_err(|e| format!("invalid pattern ({pat}) in substitution: {e}"))?;
                if op == '#' {
                    glob.trim_prefix(&value, greedy, &mut self.work)
                } else {
                    glob.trim_suffix(&value, greedy, &mut self.work)
                }
            }
            _ => Err(format!("unsupported modifier ({shown}) in substitution")),
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`, after the first `/`.
    fn replace(&mut self, name: &str) -> Result<String, String> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let (pat, _) = self.process_with(Some('/'), true).map_err(|e| {
            if self.peek().is_none() {
                "syntax error: missing '/' in ${}".to_string()
            } else {
                e
            }
        })?;
        let (replacement, _) = self.process_with(Some('}'), true).map_err(|e| {
            if self.peek().is_none() {
                "syntax error: missing '}'".to_string()
            } else {
                e
            }
        })?;
        let Some(value) = self
            .lookup(name)?
            .or_else(|| (!self.mode.skip_unset).then(String::new))
        else {
            return Ok(format!("${{{name}/{pat}/{replacement}}}"));
        };
        let glob = pattern::Glob::parse(&pat)
            .map_err(|e| format!("invalid pattern ({pat}) in substitution: {e}"))?;
        let out = glob.replace(&value, &replacement, all, &mut self.work)?;
        // The replacement is repeated at each match: what it makes is charged too.
        self.charge(out.len())?;
        Ok(out)
    }
}

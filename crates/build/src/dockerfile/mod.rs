//! The Dockerfile: its syntax tree and the parser that makes it.
//!
//! The parser is pure: text in, [`Dockerfile`] out. Arguments stay as written (quotes and
//! `$` references included): expansion depends on the build's state at each step, so the
//! builder does it with [`crate::expand`] when it gets there, on exactly the instructions
//! Docker expands.

use std::fmt;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub directives: Directives,
    /// `ARG`s before the first `FROM`: visible in `FROM` lines only, unless a stage declares
    /// them again.
    pub global_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
}

/// Parser directives from the leading comment block (`# escape=`, `# syntax=`, `# check=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// The escape character: `\` (default) or `` ` ``.
    pub escape: char,
    pub syntax: Option<String>,
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            escape: '\\',
            syntax: None,
            check: None,
        }
    }
}

/// One stage: its `FROM` and what follows up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The image as written (`busybox`, `$BASE`, `scratch`, a stage's name or index).
    pub base: String,
    /// `AS name`, lowercased as Docker does.
    pub name: Option<String>,
    /// The `FROM` instruction itself (its flags: `--platform`).
    pub from: Instruction,
    pub instructions: Vec<Instruction>,
}

/// One instruction, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line of its first line in the file.
    pub line: usize,
    /// The instruction as Docker prints it in `Step N/M : ...`: the logical line with the
    /// continuations joined, the keyword as written.
    pub original: String,
    /// `--name[=value]` flags before the arguments.
    pub flags: Vec<Flag>,
    pub kind: Kind,
}

/// A `--name[=value]` flag of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    pub value: Option<String>,
}

impl Instruction {
    /// The value of flag `name` (the last one given); `Some("")` for a flag without value.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|f| f.name == name)
            .map(|f| f.value.as_deref().unwrap_or(""))
    }

    /// Every value of a repeatable flag (`--mount`, `--exclude`).
    pub fn flags_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.flags
            .iter()
            .filter(move |f| f.name == name)
            .map(|f| f.value.as_deref().unwrap_or(""))
    }

    /// The keyword, upper case (`RUN`).
    pub fn keyword(&self) -> &'static str {
        self.kind.keyword()
    }
}

/// A command of RUN, CMD, ENTRYPOINT, HEALTHCHECK CMD: exec form (a JSON array) or shell
/// form (the text, run by the stage's `SHELL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Exec(Vec<String>),
    Shell(String),
}

/// A heredoc (`<<EOF` ... `EOF`) attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word (`EOF`); for COPY it is the source's name.
    pub name: String,
    /// The body, with the final newline.
    pub content: String,
    /// Unquoted delimiter: the body is expanded.
    pub expand: bool,
    /// `<<-`: leading tabs were stripped from each line.
    pub chomp: bool,
}

/// COPY and ADD: sources and destination as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyArgs {
    pub sources: Vec<String>,
    pub dest: String,
    /// Heredoc sources (`COPY <<EOF /dest`).
    pub heredocs: Vec<Heredoc>,
}

/// HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// `HEALTHCHECK NONE`.
    None,
    /// `HEALTHCHECK [flags] CMD ...`.
    Cmd(Command),
}

/// What an instruction does, its arguments as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    From,
    Run {
        command: Command,
        heredocs: Vec<Heredoc>,
    },
    Cmd(Command),
    Entrypoint(Command),
    Copy(CopyArgs),
    Add(CopyArgs),
    /// `key=value` pairs as written (the legacy `ENV key value` as one pair).
    Env(Vec<(String, String)>),
    /// `name[=default]`.
    Arg(Vec<(String, Option<String>)>),
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
    Workdir(String),
    User(String),
    /// Paths (a JSON array or words).
    Volume(Vec<String>),
    Shell(Vec<String>),
    StopSignal(String),
    Healthcheck(Health),
    /// The trigger: the instruction's text after `ONBUILD`, parsed again in the child.
    Onbuild(String),
    Maintainer(String),
}

impl Kind {
    /// The keyword, upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            Kind::From => "FROM",
            Kind::Run { .. } => "RUN",
            Kind::Cmd(_) => "CMD",
            Kind::Entrypoint(_) => "ENTRYPOINT",
            Kind::Copy(_) => "COPY",
            Kind::Add(_) => "ADD",
            Kind::Env(_) => "ENV",
            Kind::Arg(_) => "ARG",
            Kind::Label(_) => "LABEL",
            Kind::Expose(_) => "EXPOSE",
            Kind::Workdir(_) => "WORKDIR",
            Kind::User(_) => "USER",
            Kind::Volume(_) => "VOLUME",
            Kind::Shell(_) => "SHELL",
            Kind::StopSignal(_) => "STOPSIGNAL",
            Kind::Healthcheck(_) => "HEALTHCHECK",
            Kind::Onbuild(_) => "ONBUILD",
            Kind::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// A parse error: where, which instruction, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The Dockerfile's name as the user gave it (`Dockerfile`).
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The instruction's keyword as written, when known.
    pub instruction: Option<String>,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(i) = &self.instruction {
            write!(f, "{i}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

/// One logical line: continuations joined.
struct Logical {
    line: usize,
    text: String,
}

/// Parses `text`, the Dockerfile named `file` (for messages).
pub fn parse(file: &str, text: &str) -> Result<Dockerfile, ParseError> {
    let err = |line: usize, column: usize, instruction: Option<&str>, message: String| ParseError {
        file: file.to_string(),
        line,
        column,
        instruction: instruction.map(String::from),
        message,
    };
    let lines: Vec<&str> = text.lines().collect();
    let (directives, first) = read_directives(&lines);
    let escape = directives.escape;
    let mut logical = Vec::new();
    let mut i = first;
    while i < lines.len() {
        let raw = lines[i];
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        let mut text = String::new();
        let mut cur = raw.trim_end();
        loop {
            match cur.strip_suffix(escape) {
                Some(body) => {
                    text.push_str(body);
                    i += 1;
                    // Comment and empty lines inside a continuation are dropped.
                    while i < lines.len() {
                        let t = lines[i].trim_start();
                        if t.starts_with('#') || t.is_empty() {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    if i >= lines.len() {
                        break;
                    }
                    cur = lines[i].trim_end();
                }
                _ => {
                    text.push_str(cur);
                    i += 1;
                    break;
                }
            }
        }
        logical.push(Logical {
            line: start + 1,
            text: text.trim().to_string(),
        });
    }
    let mut out = Dockerfile {
        directives,
        global_args: Vec::new(),
        stages: Vec::new(),
    };
    for l in logical {
        let (word, rest) = split_word(&l.text);
        let keyword = word.to_ascii_uppercase();
        let (flags, args) = take_flags(rest);
        let fail = |message: String| err(l.line, 1, Some(word), message);
        let kind = match keyword.as_str() {
            "FROM" => Kind::From,
            "RUN" => Kind::Run {
                command: command(args),
                heredocs: Vec::new(),
            },
            "CMD" => Kind::Cmd(command(args)),
            "ENTRYPOINT" => Kind::Entrypoint(command(args)),
            "COPY" | "ADD" => {
                let mut words = json_array(args).unwrap_or_else(|| split_words(args, escape));
                if words.len() < 2 {
                    return Err(fail(format!("{keyword} requires at least two arguments")));
                }
                let dest = words.pop().unwrap_or_default();
                let a = CopyArgs {
                    sources: words,
                    dest,
                    heredocs: Vec::new(),
                };
                if keyword == "COPY" {
                    Kind::Copy(a)
                } else {
                    Kind::Add(a)
                }
            }
            "ENV" | "LABEL" => {
                let pairs = name_values(args, escape, keyword == "ENV").map_err(&fail)?;
                if keyword == "ENV" {
                    Kind::Env(pairs)
                } else {
                    Kind::Label(pairs)
                }
            }
            "ARG" => Kind::Arg(
                split_words(args, escape)
                    .into_iter()
                    .map(|w| match w.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (w, None),
                    })
                    .collect(),
            ),
            "EXPOSE" => Kind::Expose(split_words(args, escape)),
            "WORKDIR" => Kind::Workdir(args.to_string()),
            "USER" => Kind::User(args.to_string()),
            "VOLUME" => Kind::Volume(json_array(args).unwrap_or_else(|| split_words(args, escape))),
            "SHELL" => Kind::Shell(json_array(args).ok_or_else(|| {
                fail("SHELL requires the arguments to be in JSON form".to_string())
            })?),
            "STOPSIGNAL" => Kind::StopSignal(args.to_string()),
            "HEALTHCHECK" => {
                let (w, rest) = split_word(args);
                match w.to_ascii_uppercase().as_str() {
                    "NONE" => Kind::Healthcheck(Health::None),
                    "CMD" => Kind::Healthcheck(Health::Cmd(command(rest))),
                    _ => {
                        return Err(fail(
                            "Unknown type in HEALTHCHECK (try CMD or NONE)".to_string(),
                        ))
                    }
                }
            }
            "ONBUILD" => Kind::Onbuild(args.to_string()),
            "MAINTAINER" => Kind::Maintainer(args.to_string()),
            _ => return Err(err(l.line, 1, None, format!("unknown instruction: {word}"))),
        };
        let inst = Instruction {
            line: l.line,
            original: l.text.clone(),
            flags,
            kind,
        };
        match inst.kind {
            Kind::From => {
                let words = split_words(args, escape);
                let (base, name) = match words.as_slice() {
                    [b] => (b.clone(), None),
                    [b, as_, n] if as_.eq_ignore_ascii_case("as") => {
                        (b.clone(), Some(n.to_ascii_lowercase()))
                    }
                    _ => {
                        return Err(fail(
                            "FROM requires either one or three arguments".to_string(),
                        ))
                    }
                };
                out.stages.push(Stage {
                    base,
                    name,
                    from: inst,
                    instructions: Vec::new(),
                });
            }
            Kind::Arg(_) if out.stages.is_empty() => out.global_args.push(inst),
            _ => match out.stages.last_mut() {
                Some(stage) => stage.instructions.push(inst),
                None => {
                    return Err(fail(format!(
                        "{keyword} before the first FROM: only ARG may come before FROM"
                    )))
                }
            },
        }
    }
    if out.stages.is_empty() {
        return Err(err(
            lines.len().max(1),
            1,
            None,
            "the Dockerfile has no FROM".to_string(),
        ));
    }
    Ok(out)
}

/// Reads the parser directives of the leading comment block; returns them and the index of
/// the first line after them.
fn read_directives(lines: &[&str]) -> (Directives, usize) {
    let mut d = Directives::default();
    let mut i = 0;
    while let Some(line) = lines.get(i) {
        let Some(body) = line.trim().strip_prefix('#') else {
            break;
        };
        let Some((k, v)) = body.split_once('=') else {
            break;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        match k.as_str() {
            "escape" => match v {
                "\\" => d.escape = '\\',
                "`" => d.escape = '`',
                _ => break,
            },
            "syntax" => d.syntax = Some(v.to_string()),
            "check" => d.check = Some(v.to_string()),
            _ => break,
        }
        i += 1;
    }
    (d, i)
}

/// The first whitespace-separated word and the rest, trimmed.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// Leading `--name[=value]` flags, then the rest.
fn take_flags(mut s: &str) -> (Vec<Flag>, &str) {
    let mut flags = Vec::new();
    loop {
        let (w, rest) = split_word(s);
        let Some(body) = w.strip_prefix("--").filter(|b| !b.is_empty()) else {
            return (flags, s);
        };
        flags.push(match body.split_once('=') {
            Some((n, v)) => Flag {
                name: n.to_string(),
                value: Some(v.to_string()),
            },
            None => Flag {
                name: body.to_string(),
                value: None,
            },
        });
        s = rest;
    }
}

/// Exec form when the text is a JSON array of strings, else shell form (Docker's fallback).
fn command(args: &str) -> Command {
    match json_array(args) {
        Some(v) => Command::Exec(v),
        None => Command::Shell(args.to_string()),
    }
}

fn json_array(args: &str) -> Option<Vec<String>> {
    if !args.trim_start().starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(args).ok()
}

/// Words split on unquoted whitespace; quotes and escapes are kept (expansion removes them).
pub(crate) fn split_words(s: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    let mut in_word = false;
    while let Some(c) = chars.next() {
        if c == escape && quote != Some('\'') {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
            in_word = true;
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                continue;
            }
            None => {}
        }
        cur.push(c);
        in_word = true;
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// ENV and LABEL pairs: `k=v ...`, or (ENV and LABEL's legacy form) `k v w` as one pair.
fn name_values(args: &str, escape: char, env: bool) -> Result<Vec<(String, String)>, String> {
    let words = split_words(args, escape);
    let what = if env { "ENV" } else { "LABEL" };
    if words.is_empty() {
        return Err(format!("{what} requires at least one argument"));
    }
    if !words[0].contains('=') {
        let (k, v) = split_word(args);
        if v.is_empty() {
            return Err(format!("{what} must have two arguments"));
        }
        return Ok(vec![(k.to_string(), v.to_string())]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!(
                "Syntax error - can't find = in \"{w}\". Must be of the form: name=value"
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_instructions_and_continuations() {
        let df = parse(
            "Dockerfile",
            "# escape=\\\nARG BASE=busybox\nFROM $BASE AS Build\nRUN echo a \\\n  # note\n  && echo b\nCOPY --chown=1:1 a b /dst/\nENV A=1 B=\"two words\"\nCMD [\"sh\"]\nfrom build\nrun [\"not json\"\n",
        )
        .unwrap();
        assert_eq!(df.global_args.len(), 1);
        assert_eq!(df.stages.len(), 2);
        let s = &df.stages[0];
        assert_eq!(s.base, "$BASE");
        assert_eq!(s.name.as_deref(), Some("build"));
        assert_eq!(s.instructions[0].line, 4);
        assert_eq!(
            s.instructions[0].kind,
            Kind::Run {
                command: Command::Shell("echo a   && echo b".into()),
                heredocs: vec![]
            }
        );
        assert_eq!(s.instructions[1].flag("chown"), Some("1:1"));
        match &s.instructions[1].kind {
            Kind::Copy(c) => {
                assert_eq!(c.sources, ["a", "b"]);
                assert_eq!(c.dest, "/dst/");
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(
            s.instructions[2].kind,
            Kind::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "\"two words\"".into())
            ])
        );
        assert_eq!(
            s.instructions[3].kind,
            Kind::Cmd(Command::Exec(vec!["sh".into()]))
        );
        assert_eq!(
            df.stages[1].instructions[0].kind,
            Kind::Run {
                command: Command::Shell("[\"not json\"".into()),
                heredocs: vec![]
            }
        );
    }

    #[test]
    fn errors_say_where() {
        let e = parse("Dockerfile", "FROM a\n\nFOO bar\n").unwrap_err();
        assert_eq!(e.to_string(), "Dockerfile:3:1: unknown instruction: FOO");
        let e = parse("df", "RUN x\n").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("df:1:1: RUN: RUN before the first FROM"));
    }
}

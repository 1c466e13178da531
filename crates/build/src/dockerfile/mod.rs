//! The Dockerfile: its syntax tree and the parser that makes it.
//!
//! The parser is pure: text in, [`Dockerfile`] out. Arguments stay as written (quotes and
//! `$` references included): expansion depends on the build's state at each step, so the
//! builder does it with [`crate::expand`] when it gets there, on exactly the instructions
//! Docker expands.
//!
//! It follows Docker's two passes (BuildKit's `parser` then `instructions` packages, which
//! the classic builder shares), so the same file fails with the same first error:
//! 1. [`lines`]: parser directives, logical lines (continuations, comments, empty
//!    continuation lines with a warning), and for RUN, COPY and ADD in shell form the
//!    heredoc bodies; a JSON array of non-strings is an error here;
//! 2. each instruction's flags and arguments ([`args`]), then stages.
//!
//! Errors carry `file:line:column` and Docker's message where Docker has one.

mod args;
mod lines;
mod mount;
#[cfg(test)]
mod tests;

use std::fmt;

pub use mount::{parse_mount, CacheSharing, Mount, MountType};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The parser directives of the leading comment block.
    pub directives: Directives,
    /// `ARG`s before the first `FROM`: visible in `FROM` lines only, unless a stage declares
    /// them again.
    pub global_args: Vec<Instruction>,
    /// The stages, in order; a stage's index is what `COPY --from=0` names.
    pub stages: Vec<Stage>,
    /// What Docker warns about but accepts, in Docker's words (`Empty continuation line
    /// found in: RUN ...`). The classic builder prints each as `[WARNING]: {warning}` on the
    /// build's stderr, then, when there was any, `[WARNING]: Empty continuation lines will
    /// become errors in a future release.`
    pub warnings: Vec<String>,
}

/// Parser directives from the leading comment block (`# escape=`, `# syntax=`, `# check=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// The escape character: `\` (default) or `` ` ``.
    pub escape: char,
    /// `# syntax=`: the frontend image Docker would use (recorded, not acted on).
    pub syntax: Option<String>,
    /// `# check=`: build-check configuration (`skip=...;error=true`).
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
    /// The instructions after `FROM`, in order.
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
    /// What it does, with its arguments.
    pub kind: Kind,
}

/// A `--name[=value]` flag of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The name without `--` (`mount`).
    pub name: String,
    /// After `=`, quotes removed; `None` for a bare `--link`.
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

    /// A boolean flag (`--link`, `--link=true`, `--parents=false`): given without a value or
    /// with `true` (any case). The parser has already refused other values.
    pub fn flag_bool(&self, name: &str) -> bool {
        self.flag(name)
            .is_some_and(|v| v.is_empty() || v.eq_ignore_ascii_case("true"))
    }
}

/// A command of RUN, CMD, ENTRYPOINT, HEALTHCHECK CMD: exec form (a JSON array) or shell
/// form (the text, run by the stage's `SHELL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `["executable", "arg"]`: run as is.
    Exec(Vec<String>),
    /// The text after the keyword (and flags), run as `SHELL + [text]`.
    Shell(String),
}

/// A heredoc (`<<EOF` ... `EOF`) attached to RUN, COPY or ADD.
///
/// Docker's rules: the delimiter may be quoted in part or whole (`<<"EOF"`, `<<'EOF'`,
/// `<<E"OF"`), which turns expansion off; `<<-` strips leading tabs from the body and the
/// closing line; heredocs are recognised in RUN, COPY and ADD (also as ONBUILD triggers)
/// in shell form only; several may follow one line, their bodies one after the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word (`EOF`); for COPY it is the source's name.
    pub name: String,
    /// The body, with the final newline; for `<<-`, leading tabs already removed.
    pub content: String,
    /// Unquoted delimiter: the body is expanded.
    pub expand: bool,
    /// `<<-`: leading tabs were stripped from each line.
    pub chomp: bool,
}

/// COPY and ADD: sources and destination as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyArgs {
    /// Paths and URLs, heredoc markers left out (they are in `heredocs`).
    pub sources: Vec<String>,
    /// The destination as written (the last argument).
    pub dest: String,
    /// Heredoc sources (`COPY <<EOF /dest`): each is a file named `name` (the delimiter)
    /// with `content`, copied like a source from the context; in the order written.
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
    /// `FROM`: its base and name are in [`Stage`].
    From,
    /// `command` is the text after the flags (`<<EOF`, `python3 <<EOF`) or the exec form;
    /// `heredocs` the bodies of the heredocs it names. See [`Kind::run_script`].
    Run {
        /// Shell or exec form.
        command: Command,
        /// Heredoc bodies, in the order their markers appear.
        heredocs: Vec<Heredoc>,
    },
    /// The default command (shell form: run by the stage's `SHELL`).
    Cmd(Command),
    /// The entrypoint.
    Entrypoint(Command),
    /// `COPY [--from ...] src... dest`.
    Copy(CopyArgs),
    /// `ADD src... dest` (URLs, git, archives).
    Add(CopyArgs),
    /// `key=value` pairs as written (the legacy `ENV key value` as one pair).
    Env(Vec<(String, String)>),
    /// `name[=default]`.
    Arg(Vec<(String, Option<String>)>),
    /// `key=value` pairs as written (the legacy `LABEL key value` as one pair).
    Label(Vec<(String, String)>),
    /// Ports as written (`80`, `53/udp`, `$PORT`).
    Expose(Vec<String>),
    /// The path as written.
    Workdir(String),
    /// `user[:group]` as written.
    User(String),
    /// Paths (a JSON array or words).
    Volume(Vec<String>),
    /// The shell for the shell form: always JSON.
    Shell(Vec<String>),
    /// The signal as written (`SIGTERM`, `9`).
    StopSignal(String),
    /// `NONE` or `CMD`.
    Healthcheck(Health),
    /// The trigger: the instruction's text after `ONBUILD` (with its heredocs appended, as
    /// Docker stores it), parsed again in the child with [`parse_trigger`].
    Onbuild(String),
    /// The author, as written (deprecated by Docker, still accepted).
    Maintainer(String),
}

impl Kind {
    /// For `RUN <<EOF` alone (the command is exactly one heredoc marker and there is one
    /// heredoc): the script, which Docker runs with the stage's shell (or by its `#!` line).
    /// `None` for any other RUN: there the heredocs feed the command (`RUN python3 <<EOF`,
    /// `RUN <<EOF bash`) as the shell would.
    pub fn run_script(&self) -> Option<&Heredoc> {
        let Kind::Run {
            command: Command::Shell(text),
            heredocs,
        } = self
        else {
            return None;
        };
        match (heredocs.as_slice(), args::heredoc_marker(text.trim())) {
            ([only], Ok(Some(marker))) if marker.name == only.name => Some(only),
            _ => None,
        }
    }

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
    /// 1-based line of the instruction (or of the directive) at fault.
    pub line: usize,
    /// 1-based column: the offending flag or word when it is on that line, else the keyword.
    pub column: usize,
    /// The instruction's keyword as written, when known.
    pub instruction: Option<String>,
    /// What is wrong, in Docker's words where Docker has them.
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

/// Parses `text`, the Dockerfile named `file` (for messages).
pub fn parse(file: &str, text: &str) -> Result<Dockerfile, ParseError> {
    let (nodes, mut reader) = read_nodes(file, text)?;
    let Some(last) = nodes.last() else {
        return Err(error_at(
            file,
            reader.line().max(1),
            1,
            None,
            "file with no instructions",
        ));
    };
    let last_line = last.logical.line;
    let escape = reader.directives.escape;
    let mut out = Dockerfile {
        directives: reader.directives.clone(),
        global_args: Vec::new(),
        stages: Vec::new(),
        warnings: std::mem::take(&mut reader.warnings),
    };
    for node in &nodes {
        let parsed = instruction(node, escape).map_err(|f| node.error(file, f))?;
        match parsed.stage {
            Some((base, name)) => out.stages.push(Stage {
                base,
                name,
                from: parsed.instruction,
                instructions: Vec::new(),
            }),
            None => match out.stages.last_mut() {
                Some(stage) => stage.instructions.push(parsed.instruction),
                None if matches!(parsed.instruction.kind, Kind::Arg(_)) => {
                    out.global_args.push(parsed.instruction)
                }
                None => {
                    return Err(node.error(file, Failure::new("no build stage in current context")))
                }
            },
        }
    }
    if out.stages.is_empty() {
        return Err(error_at(
            file,
            last_line,
            1,
            None,
            "dockerfile contains no stages to build",
        ));
    }
    Ok(out)
}

/// Parses an ONBUILD trigger ([`Kind::Onbuild`]'s text) in the child's build, as Docker
/// does: like a Dockerfile of its own, default escape character, heredocs included. `file`
/// names it in errors. FROM, MAINTAINER and ONBUILD are refused, as at the parent.
pub fn parse_trigger(file: &str, text: &str) -> Result<Vec<Instruction>, ParseError> {
    let (nodes, reader) = read_nodes(file, text)?;
    if nodes.is_empty() {
        return Err(error_at(
            file,
            reader.line().max(1),
            1,
            None,
            "file with no instructions",
        ));
    }
    let escape = reader.directives.escape;
    nodes
        .iter()
        .map(|node| {
            let parsed = instruction(node, escape).map_err(|f| node.error(file, f))?;
            match parsed.instruction.kind {
                Kind::From | Kind::Maintainer(_) | Kind::Onbuild(_) => Err(node.error(
                    file,
                    Failure::new(format!(
                        "{} isn't allowed as an ONBUILD trigger",
                        parsed.instruction.keyword()
                    )),
                )),
                _ => Ok(parsed.instruction),
            }
        })
        .collect()
}

/// A HEALTHCHECK duration (`--interval=30s`) in Go's syntax, as Docker reads it: `1m30s`,
/// `1.5s`, `250ms`, `0`. The parser has already checked each given value; this gives the
/// executor the same reading. A negative duration is an error.
pub fn go_duration(value: &str) -> Result<std::time::Duration, String> {
    let nanos = args::go_duration_nanos(value)?;
    u64::try_from(nanos)
        .map(std::time::Duration::from_nanos)
        .map_err(|_| format!("time: negative duration {value:?}"))
}

fn error_at(
    file: &str,
    line: usize,
    column: usize,
    instruction: Option<&str>,
    message: &str,
) -> ParseError {
    ParseError {
        file: file.to_string(),
        line,
        column,
        instruction: instruction.map(String::from),
        message: message.to_string(),
    }
}

/// Pass one's product: an instruction's line split into keyword, flag words and arguments,
/// with its heredocs' bodies.
struct Node {
    logical: lines::Logical,
    keyword: String,
    flags: Vec<String>,
    args: String,
    /// Bodies as read (not chomped: ONBUILD keeps them so).
    heredocs: Vec<Heredoc>,
}

/// What went wrong in an instruction, and what to point at.
struct Failure {
    message: String,
    /// Text of the first line to put the column on (a flag; its last occurrence, which is
    /// the duplicate one); else the keyword.
    at: Option<String>,
    /// Whether to name the instruction (not for an unknown one).
    name_instruction: bool,
}

impl Failure {
    fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            at: None,
            name_instruction: true,
        }
    }

    fn at(mut self, text: impl Into<String>) -> Self {
        self.at = Some(text.into());
        self
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::new(message)
    }
}

impl Node {
    fn error(&self, file: &str, failure: Failure) -> ParseError {
        let l = &self.logical;
        let column = failure
            .at
            .as_deref()
            .and_then(|t| l.first.rfind(t))
            .map_or(l.column, |i| l.column + l.first[..i].chars().count());
        ParseError {
            file: file.to_string(),
            line: l.line,
            column,
            instruction: failure.name_instruction.then(|| self.keyword.clone()),
            message: failure.message,
        }
    }
}

/// Pass one over the whole text: logical lines, flags split off, heredoc bodies read.
fn read_nodes<'a>(file: &str, text: &'a str) -> Result<(Vec<Node>, lines::Reader<'a>), ParseError> {
    let mut reader = lines::Reader::new(text);
    let mut nodes = Vec::new();
    loop {
        let logical = match reader.next_logical() {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => return Err(error_at(file, e.line, 1, None, &e.message)),
        };
        let escape = reader.directives.escape;
        let (keyword, rest) = args::split_keyword(&logical.text);
        let (flags, arguments) = args::split_flags(rest, escape);
        let mut node = Node {
            keyword: keyword.to_string(),
            flags,
            args: arguments.to_string(),
            heredocs: Vec::new(),
            logical,
        };
        let takes_heredocs = takes_heredocs(&node.keyword, &node.args, escape)
            .map_err(|m| node.error(file, Failure::new(m)))?;
        if takes_heredocs && node.logical.text.contains("<<") {
            let markers = args::heredoc_markers(&node.logical.text)
                .map_err(|m| node.error(file, Failure::new(m)))?;
            for mut heredoc in markers {
                let Some(body) = reader.heredoc_body(&heredoc.name, heredoc.chomp) else {
                    return Err(node.error(file, Failure::new("unterminated heredoc")));
                };
                heredoc.content = body;
                node.heredocs.push(heredoc);
            }
        }
        nodes.push(node);
    }
    Ok((nodes, reader))
}

/// Pass one's checks of the arguments: a JSON array of non-strings is an error for the
/// instructions that take JSON; heredocs belong to RUN, COPY and ADD in shell form (also
/// as an ONBUILD trigger).
fn takes_heredocs(keyword: &str, arguments: &str, escape: char) -> Result<bool, String> {
    let upper = keyword.to_ascii_uppercase();
    match upper.as_str() {
        "RUN" | "COPY" | "ADD" => Ok(args::json_array(arguments)?.is_none()),
        "CMD" | "ENTRYPOINT" | "SHELL" | "VOLUME" => args::json_array(arguments).map(|_| false),
        "HEALTHCHECK" => {
            let (_, command) = args::split_keyword(arguments);
            args::json_array(command).map(|_| false)
        }
        "ONBUILD" if !arguments.is_empty() => {
            let (sub, rest) = args::split_keyword(arguments);
            let (_, sub_args) = args::split_flags(rest, escape);
            takes_heredocs(sub, sub_args, escape)
        }
        _ => Ok(false),
    }
}

/// Pass two's product for one instruction.
struct Parsed {
    instruction: Instruction,
    /// For FROM: the base and the stage name.
    stage: Option<(String, Option<String>)>,
}

/// Pass two: one instruction's flags and arguments, Docker's rules and messages.
fn instruction(node: &Node, escape: char) -> Result<Parsed, Failure> {
    let upper = node.keyword.to_ascii_uppercase();
    let a = node.args.as_str();
    let known = [
        "FROM",
        "RUN",
        "CMD",
        "ENTRYPOINT",
        "COPY",
        "ADD",
        "ENV",
        "ARG",
        "LABEL",
        "EXPOSE",
        "WORKDIR",
        "USER",
        "VOLUME",
        "SHELL",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "ONBUILD",
        "MAINTAINER",
    ];
    if !known.contains(&upper.as_str()) {
        let hint = args::suggest(&node.keyword, &known, false)
            .map(|s| format!(" (did you mean {s}?)"))
            .unwrap_or_default();
        return Err(Failure {
            message: format!("unknown instruction: {}{hint}", node.keyword),
            at: None,
            name_instruction: false,
        });
    }
    let healthcheck_none =
        upper == "HEALTHCHECK" && args::split_keyword(a).0.eq_ignore_ascii_case("NONE");
    let flags = if healthcheck_none || upper == "ARG" || upper == "STOPSIGNAL" {
        // Docker never checks the flags of these three: they are accepted and ignored.
        node.flags
            .iter()
            .map(|w| {
                let w = w.trim_start_matches('-');
                match w.split_once('=') {
                    Some((n, v)) => Flag {
                        name: n.to_string(),
                        value: Some(v.to_string()),
                    },
                    None => Flag {
                        name: w.to_string(),
                        value: None,
                    },
                }
            })
            .collect()
    } else {
        args::check_flags(&node.flags, args::flags_of(&upper))
            .map_err(|(m, word)| Failure::new(m).at(word.split('=').next().unwrap_or("")))?
    };
    let mut stage = None;
    let kind = match upper.as_str() {
        "FROM" => {
            stage = Some(from_args(a)?);
            Kind::From
        }
        "RUN" => run(node, &flags)?,
        "CMD" => Kind::Cmd(command(a)?),
        "ENTRYPOINT" => Kind::Entrypoint(command(a)?),
        "COPY" => Kind::Copy(copy_args(node, "COPY")?),
        "ADD" => Kind::Add(copy_args(node, "ADD")?),
        "ENV" => Kind::Env(args::name_values(a, "ENV", escape)?),
        "LABEL" => Kind::Label(args::name_values(a, "LABEL", escape)?),
        "ARG" => Kind::Arg(args::arg_pairs(a, escape)?),
        "EXPOSE" => {
            let ports = args::blank_words(a);
            if ports.is_empty() {
                return Err(Failure::new("EXPOSE requires at least one argument"));
            }
            Kind::Expose(ports)
        }
        "WORKDIR" => Kind::Workdir(one_argument(a, "WORKDIR")?),
        "USER" => Kind::User(one_argument(a, "USER")?),
        "STOPSIGNAL" => Kind::StopSignal(one_argument(a, "STOPSIGNAL")?),
        "MAINTAINER" => Kind::Maintainer(one_argument(a, "MAINTAINER")?),
        "VOLUME" => Kind::Volume(volumes(a)?),
        "SHELL" => match args::json_array(a)? {
            Some(v) if !v.is_empty() => Kind::Shell(v),
            Some(_) => return Err(Failure::new("SHELL requires at least one argument")),
            None if a.is_empty() => {
                return Err(Failure::new("SHELL requires at least one argument"))
            }
            None => {
                return Err(Failure::new(
                    "SHELL requires the arguments to be in JSON form",
                ))
            }
        },
        "HEALTHCHECK" => Kind::Healthcheck(healthcheck(a, &flags)?),
        _ => Kind::Onbuild(onbuild(node, a)?),
    };
    Ok(Parsed {
        instruction: Instruction {
            line: node.logical.line,
            original: node.logical.text.trim().to_string(),
            flags,
            kind,
        },
        stage,
    })
}

/// `FROM image [AS name]`: the base and the stage name, lowercased and checked as Docker
/// does.
fn from_args(a: &str) -> Result<(String, Option<String>), Failure> {
    let words = args::blank_words(a);
    match words.as_slice() {
        [base] => Ok((base.clone(), None)),
        [base, as_, name] if as_.eq_ignore_ascii_case("as") => {
            let lower = name.to_ascii_lowercase();
            let valid = lower.starts_with(|c: char| c.is_ascii_lowercase())
                && lower
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(Failure::new(format!(
                    "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                ))
                .at(name.clone()));
            }
            Ok((base.clone(), Some(lower)))
        }
        _ => Err(Failure::new("FROM requires either one or three arguments")),
    }
}

/// The exec form when `a` is a JSON array of strings, else the shell form.
fn command(a: &str) -> Result<Command, Failure> {
    Ok(match args::json_array(a)? {
        Some(v) => Command::Exec(v),
        None => Command::Shell(a.to_string()),
    })
}

fn run(node: &Node, flags: &[Flag]) -> Result<Kind, Failure> {
    for f in flags {
        let value = f.value.as_deref().unwrap_or_default();
        match f.name.as_str() {
            "network" if !matches!(value, "default" | "none" | "host") => {
                return Err(Failure::new(format!("invalid network mode {value:?}")).at("--network"))
            }
            "mount" => mount::check_unexpanded(value).map_err(|m| Failure::new(m).at("--mount"))?,
            "security" if !matches!(value, "insecure" | "sandbox") => {
                return Err(
                    Failure::new(format!("security {value:?} is not valid")).at("--security")
                )
            }
            _ => {}
        }
    }
    let heredocs = node.heredocs.iter().map(chomped).collect();
    Ok(Kind::Run {
        command: command(&node.args)?,
        heredocs,
    })
}

/// A heredoc as instructions see it: `<<-` bodies without their leading tabs.
fn chomped(h: &Heredoc) -> Heredoc {
    let mut h = h.clone();
    if h.chomp {
        h.content = lines::chomp(&h.content);
    }
    h
}

fn copy_args(node: &Node, keyword: &str) -> Result<CopyArgs, Failure> {
    let json = args::json_array(&node.args)?;
    let heredoc_aware = json.is_none();
    let mut words = json.unwrap_or_else(|| args::blank_words(&node.args));
    if words.len() < 2 {
        return Err(Failure::new(format!(
            "{keyword} requires at least two arguments, but only one was provided. Destination could not be determined"
        )));
    }
    let dest = words.pop().unwrap_or_default();
    let marker = |w: &str| {
        if heredoc_aware {
            args::heredoc_marker(w).ok().flatten()
        } else {
            None
        }
    };
    if marker(&dest).is_some() {
        return Err(Failure::new(format!(
            "{keyword} cannot accept a heredoc as a destination"
        )));
    }
    let mut sources = Vec::new();
    let mut heredocs = Vec::new();
    for w in words {
        match marker(&w) {
            Some(m) => {
                let body = node
                    .heredocs
                    .iter()
                    .rev()
                    .find(|h| h.name == m.name)
                    .map(|h| h.content.clone())
                    .unwrap_or_default();
                heredocs.push(chomped(&Heredoc { content: body, ..m }));
            }
            None => sources.push(w),
        }
    }
    Ok(CopyArgs {
        sources,
        dest,
        heredocs,
    })
}

fn one_argument(a: &str, keyword: &str) -> Result<String, Failure> {
    if a.is_empty() {
        return Err(Failure::new(format!(
            "{keyword} requires exactly one argument"
        )));
    }
    Ok(a.to_string())
}

fn volumes(a: &str) -> Result<Vec<String>, Failure> {
    let list = args::json_array(a)?.unwrap_or_else(|| args::blank_words(a));
    if list.is_empty() {
        return Err(Failure::new("VOLUME requires at least one argument"));
    }
    list.into_iter()
        .map(|v| match v.trim() {
            "" => Err(Failure::new("VOLUME specified can not be an empty string")),
            t => Ok(t.to_string()),
        })
        .collect()
}

fn healthcheck(a: &str, flags: &[Flag]) -> Result<Health, Failure> {
    let (kind, rest) = args::split_keyword(a);
    if kind.is_empty() {
        return Err(Failure::new("HEALTHCHECK requires at least one argument"));
    }
    let kind = kind.to_ascii_uppercase();
    if kind == "NONE" {
        if !rest.is_empty() {
            return Err(Failure::new("HEALTHCHECK NONE takes no arguments"));
        }
        return Ok(Health::None);
    }
    if kind != "CMD" {
        return Err(Failure::new(format!(
            "Unknown type {kind:?} in HEALTHCHECK (try CMD)"
        )));
    }
    let cmd = command(rest)?;
    if matches!(&cmd, Command::Shell(s) if s.is_empty())
        || matches!(&cmd, Command::Exec(v) if v.is_empty())
    {
        return Err(Failure::new("Missing command after HEALTHCHECK CMD"));
    }
    for f in flags {
        let value = f.value.as_deref().unwrap_or_default();
        let spelled = format!("--{}", f.name);
        if f.name == "retries" {
            if value.is_empty() {
                continue;
            }
            let retries: i32 = value.parse().map_err(|e: std::num::ParseIntError| {
                let why = match e.kind() {
                    std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                        "value out of range"
                    }
                    _ => "invalid syntax",
                };
                Failure::new(format!("strconv.ParseInt: parsing {value:?}: {why}"))
                    .at(spelled.clone())
            })?;
            if retries < 0 {
                return Err(
                    Failure::new(format!("--retries cannot be negative ({retries})")).at(spelled),
                );
            }
        } else if !value.is_empty() {
            let nanos =
                args::go_duration_nanos(value).map_err(|m| Failure::new(m).at(spelled.clone()))?;
            if nanos != 0 && nanos < 1_000_000 {
                return Err(
                    Failure::new(format!("Interval {:?} cannot be less than 1ms", f.name))
                        .at(spelled),
                );
            }
        }
    }
    Ok(Health::Cmd(cmd))
}

/// ONBUILD's trigger text, checked as Docker does at the parent.
fn onbuild(node: &Node, a: &str) -> Result<String, Failure> {
    if a.is_empty() {
        return Err(Failure::new("ONBUILD requires at least one argument"));
    }
    let trigger = args::split_keyword(a).0.to_ascii_uppercase();
    match trigger.as_str() {
        "ONBUILD" => {
            return Err(Failure::new(
                "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
            ))
        }
        "MAINTAINER" | "FROM" => {
            return Err(Failure::new(format!(
                "{trigger} isn't allowed as an ONBUILD trigger"
            )))
        }
        _ => {}
    }
    // Docker's expression: the original line without `ONBUILD`, then each heredoc's body
    // and delimiter, so that the child parses the same thing.
    let original = node.logical.text.trim_start();
    let mut expression = original[node.keyword.len()..].trim_start().to_string();
    for h in &node.heredocs {
        expression.push('\n');
        expression.push_str(&h.content);
        expression.push_str(&h.name);
    }
    Ok(expression)
}

//! The argument syntaxes of instructions, as Docker's parser reads them (BuildKit
//! `parser/line_parsers.go`, `parser/split_command.go`, `instructions/bflag.go`). Arguments
//! keep their quotes and `$`: expansion comes later, in [`crate::expand`].

use super::{Flag, Heredoc};
use crate::expand;

/// Blanks that separate words where Docker splits on `[\t\v\f\r ]+`.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\u{b}' | '\u{c}')
}

/// The first word (the keyword) and the rest, trimmed.
pub(super) fn split_keyword(line: &str) -> (&str, &str) {
    let line = line.trim();
    match line.find(is_blank) {
        Some(i) => (&line[..i], line[i..].trim()),
        None => (line, ""),
    }
}

/// Words split on blanks, nothing else (FROM, EXPOSE, the shell form of COPY, ADD and
/// VOLUME): quotes are not special here.
pub(super) fn blank_words(s: &str) -> Vec<String> {
    s.split(is_blank)
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

/// The leading `--flag[=value]` words of `rest` (quotes removed, escapes applied) and the
/// arguments after them, trimmed. A lone `--` ends the flags and is dropped.
pub(super) fn split_flags(rest: &str, escape: char) -> (Vec<String>, &str) {
    let mut flags = Vec::new();
    let mut s = rest;
    loop {
        let t = s.trim_start();
        if !t.starts_with("--") {
            return (flags, t.trim());
        }
        let (word, after) = flag_word(t, escape);
        if word == "--" {
            return (flags, after.trim());
        }
        if !word.is_empty() {
            flags.push(word);
        }
        s = after;
    }
}

/// One flag word at the start of `s`: up to unquoted whitespace, quotes removed.
fn flag_word(s: &str, escape: char) -> (String, &str) {
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match quote {
            None if c.is_whitespace() => return (word, &s[i..]),
            None if c == '\'' || c == '"' => quote = Some(c),
            Some(q) if c == q => quote = None,
            _ if c == escape => {
                // An escape character at the end is dropped; else it keeps the next one.
                if let Some((_, n)) = chars.next() {
                    word.push(n);
                }
            }
            _ => word.push(c),
        }
    }
    (word, "")
}

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FlagKind {
    /// `--link`, `--link=true`, `--link=false`.
    Bool,
    /// `--from=x`, once.
    String,
    /// `--mount=x`, any number of times.
    Strings,
}

/// The flags each instruction accepts (BuildKit's `instructions/parse.go`).
pub(super) fn flags_of(keyword: &str) -> &'static [(&'static str, FlagKind)] {
    use FlagKind::*;
    match keyword {
        "FROM" => &[("platform", String)],
        "RUN" => &[
            ("mount", Strings),
            ("network", String),
            ("security", String),
        ],
        "COPY" => &[
            ("chown", String),
            ("from", String),
            ("chmod", String),
            ("link", Bool),
            ("exclude", Strings),
            ("parents", Bool),
        ],
        "ADD" => &[
            ("chown", String),
            ("chmod", String),
            ("link", Bool),
            ("keep-git-dir", Bool),
            ("checksum", String),
            ("unpack", Bool),
            ("exclude", Strings),
        ],
        "HEALTHCHECK" => &[
            ("interval", String),
            ("timeout", String),
            ("start-period", String),
            ("start-interval", String),
            ("retries", String),
        ],
        _ => &[],
    }
}

/// Checks flag words against what the instruction accepts; errors in Docker's words. On
/// error, also the offending word (to place the error).
pub(super) fn check_flags(
    words: &[String],
    accepted: &[(&str, FlagKind)],
) -> Result<Vec<Flag>, (String, String)> {
    let mut flags: Vec<Flag> = Vec::new();
    for w in words {
        let fail = |m: String| (m, w.clone());
        let (spelled, value) = match w.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (w.as_str(), None),
        };
        let Some(name) = spelled.strip_prefix("--") else {
            return Err(fail(format!("arg should start with -- : {w}")));
        };
        let Some(&(_, kind)) = accepted.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = accepted.iter().map(|(n, _)| *n).collect();
            let hint = suggest(name, &names, true)
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            return Err(fail(format!("unknown flag: {spelled}{hint}")));
        };
        if kind != FlagKind::Strings && flags.iter().any(|f| f.name == name) {
            return Err(fail(format!("duplicate flag specified: {spelled}")));
        }
        match (kind, value) {
            (FlagKind::Bool, Some("")) | (FlagKind::String | FlagKind::Strings, None) => {
                return Err(fail(format!("missing a value on flag: {spelled}")))
            }
            (FlagKind::Bool, Some(v))
                if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") =>
            {
                return Err(fail(format!(
                    "expecting boolean value for flag {spelled}, not: {v}"
                )))
            }
            _ => {}
        }
        flags.push(Flag {
            name: name.to_string(),
            value: value.map(String::from),
        });
    }
    Ok(flags)
}

/// A JSON array in `args`: `Ok(None)` when `args` is not one (Docker then falls back to
/// the shell form), an error when it is an array of something else than strings.
pub(super) fn json_array(args: &str) -> Result<Option<Vec<String>>, String> {
    let t = args.trim_start();
    if !t.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(t) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => {
                Err("when using JSON array syntax, arrays must be comprised of strings only".into())
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Docker's `parseWords`: words split on unquoted whitespace, quotes and escapes kept
/// (expansion removes them). An escape character at the very end is dropped.
pub(super) fn shell_words(s: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut blank_ok = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if quote.is_none() && c.is_whitespace() {
            if in_word && (blank_ok || !cur.is_empty()) {
                out.push(std::mem::take(&mut cur));
            }
            in_word = false;
            blank_ok = false;
            continue;
        }
        in_word = true;
        match quote {
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                blank_ok = true;
            }
            Some(q) if c == q => quote = None,
            _ => {}
        }
        if c == escape && quote != Some('\'') {
            let Some(n) = chars.next() else { break };
            cur.push(c);
            cur.push(n);
            continue;
        }
        cur.push(c);
    }
    if in_word && (blank_ok || !cur.is_empty()) {
        out.push(cur);
    }
    out
}

/// ENV and LABEL (Docker's `parseNameVal`): `k=v ...`, or the legacy `k v w`, one pair whose
/// value is the rest of the line, when the first word has no `=`.
pub(super) fn name_values(
    args: &str,
    keyword: &str,
    escape: char,
) -> Result<Vec<(String, String)>, String> {
    let words = shell_words(args, escape);
    let Some(first) = words.first() else {
        return Err(format!("{keyword} requires at least one argument"));
    };
    if !first.contains('=') {
        let (key, value) = split_keyword(args);
        if value.is_empty() {
            return Err(format!("{keyword} must have two arguments"));
        }
        return Ok(vec![(key.to_string(), value.to_string())]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(format!("{keyword} names can not be blank")),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            )),
        })
        .collect()
}

/// ARG: `name[=default] ...`.
pub(super) fn arg_pairs(args: &str, escape: char) -> Result<Vec<(String, Option<String>)>, String> {
    let words = shell_words(args, escape);
    if words.is_empty() {
        return Err("ARG requires at least one argument".into());
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err("ARG names can not be blank".into()),
            Some((k, v)) => Ok((k.to_string(), Some(v.to_string()))),
            None => Ok((w, None)),
        })
        .collect()
}

/// A heredoc marker word (`<<EOF`, `<<-"EOF"`, `2<<EOF`): Docker's `^(\d*)<<(-?)\s*([^<]*)$`.
/// Its body is empty: the caller reads it.
pub(super) fn heredoc_marker(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(after) = digits.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match after.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, after),
    };
    let rest = rest.trim_start();
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let (plain, raw) = expand::heredoc_delimiter_words(rest).map_err(|e| e.0)?;
    let [name] = plain.as_slice() else {
        return Ok(None);
    };
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    Ok(Some(Heredoc {
        name: name.clone(),
        content: String::new(),
        expand: raw.first().is_some_and(|r| quotes(r) == quotes(name)),
        chomp,
    }))
}

/// The heredoc markers of a line, in order: Docker lexes the whole line (keyword and flags
/// included) with quotes kept and looks at each word.
pub(super) fn heredoc_markers(line: &str) -> Result<Vec<Heredoc>, String> {
    let mut out = Vec::new();
    for word in expand::heredoc_line_words(line) {
        if let Some(h) = heredoc_marker(&word)? {
            out.push(h);
        }
    }
    Ok(out)
}

/// Go's `time.ParseDuration`, for HEALTHCHECK's durations: `1h30m`, `1.5s`, `300ms`,
/// `0`; units `ns`, `us` (`µs`), `ms`, `s`, `m`, `h`. Returns nanoseconds; errors in Go's
/// words.
pub(super) fn go_duration_nanos(s: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int, after) = rest.split_at(int_end);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let end = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(end)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(invalid());
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let scale: i128 = match unit {
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            u => return Err(format!("time: unknown unit {u:?} in duration {s:?}")),
        };
        let whole: i128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| invalid())?
        };
        let mut part = whole * scale;
        let mut divisor = 1i128;
        for d in frac.chars().take(18) {
            divisor *= 10;
            part += i128::from(d.to_digit(10).unwrap_or(0)) * scale / divisor;
        }
        total += part;
        if total > i128::from(i64::MAX) {
            return Err(invalid());
        }
        rest = after;
    }
    Ok(if negative { -total } else { total })
}

/// BuildKit's "did you mean" (`util/suggest`): the closest of `options` within an edit
/// distance under 3, the first of the closest; `None` for an exact match. Without
/// `case_sensitive`, the suggestion follows `value`'s case when it is all lower or all
/// upper.
pub(super) fn suggest(value: &str, options: &[&str], case_sensitive: bool) -> Option<String> {
    let fold = |s: &str| {
        if case_sensitive {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    let wanted = fold(value);
    let mut best: Option<&str> = None;
    let mut min = 3;
    for option in options {
        let candidate = fold(option);
        if candidate == wanted {
            return None;
        }
        let d = levenshtein(&wanted, &candidate);
        if d < min {
            min = d;
            best = Some(option);
        }
    }
    let best = best?;
    Some(if case_sensitive {
        best.to_string()
    } else if value == value.to_lowercase() {
        best.to_lowercase()
    } else if value == value.to_uppercase() {
        best.to_uppercase()
    } else {
        best.to_string()
    })
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

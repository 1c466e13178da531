//! Docker's word processing: variable expansion and quote removal, for the instructions
//! Docker expands (ADD COPY ENV EXPOSE FROM LABEL STOPSIGNAL USER VOLUME WORKDIR ONBUILD, and
//! ARG defaults), never for RUN, CMD and ENTRYPOINT text.
//!
//! Forms: `$V`, `${V}`, `${V:-word}`, `${V-word}`, `${V:+word}`, `${V+word}`, `${V:?msg}`,
//! `${V?msg}`; an escaped `\$` is a literal `$`. Inside single quotes nothing is expanded;
//! inside double quotes variables are.

use std::fmt;

/// An expansion error (`${V:?msg}` of an unset variable, a bad substitution).
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
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Vars for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Processes one word: expands variables and removes quotes and escapes.
pub fn word(raw: &str, vars: &dyn Vars, escape: char) -> Result<String, ExpandError> {
    let mut out = words_inner(raw, vars, escape, false)?;
    Ok(out.pop().unwrap_or_default())
}

/// Processes a list of words (`EXPOSE`, `VOLUME`, `COPY` sources): each expanded, then split
/// on unquoted whitespace.
pub fn words(raw: &str, vars: &dyn Vars, escape: char) -> Result<Vec<String>, ExpandError> {
    words_inner(raw, vars, escape, true)
}

fn words_inner(
    raw: &str,
    vars: &dyn Vars,
    escape: char,
    split: bool,
) -> Result<Vec<String>, ExpandError> {
    let chars: Vec<char> = raw.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut has_word = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == escape {
            if let Some(&n) = chars.get(i + 1) {
                cur.push(n);
                i += 2;
            } else {
                cur.push(c);
                i += 1;
            }
            has_word = true;
            continue;
        }
        match c {
            '\'' => {
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    cur.push(chars[i]);
                    i += 1;
                }
                i += 1;
                has_word = true;
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == escape && matches!(chars.get(i + 1), Some('"' | '$')) {
                        cur.push(chars[i + 1]);
                        i += 2;
                    } else if chars[i] == escape && chars.get(i + 1).is_some_and(|n| *n == escape) {
                        cur.push(escape);
                        i += 2;
                    } else if chars[i] == '$' {
                        i = variable(&chars, i, vars, escape, &mut cur)?;
                    } else {
                        cur.push(chars[i]);
                        i += 1;
                    }
                }
                i += 1;
                has_word = true;
            }
            '$' if split => {
                // An unquoted value is split on its whitespace, as the shell would.
                let mut value = String::new();
                i = variable(&chars, i, vars, escape, &mut value)?;
                for v in value.chars() {
                    if v.is_whitespace() {
                        if has_word {
                            out.push(std::mem::take(&mut cur));
                            has_word = false;
                        }
                    } else {
                        cur.push(v);
                        has_word = true;
                    }
                }
            }
            '$' => {
                i = variable(&chars, i, vars, escape, &mut cur)?;
                has_word = true;
            }
            c if split && c.is_whitespace() => {
                if has_word {
                    out.push(std::mem::take(&mut cur));
                    has_word = false;
                }
                i += 1;
            }
            c => {
                cur.push(c);
                has_word = true;
                i += 1;
            }
        }
    }
    if has_word || !split {
        out.push(cur);
    }
    Ok(out)
}

/// Expands the reference at `chars[i] == '$'` into `out`; returns the index after it.
fn variable(
    chars: &[char],
    i: usize,
    vars: &dyn Vars,
    escape: char,
    out: &mut String,
) -> Result<usize, ExpandError> {
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    match chars.get(i + 1) {
        Some('{') => {
            let start = i + 2;
            let mut j = start;
            while j < chars.len() && name_char(chars[j]) {
                j += 1;
            }
            let name: String = chars[start..j].iter().collect();
            if name.is_empty() {
                return Err(ExpandError("bad substitution".into()));
            }
            if chars.get(j) == Some(&'}') {
                out.push_str(&vars.get(&name).unwrap_or_default());
                return Ok(j + 1);
            }
            let colon = chars.get(j) == Some(&':');
            let op_at = if colon { j + 1 } else { j };
            let op = *chars
                .get(op_at)
                .ok_or_else(|| ExpandError("missing '}'".into()))?;
            if !matches!(op, '-' | '+' | '?') {
                return Err(ExpandError(format!(
                    "unsupported modifier ({op}) in substitution"
                )));
            }
            // The word up to the matching brace.
            let mut depth = 0;
            let mut k = op_at + 1;
            let word_start = k;
            while k < chars.len() {
                match chars[k] {
                    c if c == escape => k += 1,
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    _ => {}
                }
                k += 1;
            }
            if k >= chars.len() {
                return Err(ExpandError("missing '}'".into()));
            }
            let raw_word: String = chars[word_start..k].iter().collect();
            let value = vars.get(&name);
            let set = if colon {
                value.as_deref().is_some_and(|v| !v.is_empty())
            } else {
                value.is_some()
            };
            match op {
                '-' if set => out.push_str(value.as_deref().unwrap_or_default()),
                '-' => out.push_str(&word(&raw_word, vars, escape)?),
                '+' if set => out.push_str(&word(&raw_word, vars, escape)?),
                '+' => {}
                _ if set => out.push_str(value.as_deref().unwrap_or_default()),
                _ => {
                    let msg = word(&raw_word, vars, escape)?;
                    return Err(ExpandError(if msg.is_empty() {
                        format!("{name}: is not allowed to be unset")
                    } else {
                        format!("{name}: {msg}")
                    }));
                }
            }
            Ok(k + 1)
        }
        Some(&c) if name_char(c) && !c.is_ascii_digit() => {
            let mut j = i + 1;
            while j < chars.len() && name_char(chars[j]) {
                j += 1;
            }
            let name: String = chars[i + 1..j].iter().collect();
            out.push_str(&vars.get(&name).unwrap_or_default());
            Ok(j)
        }
        _ => {
            out.push('$');
            Ok(i + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "A" => Some("one".into()),
            "E" => Some(String::new()),
            "S" => Some("two words".into()),
            _ => None,
        }
    }

    #[test]
    fn every_form() {
        let w = |s: &str| word(s, &vars, '\\').unwrap();
        assert_eq!(w("$A"), "one");
        assert_eq!(w("${A}x"), "onex");
        assert_eq!(w("${U:-d}"), "d");
        assert_eq!(w("${E:-d}"), "d");
        assert_eq!(w("${E-d}"), "");
        assert_eq!(w("${A:+set}"), "set");
        assert_eq!(w("${U+set}"), "");
        assert_eq!(w("\\$A"), "$A");
        assert_eq!(w("'$A'"), "$A");
        assert_eq!(w("\"$A b\""), "one b");
        assert_eq!(w("a$"), "a$");
        assert_eq!(
            word("${U:?must be set}", &vars, '\\').unwrap_err().0,
            "U: must be set"
        );
        assert_eq!(
            words("$S \"x y\" z", &vars, '\\').unwrap(),
            ["two", "words", "x y", "z"]
        );
    }
}

//! A small Go `text/template` subset over JSON values, enough for the `--format` strings
//! people put in scripts: `{{.A.B}}`, `{{json .}}`, `{{index .Labels "k"}}`,
//! `{{.Label "k"}}`, pipelines (`{{.Names | upper}}`), `{{if}}/{{else}}/{{end}}`,
//! `{{range}}` (with `$i, $v :=`), `{{with}}`, variables, `{{- -}}` trimming, comments and
//! docker's extra functions (`json`, `join`, `split`, `upper`, `lower`, `title`, `pad`,
//! `truncate`, `println`).
//!
//! Values print like Go's `%v`: `true`, `[a b]`, `map[k:v]`, `<nil>` for null and
//! `<no value>` for a missing map key.

use serde_json::Value;

/// A template that failed to parse or execute; shown as `template parsing error: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateError {}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
}

#[derive(Debug, Clone)]
struct Pipeline {
    /// `$k, $v :=` (or one name).
    decl: Vec<String>,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
enum Arg {
    /// `.A.B` (empty path = `.`).
    Field(Vec<String>),
    /// `$x.A` (`$` alone is the root).
    Var(String, Vec<String>),
    Str(String),
    Num(Value),
    Bool(bool),
    Nil,
    Ident(String),
    Sub(Box<Pipeline>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Num(Value),
    Ident(String),
    Pipe,
    Open,
    Close(Vec<String>),
    Declare,
    Comma,
}

/// Sentinel for "no such key" so it prints as Go's `<no value>`.
const NO_VALUE: &str = "\u{0}<no value>";

impl Template {
    /// Parses `src`.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let pieces = split(src)?;
        let mut pos = 0;
        let (nodes, end) = parse_list(&pieces, &mut pos)?;
        if let Some(e) = end {
            return Err(TemplateError(format!("unexpected {{{{{e}}}}}")));
        }
        Ok(Template { nodes })
    }

    /// Executes against `data`.
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        let mut scope = Scope {
            root: data,
            vars: Vec::new(),
        };
        exec_list(&self.nodes, data, &mut scope, &mut out)?;
        Ok(out)
    }
}

/// Text and `{{...}}` actions, with `{{-`/`-}}` trimming applied.
#[derive(Debug)]
enum Piece {
    Text(String),
    Action(String),
}

fn split(src: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let mut inner = &rest[open + 2..];
        let trim_prev = inner.starts_with("- ") || inner.starts_with("-\t") || inner == "-";
        if trim_prev {
            text = text.trim_end();
            inner = &inner[1..];
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text.to_string()));
        }
        let close =
            find_close(inner).ok_or_else(|| TemplateError("unclosed action".to_string()))?;
        let mut action = &inner[..close];
        trim_next = false;
        if action.ends_with(" -") || action.ends_with("\t-") {
            action = &action[..action.len() - 1];
            trim_next = true;
        }
        let action = action.trim();
        if !(action.starts_with("/*") && action.ends_with("*/")) {
            pieces.push(Piece::Action(action.to_string()));
        }
        rest = &inner[close + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    if !text.is_empty() {
        pieces.push(Piece::Text(text.to_string()));
    }
    Ok(pieces)
}

/// The index of the `}}` closing an action, skipping string literals.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Parses nodes until `{{end}}`/`{{else...}}` (returned as the terminator).
fn parse_list(
    pieces: &[Piece],
    pos: &mut usize,
) -> Result<(Vec<Node>, Option<String>), TemplateError> {
    let mut nodes = Vec::new();
    while *pos < pieces.len() {
        let piece = &pieces[*pos];
        *pos += 1;
        match piece {
            Piece::Text(t) => nodes.push(Node::Text(t.clone())),
            Piece::Action(a) => {
                let (word, rest) = match a.split_once(char::is_whitespace) {
                    Some((w, r)) => (w, r.trim()),
                    None => (a.as_str(), ""),
                };
                match word {
                    "end" => return Ok((nodes, Some("end".into()))),
                    "else" => return Ok((nodes, Some(a.clone()))),
                    "if" | "with" | "range" => {
                        let node = parse_block(word, rest, pieces, pos)?;
                        nodes.push(node);
                    }
                    _ => nodes.push(Node::Action(parse_pipeline(a)?)),
                }
            }
        }
    }
    Ok((nodes, None))
}

fn parse_block(
    word: &str,
    rest: &str,
    pieces: &[Piece],
    pos: &mut usize,
) -> Result<Node, TemplateError> {
    let pipe = parse_pipeline(rest)?;
    let (body, end) = parse_list(pieces, pos)?;
    let else_body = match end.as_deref() {
        Some("end") => Vec::new(),
        Some(e) if e.starts_with("else") => {
            let after = e["else".len()..].trim();
            if let Some(cond) = after.strip_prefix("if ") {
                // `{{else if x}}` nests an if that shares our `{{end}}`.
                vec![parse_block("if", cond.trim(), pieces, pos)?]
            } else if let Some(cond) = after.strip_prefix("with ") {
                vec![parse_block("with", cond.trim(), pieces, pos)?]
            } else {
                let (else_body, end) = parse_list(pieces, pos)?;
                if end.as_deref() != Some("end") {
                    return Err(TemplateError(format!("missing {{{{end}}}} for {word}")));
                }
                else_body
            }
        }
        _ => return Err(TemplateError(format!("missing {{{{end}}}} for {word}"))),
    };
    Ok(match word {
        "if" => Node::If(pipe, body, else_body),
        "with" => Node::With(pipe, body, else_body),
        _ => Node::Range(pipe, body, else_body),
    })
}

fn tokenize(s: &str) -> Result<Vec<Tok>, TemplateError> {
    let chars: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let path = |chars: &[char], i: &mut usize| -> Vec<String> {
        let mut parts = Vec::new();
        while *i < chars.len() && chars[*i] == '.' {
            *i += 1;
            let start = *i;
            while *i < chars.len() && (chars[*i].is_alphanumeric() || chars[*i] == '_') {
                *i += 1;
            }
            if *i > start {
                parts.push(chars[start..*i].iter().collect());
            }
        }
        parts
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                toks.push(Tok::Open);
                i += 1;
            }
            ')' => {
                i += 1;
                toks.push(Tok::Close(path(&chars, &mut i)));
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                // `$x = v` assignment: treated like a declaration.
                toks.push(Tok::Declare);
                i += 1;
            }
            '.' => toks.push(Tok::Field(path(&chars, &mut i))),
            '$' => {
                i += 1;
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                toks.push(Tok::Var(name, path(&chars, &mut i)));
            }
            '"' => {
                i += 1;
                let mut out = String::new();
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                        out.push(match chars[i] {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                    } else {
                        out.push(chars[i]);
                    }
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(TemplateError("unterminated quoted string".into()));
                }
                i += 1;
                toks.push(Tok::Str(out));
            }
            '`' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '`' {
                    i += 1;
                }
                toks.push(Tok::Str(chars[start..i].iter().collect()));
                i += 1;
            }
            c if c.is_ascii_digit() || (c == '-' && i + 1 < chars.len()) => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let num = if let Ok(n) = text.parse::<i64>() {
                    Value::from(n)
                } else if let Ok(f) = text.parse::<f64>() {
                    Value::from(f)
                } else {
                    return Err(TemplateError(format!("bad number syntax: {text:?}")));
                };
                toks.push(Tok::Num(num));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                toks.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(TemplateError(format!("unexpected {other:?} in command"))),
        }
    }
    Ok(toks)
}

fn parse_pipeline(s: &str) -> Result<Pipeline, TemplateError> {
    let toks = tokenize(s)?;
    let mut pos = 0;
    let p = pipeline_from(&toks, &mut pos)?;
    if pos != toks.len() {
        return Err(TemplateError(format!("unexpected tokens in {s:?}")));
    }
    Ok(p)
}

fn pipeline_from(toks: &[Tok], pos: &mut usize) -> Result<Pipeline, TemplateError> {
    let mut decl = Vec::new();
    // `$a :=` or `$a, $b :=`
    let mut look = *pos;
    let mut names = Vec::new();
    while let Some(Tok::Var(name, p)) = toks.get(look) {
        if !p.is_empty() {
            break;
        }
        names.push(name.clone());
        look += 1;
        match toks.get(look) {
            Some(Tok::Comma) => look += 1,
            Some(Tok::Declare) => {
                decl = names.clone();
                *pos = look + 1;
                break;
            }
            _ => break,
        }
    }
    let mut cmds = Vec::new();
    let mut cmd = Vec::new();
    while *pos < toks.len() {
        let tok = &toks[*pos];
        *pos += 1;
        match tok {
            Tok::Pipe => {
                if cmd.is_empty() {
                    return Err(TemplateError("missing command before |".into()));
                }
                cmds.push(std::mem::take(&mut cmd));
            }
            Tok::Close(_) => {
                *pos -= 1;
                break;
            }
            Tok::Open => {
                let inner = pipeline_from(toks, pos)?;
                match toks.get(*pos) {
                    Some(Tok::Close(path)) => {
                        *pos += 1;
                        cmd.push(Arg::Sub(Box::new(inner), path.clone()));
                    }
                    _ => return Err(TemplateError("unclosed left paren".into())),
                }
            }
            Tok::Field(p) => cmd.push(Arg::Field(p.clone())),
            Tok::Var(n, p) => cmd.push(Arg::Var(n.clone(), p.clone())),
            Tok::Str(s) => cmd.push(Arg::Str(s.clone())),
            Tok::Num(n) => cmd.push(Arg::Num(n.clone())),
            Tok::Ident(id) => cmd.push(match id.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Nil,
                _ => Arg::Ident(id.clone()),
            }),
            Tok::Comma | Tok::Declare => {
                return Err(TemplateError("unexpected declaration".into()))
            }
        }
    }
    if !cmd.is_empty() {
        cmds.push(cmd);
    }
    if cmds.is_empty() {
        return Err(TemplateError("missing value for command".into()));
    }
    Ok(Pipeline { decl, cmds })
}

struct Scope<'a> {
    root: &'a Value,
    vars: Vec<(String, Value)>,
}

fn exec_list(
    nodes: &[Node],
    dot: &Value,
    scope: &mut Scope<'_>,
    out: &mut String,
) -> Result<(), TemplateError> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => {
                let v = eval_pipeline(p, dot, scope)?;
                if p.decl.is_empty() {
                    out.push_str(&print(&v));
                }
            }
            Node::If(p, body, else_body) => {
                let mark = scope.vars.len();
                let v = eval_pipeline(p, dot, scope)?;
                let branch = if truthy(&v) { body } else { else_body };
                exec_list(branch, dot, scope, out)?;
                scope.vars.truncate(mark);
            }
            Node::With(p, body, else_body) => {
                let mark = scope.vars.len();
                let v = eval_pipeline(p, dot, scope)?;
                if truthy(&v) {
                    exec_list(body, &v, scope, out)?;
                } else {
                    exec_list(else_body, dot, scope, out)?;
                }
                scope.vars.truncate(mark);
            }
            Node::Range(p, body, else_body) => {
                let mark = scope.vars.len();
                let plain = Pipeline {
                    decl: Vec::new(),
                    cmds: p.cmds.clone(),
                };
                let v = eval_pipeline(&plain, dot, scope)?;
                let items: Vec<(Value, Value)> = match &v {
                    Value::Array(a) => a
                        .iter()
                        .enumerate()
                        .map(|(i, x)| (Value::from(i), x.clone()))
                        .collect(),
                    Value::Object(m) => {
                        let mut keys: Vec<&String> = m.keys().collect();
                        keys.sort();
                        keys.into_iter()
                            .map(|k| (Value::from(k.clone()), m[k].clone()))
                            .collect()
                    }
                    Value::Null => Vec::new(),
                    Value::String(s) if s == NO_VALUE => Vec::new(),
                    other => {
                        return Err(TemplateError(format!(
                            "range can't iterate over {}",
                            print(other)
                        )))
                    }
                };
                if items.is_empty() {
                    exec_list(else_body, dot, scope, out)?;
                }
                for (k, item) in items {
                    let inner = scope.vars.len();
                    match p.decl.as_slice() {
                        [v] => scope.vars.push((v.clone(), item.clone())),
                        [kname, vname] => {
                            scope.vars.push((kname.clone(), k));
                            scope.vars.push((vname.clone(), item.clone()));
                        }
                        _ => {}
                    }
                    exec_list(body, &item, scope, out)?;
                    scope.vars.truncate(inner);
                }
                scope.vars.truncate(mark);
            }
        }
    }
    Ok(())
}

fn eval_pipeline(p: &Pipeline, dot: &Value, scope: &mut Scope<'_>) -> Result<Value, TemplateError> {
    let mut last: Option<Value> = None;
    for cmd in &p.cmds {
        last = Some(eval_command(cmd, dot, scope, last.take())?);
    }
    let v = last.unwrap_or(Value::Null);
    if let Some(name) = p.decl.first() {
        scope.vars.push((name.clone(), v.clone()));
    }
    Ok(v)
}

fn eval_command(
    cmd: &[Arg],
    dot: &Value,
    scope: &mut Scope<'_>,
    piped: Option<Value>,
) -> Result<Value, TemplateError> {
    let first = &cmd[0];
    if let Arg::Ident(name) = first {
        let mut args = Vec::new();
        for a in &cmd[1..] {
            args.push(eval_arg(a, dot, scope)?);
        }
        if let Some(p) = piped {
            args.push(p);
        }
        return call(name, &args);
    }
    // A field with arguments is a method call; docker's contexts have one: `.Label "k"`.
    if cmd.len() > 1 || piped.is_some() {
        if let Arg::Field(path) = first {
            let (last, parent) = path
                .split_last()
                .ok_or_else(|| TemplateError("can't give argument to non-function .".into()))?;
            let target = walk(dot, parent);
            let mut args = Vec::new();
            for a in &cmd[1..] {
                args.push(eval_arg(a, dot, scope)?);
            }
            args.extend(piped);
            return method(&target, last, &args);
        }
        return Err(TemplateError(
            "can't give argument to non-function".to_string(),
        ));
    }
    eval_arg(first, dot, scope)
}

fn eval_arg(a: &Arg, dot: &Value, scope: &mut Scope<'_>) -> Result<Value, TemplateError> {
    Ok(match a {
        Arg::Field(path) => walk(dot, path),
        Arg::Var(name, path) => {
            let base = if name.is_empty() {
                scope.root.clone()
            } else {
                scope
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| TemplateError(format!("undefined variable: ${name}")))?
            };
            walk(&base, path)
        }
        Arg::Str(s) => Value::String(s.clone()),
        Arg::Num(n) => n.clone(),
        Arg::Bool(b) => Value::Bool(*b),
        Arg::Nil => Value::Null,
        Arg::Ident(name) => call(name, &[])?,
        Arg::Sub(p, path) => {
            let v = eval_pipeline(p, dot, scope)?;
            walk(&v, path)
        }
    })
}

fn walk(v: &Value, path: &[String]) -> Value {
    let mut cur = v.clone();
    for key in path {
        cur = match &cur {
            // A hidden member stands for a Go field whose name differs from its JSON key
            // (`.Server.APIVersion` of `"ApiVersion"`).
            Value::Object(m) => match m
                .get(key)
                .or_else(|| m.get(&format!("{HIDDEN}{key}")))
                .or_else(|| m.get(&format!("{ALIAS}{key}")))
            {
                Some(x) => x.clone(),
                None => Value::String(NO_VALUE.into()),
            },
            _ => Value::String(NO_VALUE.into()),
        };
    }
    cur
}

fn method(target: &Value, name: &str, args: &[Value]) -> Result<Value, TemplateError> {
    // Methods of docker's row contexts live under a hidden key (see `json`).
    let hidden = format!("{HIDDEN}{name}");
    match target.get(&hidden).or_else(|| target.get(name)) {
        // A map-valued member indexed by the argument: `.Label "k"` on {"Label":{"k":"v"}}.
        Some(Value::Object(m)) => {
            let key = args.first().map(print).unwrap_or_default();
            Ok(m.get(&key).cloned().unwrap_or(Value::String(String::new())))
        }
        // Header contexts map every field to its title, methods included.
        Some(Value::String(s)) => Ok(Value::String(s.clone())),
        _ => Err(TemplateError(format!("can't evaluate field {name}"))),
    }
}

fn as_str(v: &Value) -> String {
    print(v)
}

fn call(name: &str, args: &[Value]) -> Result<Value, TemplateError> {
    let arg = |i: usize| -> Result<&Value, TemplateError> {
        args.get(i)
            .ok_or_else(|| TemplateError(format!("wrong number of args for {name}")))
    };
    Ok(match name {
        "json" => Value::String(json(arg(0)?)),
        "upper" => Value::String(as_str(arg(0)?).to_uppercase()),
        "lower" => Value::String(as_str(arg(0)?).to_lowercase()),
        "title" => Value::String(title(&as_str(arg(0)?))),
        "split" => Value::Array(
            as_str(arg(0)?)
                .split(as_str(arg(1)?).as_str())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        "join" => {
            let sep = as_str(arg(1)?);
            let items: Vec<String> = match arg(0)? {
                Value::Array(a) => a.iter().map(print).collect(),
                other => vec![print(other)],
            };
            Value::String(items.join(&sep))
        }
        "pad" => {
            let s = as_str(arg(0)?);
            let before = arg(1)?.as_u64().unwrap_or(0) as usize;
            let after = arg(2)?.as_u64().unwrap_or(0) as usize;
            Value::String(format!("{}{s}{}", " ".repeat(before), " ".repeat(after)))
        }
        "truncate" => {
            let s = as_str(arg(0)?);
            let n = arg(1)?.as_u64().unwrap_or(0) as usize;
            Value::String(s.chars().take(n).collect())
        }
        "index" => {
            let mut cur = arg(0)?.clone();
            for key in &args[1..] {
                cur = match (&cur, key) {
                    (Value::Object(m), k) => m.get(&print(k)).cloned().unwrap_or(Value::Null),
                    (Value::Array(a), Value::Number(n)) => {
                        let i = n.as_u64().unwrap_or(u64::MAX) as usize;
                        a.get(i)
                            .cloned()
                            .ok_or_else(|| TemplateError(format!("index out of range: {i}")))?
                    }
                    _ => Value::Null,
                };
            }
            cur
        }
        "len" => Value::from(match arg(0)? {
            Value::Array(a) => a.len(),
            Value::Object(m) => m.len(),
            Value::String(s) => s.len(),
            other => {
                return Err(TemplateError(format!("len of {}", print(other))));
            }
        }),
        "print" => Value::String(args.iter().map(print).collect::<Vec<_>>().join("")),
        "println" => Value::String(format!(
            "{}\n",
            args.iter().map(print).collect::<Vec<_>>().join(" ")
        )),
        "printf" => Value::String(printf(&as_str(arg(0)?), &args[1..])),
        "not" => Value::Bool(!truthy(arg(0)?)),
        "and" => args
            .iter()
            .find(|a| !truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "or" => args
            .iter()
            .find(|a| truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "eq" => {
            let a = arg(0)?;
            Value::Bool(args[1..].iter().any(|b| equal(a, b)))
        }
        "ne" => Value::Bool(!equal(arg(0)?, arg(1)?)),
        "lt" | "le" | "gt" | "ge" => {
            let ord = compare(arg(0)?, arg(1)?)
                .ok_or_else(|| TemplateError(format!("incompatible types for {name}")))?;
            Value::Bool(match name {
                "lt" => ord.is_lt(),
                "le" => ord.is_le(),
                "gt" => ord.is_gt(),
                _ => ord.is_ge(),
            })
        }
        _ => return Err(TemplateError(format!("function {name:?} not defined"))),
    })
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Go's `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    out
}

/// `printf` with `%s`, `%v`, `%d`, `%q` and `%%`.
fn printf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('q') => out.push_str(&go_quote(&it.next().map(print).unwrap_or_default())),
            Some(_) => out.push_str(&it.next().map(print).unwrap_or_default()),
            None => out.push('%'),
        }
    }
    out
}

/// Members whose key starts with this are methods of a row (`.Label "k"`), not fields:
/// `{{json .}}` leaves them out.
pub const HIDDEN: char = '\u{0}';

/// Members whose key starts with this stand for a Go field whose name differs from its JSON
/// key (`.Status` of `"status"` in an event): templates reach them, `{{json .}}` and `%v`
/// leave them out, and unlike [`HIDDEN`] members they leave `json`'s escaping alone.
pub const ALIAS: char = '\u{1}';

/// A [`HIDDEN`] or [`ALIAS`] member: never printed.
fn internal(key: &str) -> bool {
    key.starts_with(HIDDEN) || key.starts_with(ALIAS)
}

/// docker's `json` template function: compact JSON, no HTML escaping — except for the row
/// contexts of `ps`/`images`/`history` (objects carrying [`HIDDEN`] members), which docker
/// marshals with Go's default HTML escaping (`0.0.0.0:80-\u003e80/tcp`).
pub fn json(v: &Value) -> String {
    let plain = json_plain(v);
    match v {
        Value::Object(m) if m.keys().any(|k| k.starts_with(HIDDEN)) => go_escape_html(&plain),
        _ => plain,
    }
}

fn go_escape_html(s: &str) -> String {
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn json_plain(v: &Value) -> String {
    match v {
        Value::String(s) if s == NO_VALUE => "null".into(),
        _ => serde_json::to_string(&visible(v)).unwrap_or_default(),
    }
}

/// `v` without its [`HIDDEN`] and [`ALIAS`] members, at any depth.
fn visible(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !internal(k))
                .map(|(k, v)| (k.clone(), visible(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(visible).collect()),
        other => other.clone(),
    }
}

/// Go's truthiness: false, 0, "", nil, empty arrays and maps are false.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty() && s != NO_VALUE,
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// Go's `%v` for a JSON value.
pub fn print(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s == NO_VALUE => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(print).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().filter(|k| !internal(k)).collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", print(&m[k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's `strconv.Quote` (printable Unicode kept, the rest escaped).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v).unwrap()
    }

    fn inspect() -> Value {
        json!({
            "Id": "abc123",
            "State": {"Running": true, "Pid": 42, "Status": "running"},
            "Config": {"Image": "busybox", "Labels": {"k": "v", "a": "b"}, "Cmd": ["echo", "hi"], "Env": null},
            "NetworkSettings": {"IPAddress": "10.0.0.2"},
            "Mounts": [{"Source": "/a", "Destination": "/x"}, {"Source": "/b", "Destination": "/y"}]
        })
    }

    #[test]
    fn fields_and_nested_paths() {
        let v = inspect();
        assert_eq!(render("{{.State.Running}}", &v), "true");
        assert_eq!(render("{{.State.Pid}}", &v), "42");
        assert_eq!(render("{{.Config.Image}}", &v), "busybox");
        assert_eq!(render("{{.NetworkSettings.IPAddress}}", &v), "10.0.0.2");
        assert_eq!(render("id={{.Id}}!", &v), "id=abc123!");
        assert_eq!(render("{{.Config.Cmd}}", &v), "[echo hi]");
        assert_eq!(render("{{.Config.Labels}}", &v), "map[a:b k:v]");
        assert_eq!(render("{{.Config.Env}}", &v), "<nil>");
        assert_eq!(render("{{.Nope}}", &v), "<no value>");
    }

    #[test]
    fn functions_index_json_and_pipes() {
        let v = inspect();
        assert_eq!(render(r#"{{index .Config.Labels "k"}}"#, &v), "v");
        assert_eq!(
            render("{{json .State}}", &v),
            r#"{"Running":true,"Pid":42,"Status":"running"}"#
        );
        assert_eq!(render("{{.Config.Image | upper}}", &v), "BUSYBOX");
        assert_eq!(render(r#"{{join .Config.Cmd ","}}"#, &v), "echo,hi");
        assert_eq!(
            render(r#"{{printf "%s:%d" .Id .State.Pid}}"#, &v),
            "abc123:42"
        );
        assert_eq!(render("{{len .Mounts}}", &v), "2");
        assert_eq!(render(r#"{{(index .Mounts 1).Source}}"#, &v), "/b");
    }

    #[test]
    fn control_structures() {
        let v = inspect();
        assert_eq!(
            render("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", &v),
            "/a:/x /b:/y "
        );
        assert_eq!(
            render(
                "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
                &v
            ),
            "a=b;k=v;"
        );
        assert_eq!(
            render("{{if .State.Running}}up{{else}}down{{end}}", &v),
            "up"
        );
        assert_eq!(
            render(
                r#"{{if eq .State.Status "exited"}}x{{else if .State.Running}}r{{end}}"#,
                &v
            ),
            "r"
        );
        assert_eq!(render("{{with .State}}{{.Pid}}{{end}}", &v), "42");
        assert_eq!(
            render("{{range .Config.Env}}x{{else}}none{{end}}", &v),
            "none"
        );
        assert_eq!(
            render("{{$id := .Id}}{{range .Mounts}}{{$id}}{{end}}", &v),
            "abc123abc123"
        );
        assert_eq!(
            render("{{range .Mounts}}{{$.Id}}{{end}}", &v),
            "abc123abc123"
        );
    }

    #[test]
    fn trim_markers_and_comments() {
        let v = inspect();
        assert_eq!(render("a  {{- .Id -}}  b", &v), "aabc123b");
        assert_eq!(render("a{{/* note */}}b", &v), "ab");
    }

    #[test]
    fn label_method_indexes_the_label_map() {
        let row = json!({"Names": "web", "Label": {"com.x": "1"}});
        assert_eq!(render(r#"{{.Label "com.x"}}"#, &row), "1");
        assert_eq!(render(r#"{{.Label "missing"}}"#, &row), "");
    }

    #[test]
    fn hidden_members_answer_go_field_names_but_stay_out_of_json() {
        let mut server = serde_json::Map::new();
        server.insert("ApiVersion".into(), json!("1.44"));
        server.insert(format!("{HIDDEN}APIVersion"), json!("1.44"));
        let v = json!({"Server": Value::Object(server)});
        assert_eq!(render("{{.Server.APIVersion}}", &v), "1.44");
        assert_eq!(render("{{.Server.ApiVersion}}", &v), "1.44");
        assert_eq!(
            render("{{json .}}", &v),
            r#"{"Server":{"ApiVersion":"1.44"}}"#
        );
        assert_eq!(render("{{.Server}}", &v), "map[ApiVersion:1.44]");
    }

    #[test]
    fn json_escapes_html_only_for_row_contexts() {
        let inspect = json!({"Cmd": ["sh", "-c", "a >&2"]});
        assert_eq!(render("{{json .Cmd}}", &inspect), r#"["sh","-c","a >&2"]"#);
        let row = json!({"Ports": "0.0.0.0:80->80/tcp", "\u{0}Label": {}});
        assert_eq!(
            render("{{json .}}", &row),
            r#"{"Ports":"0.0.0.0:80-\u003e80/tcp"}"#
        );
    }

    #[test]
    fn alias_members_answer_go_field_names_without_escaping_json() {
        let v = json!({"status": "a<b", "\u{1}Status": "a<b", "\u{1}From": ""});
        assert_eq!(render("{{.Status}}|{{.From}}|{{.status}}", &v), "a<b||a<b");
        assert_eq!(render("{{json .}}", &v), r#"{"status":"a<b"}"#);
        assert_eq!(render("{{.}}", &v), "map[status:a<b]");
    }

    #[test]
    fn parse_errors_are_reported() {
        assert!(Template::parse("{{.Id").is_err());
        assert!(Template::parse("{{if .Id}}x").is_err());
        assert!(Template::parse("{{end}}").is_err());
        let t = Template::parse("{{nosuchfunc .Id}}").unwrap();
        assert!(t.render(&inspect()).is_err());
    }

    #[test]
    fn quoting_matches_go() {
        assert_eq!(go_quote("echo \"hi\"\n"), r#""echo \"hi\"\n""#);
        assert_eq!(go_quote("sh -c…"), "\"sh -c…\"");
    }
}

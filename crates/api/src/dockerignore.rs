//! `.dockerignore` as Docker reads and applies it: moby's `ignorefile.ReadAll` (comments,
//! a BOM, whitespace, cleaned patterns, a leading `/` dropped) and `patternmatcher` (Go's
//! `filepath.Match` syntax, `**`, `!` exceptions where the last matching line wins, and the
//! parent-directory results a tree walk carries down, as `go-archive`'s `TarWithOptions`).

use std::collections::HashMap;

/// Go's `filepath.ErrBadPattern`.
pub const BAD_PATTERN: &str = "syntax error in pattern";

/// The patterns of an ignore file, in order (exceptions keep their `!`).
pub fn read_patterns(content: &[u8]) -> Vec<String> {
    let content = content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content);
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(content).lines() {
        // Only a `#` in the first column starts a comment (before any trimming).
        if line.starts_with('#') {
            continue;
        }
        let mut p = line.trim();
        if p.is_empty() {
            continue;
        }
        let invert = p.starts_with('!');
        if invert {
            p = p[1..].trim();
        }
        let mut p = if p.is_empty() {
            String::new()
        } else {
            clean(p)
        };
        if p.len() > 1 && p.starts_with('/') {
            p.remove(0);
        }
        out.push(if invert { format!("!{p}") } else { p });
    }
    out
}

/// Go's `path.Clean` (berth-api's, as `cp` uses it).
pub fn clean(p: &str) -> String {
    String::from_utf8_lossy(&crate::archive::gopath::clean(p.as_bytes())).into_owned()
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Lit(char),
    /// `?`: one character but `/`.
    One,
    /// `*`: any run of characters but `/`.
    Star,
    /// `**` at the end: `.*`.
    Any,
    /// `**/` or `**` inside: `(.*/)?`.
    AnyDirs,
    /// `[...]`: ranges, negated by a leading `^` (the regexp's rule, not `!`).
    Class(bool, Vec<(char, char)>),
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Regexp(Vec<Token>),
}

/// One pattern, compiled as moby's `Pattern.compile` classifies it.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    exclusion: bool,
    kind: Kind,
}

impl Pattern {
    fn compile(text: String, exclusion: bool) -> Result<Pattern, String> {
        validate(&text)?;
        let chars: Vec<char> = text.chars().collect();
        let mut kind_is = 0u8; // 0 exact, 1 prefix, 2 suffix, 3 regexp
        let mut toks = Vec::new();
        let mut i = 0;
        let mut iteration = 0;
        while i < chars.len() {
            let ch = chars[i];
            i += 1;
            match ch {
                '*' if chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    if i == chars.len() {
                        if kind_is == 0 {
                            kind_is = 1;
                        } else {
                            toks.push(Token::Any);
                            kind_is = 3;
                        }
                    } else {
                        toks.push(Token::AnyDirs);
                        kind_is = 3;
                    }
                    if iteration == 0 {
                        kind_is = 2;
                    }
                }
                '*' => {
                    toks.push(Token::Star);
                    kind_is = 3;
                }
                '?' => {
                    toks.push(Token::One);
                    kind_is = 3;
                }
                '\\' if i < chars.len() => {
                    toks.push(Token::Lit(chars[i]));
                    i += 1;
                    kind_is = 3;
                }
                '[' => {
                    let (tok, next) = class(&chars, i);
                    toks.push(tok);
                    i = next;
                    kind_is = 3;
                }
                c => toks.push(Token::Lit(c)),
            }
            iteration += 1;
        }
        let kind = match kind_is {
            0 => Kind::Exact,
            1 => Kind::Prefix,
            2 => Kind::Suffix,
            _ => Kind::Regexp(toks),
        };
        Ok(Pattern {
            text,
            exclusion,
            kind,
        })
    }

    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix => path.starts_with(&self.text[..self.text.len() - 2]),
            Kind::Suffix => {
                let suffix = &self.text[2..];
                path.ends_with(suffix) || (suffix.starts_with('/') && path == &suffix[1..])
            }
            Kind::Regexp(toks) => {
                let s: Vec<char> = path.chars().collect();
                let mut memo = HashMap::new();
                run(toks, &s, 0, 0, &mut memo)
            }
        }
    }
}

/// Reads a class body from `chars[i..]` (validated already); returns it and the index
/// after its `]`.
fn class(chars: &[char], mut i: usize) -> (Token, usize) {
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    while i < chars.len() && (chars[i] != ']' || first) {
        first = false;
        let mut lo = chars[i];
        if lo == '\\' && i + 1 < chars.len() {
            i += 1;
            lo = chars[i];
        }
        i += 1;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
            i += 1;
            hi = chars[i];
            if hi == '\\' && i + 1 < chars.len() {
                i += 1;
                hi = chars[i];
            }
            i += 1;
        }
        ranges.push((lo, hi));
    }
    (Token::Class(negated, ranges), i + 1)
}

/// Go's `filepath.Match` syntax check: a class closed and not empty, ranges whole, no
/// trailing `\`.
fn validate(p: &str) -> Result<(), String> {
    let chars: Vec<char> = p.chars().collect();
    let bad = || Err(BAD_PATTERN.to_string());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return bad();
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut n = 0;
                loop {
                    match chars.get(i) {
                        None => return bad(),
                        Some(']') if n > 0 => break,
                        _ => {}
                    }
                    let esc = |i: &mut usize| -> Result<(), String> {
                        match chars.get(*i) {
                            None | Some('-') | Some(']') => Err(BAD_PATTERN.to_string()),
                            Some('\\') => {
                                if *i + 1 >= chars.len() {
                                    return Err(BAD_PATTERN.to_string());
                                }
                                *i += 2;
                                Ok(())
                            }
                            Some(_) => {
                                *i += 1;
                                Ok(())
                            }
                        }
                    };
                    esc(&mut i)?;
                    if chars.get(i) == Some(&'-') {
                        i += 1;
                        esc(&mut i)?;
                    }
                    n += 1;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

fn run(
    toks: &[Token],
    s: &[char],
    ti: usize,
    si: usize,
    memo: &mut HashMap<(usize, usize), bool>,
) -> bool {
    if let Some(v) = memo.get(&(ti, si)) {
        return *v;
    }
    let c = s.get(si).copied();
    let r = match toks.get(ti) {
        None => si == s.len(),
        Some(Token::Lit(l)) => c == Some(*l) && run(toks, s, ti + 1, si + 1, memo),
        Some(Token::One) => c.is_some_and(|c| c != '/') && run(toks, s, ti + 1, si + 1, memo),
        Some(Token::Class(neg, ranges)) => {
            c.is_some_and(|c| ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *neg)
                && run(toks, s, ti + 1, si + 1, memo)
        }
        Some(Token::Star) => {
            run(toks, s, ti + 1, si, memo)
                || (c.is_some_and(|c| c != '/') && run(toks, s, ti, si + 1, memo))
        }
        // The regexp's `.` never matches a newline.
        Some(Token::Any) => {
            run(toks, s, ti + 1, si, memo)
                || (c.is_some_and(|c| c != '\n') && run(toks, s, ti, si + 1, memo))
        }
        Some(Token::AnyDirs) => {
            run(toks, s, ti + 1, si, memo)
                || s[si..]
                    .iter()
                    .take_while(|c| **c != '\n')
                    .enumerate()
                    .any(|(k, c)| *c == '/' && run(toks, s, ti + 1, si + k + 1, memo))
        }
    };
    memo.insert((ti, si), r);
    r
}

/// The per-pattern results for a directory, handed to its entries
/// (`patternmatcher.MatchInfo`).
#[derive(Debug, Clone, Default)]
pub struct ParentMatches(Vec<bool>);

/// The exclude patterns of one build.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl Matcher {
    /// moby's `patternmatcher.New`: trimmed, empty lines dropped, cleaned, `!` exceptions.
    pub fn new(patterns: &[String]) -> Result<Matcher, String> {
        let mut m = Matcher::default();
        for p in patterns {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let p = clean(p);
            let (text, exclusion) = match p.strip_prefix('!') {
                Some("") => return Err("illegal exclusion pattern: \"!\"".into()),
                Some(rest) => (rest.to_string(), true),
                None => (p, false),
            };
            m.exclusions |= exclusion;
            m.patterns.push(Pattern::compile(text, exclusion)?);
        }
        Ok(m)
    }

    /// Whether any pattern is an exception.
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// Whether an excluded directory must still be walked: an exception names a path below
    /// it (moby compares the exception's text with the directory as a prefix).
    pub fn exception_below(&self, dir: &str) -> bool {
        let dir_slash = format!("{dir}/");
        self.patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| format!("{}/", p.text).starts_with(&dir_slash))
    }

    /// `MatchesUsingParentResults`: whether `path` is excluded, given its directory's
    /// results (`None` at the top, where each parent directory is tried instead).
    pub fn matches(&self, path: &str, parent: Option<&ParentMatches>) -> (bool, ParentMatches) {
        let mut matched = false;
        let mut info = vec![false; self.patterns.len()];
        for (i, p) in self.patterns.iter().enumerate() {
            let mut m = parent.is_some_and(|pm| pm.0.get(i).copied().unwrap_or(false));
            if !m {
                if p.exclusion != matched {
                    continue;
                }
                m = p.matches(path);
                if !m && parent.is_none() {
                    m = parents(path).any(|dir| p.matches(dir));
                }
            }
            info[i] = m;
            if m {
                matched = !p.exclusion;
            }
        }
        (matched, ParentMatches(info))
    }

    /// moby's deprecated `Matches` (one parent level as deep as the pattern), which the docker
    /// CLI's `TrimBuildFilesFromExcludes` still uses for the Dockerfile and `.dockerignore`.
    pub fn matches_legacy(&self, path: &str) -> bool {
        let path = clean(path);
        if path == "." {
            return false;
        }
        let parent: Vec<&str> = match path.rfind('/') {
            Some(i) => path[..i].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.matches(&path);
            let depth = p.text.split('/').count();
            if !m && !parent.is_empty() && depth <= parent.len() {
                m = p.matches(&parent[..depth].join("/"));
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }
}

/// `a`, `a/b` for `a/b/c`.
fn parents(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(patterns: &[&str], path: &str) -> bool {
        let pats: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        Matcher::new(&pats).unwrap().matches(path, None).0
    }

    /// Cases of moby/patternmatcher's `TestMatches` (pattern, path, Docker's answer).
    #[test]
    fn patterns_match_as_dockers_patternmatcher() {
        let cases: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**", "file/", true),
            ("**/", "file", true),
            ("**/", "file/", true),
            ("**", "/", true),
            ("**/", "/", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**", "dir/file/", true),
            ("**/", "dir/file/", true),
            ("**/**", "dir/file", true),
            ("**/**", "dir/file/", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/file/", true),
            ("dir/**", "dir/dir2/file", true),
            ("dir/**", "dir/dir2/file/", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/*", "dir/dir2/file/", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file/", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**/file", "dir/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("a\\\\", "a\\", true),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            (
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            (
                "dist/*.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
        ];
        // As `MatchesOrParentMatches`, which the corpus is run through.
        for (pattern, path, want) in cases {
            assert_eq!(
                excluded(&[pattern], path),
                *want,
                "pattern {pattern:?} path {path:?}"
            );
        }
    }

    #[test]
    fn exceptions_and_parent_directories_follow_docker() {
        // The last matching line wins.
        assert!(!excluded(&["*.md", "!README.md"], "README.md"));
        assert!(excluded(&["*.md", "!README.md", "README*"], "README.md"));
        assert!(excluded(&["*.md"], "a.md"));
        // A directory's exclusion covers what is below it.
        assert!(excluded(&["docs"], "docs/a/b.txt"));
        assert!(!excluded(&["docs", "!docs/keep.txt"], "docs/keep.txt"));
        assert!(excluded(&["docs", "!docs/keep.txt"], "docs/other.txt"));
        // `*` does not cross `/`; a pattern is anchored at the context's root.
        assert!(!excluded(&["*.txt"], "sub/a.txt"));
        assert!(excluded(&["*/a.txt"], "sub/a.txt"));
        assert!(excluded(&["**/a.txt"], "x/y/a.txt"));
        let m = Matcher::new(&["docs".into(), "!docs/keep.txt".into()]).unwrap();
        assert!(m.exception_below("docs"));
        assert!(!m.exception_below("other"));
        assert!(Matcher::new(&["!".into()]).is_err());
        assert_eq!(Matcher::new(&["a[".into()]).unwrap_err(), BAD_PATTERN);
        assert_eq!(Matcher::new(&["a\\".into()]).unwrap_err(), BAD_PATTERN);
        assert_eq!(Matcher::new(&["[]".into()]).unwrap_err(), BAD_PATTERN);
    }

    #[test]
    fn walking_with_parent_results_agrees_with_a_fresh_match() {
        let pats: Vec<String> = ["a", "!a/b", "a/b/c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let m = Matcher::new(&pats).unwrap();
        let (a, info_a) = m.matches("a", None);
        assert!(a);
        let (ab, info_ab) = m.matches("a/b", Some(&info_a));
        assert!(!ab);
        let (abc, _) = m.matches("a/b/c", Some(&info_ab));
        assert!(abc);
        let (abd, _) = m.matches("a/b/d", Some(&info_ab));
        assert!(!abd);
    }

    #[test]
    fn ignore_files_read_as_dockers() {
        let file = b"\xEF\xBB\xBF# comment\n  # not a comment\n\n/abs/path\n./rel\n ! keep \nsub/../x/\n!/y\n";
        assert_eq!(
            read_patterns(file),
            ["# not a comment", "abs/path", "rel", "!keep", "x", "!y"]
        );
    }

    #[test]
    fn the_legacy_match_looks_one_parent_deep() {
        let m = Matcher::new(&["sub".into()]).unwrap();
        assert!(m.matches_legacy("sub/Dockerfile"));
        let m = Matcher::new(&["Dockerfile".into()]).unwrap();
        assert!(m.matches_legacy("Dockerfile"));
        assert!(!m.matches_legacy("sub/Dockerfile"));
    }
}

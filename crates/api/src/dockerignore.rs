//! `.dockerignore` as Docker reads and applies it: moby's `ignorefile.ReadAll` (comments,
//! a BOM, whitespace, cleaned patterns, a leading `/` dropped) and `patternmatcher` (Go's
//! `filepath.Match` syntax, `**`, `!` exceptions where the last matching line wins, and the
//! parent-directory results a tree walk carries down, as `go-archive`'s `TarWithOptions`).

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
                run(toks, &s)
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

/// Whether `toks` match all of `s`: the regexp's automaton, run over `s` once with the set
/// of token positions it can be at (time: tokens × characters; no recursion, so neither a
/// long path nor a pattern of a million `**/` overflows a thread's stack, as the recursive
/// matcher did).
fn run(toks: &[Token], s: &[char]) -> bool {
    let n = toks.len();
    // `at[t]`: at token t, nothing of it consumed; `inside[t]`: inside the run of an
    // `AnyDirs` at t (it may end only after a `/`).
    let mut at = vec![false; n + 1];
    let mut inside = vec![false; n];
    at[0] = true;
    let close = |at: &mut Vec<bool>| {
        // What matches nothing lets the next token start at the same place.
        for t in 0..n {
            if at[t] && matches!(toks[t], Token::Star | Token::Any | Token::AnyDirs) {
                at[t + 1] = true;
            }
        }
    };
    close(&mut at);
    for &c in s {
        let mut next_at = vec![false; n + 1];
        let mut next_inside = vec![false; n];
        for t in 0..n {
            if at[t] {
                match &toks[t] {
                    Token::Lit(l) => next_at[t + 1] |= c == *l,
                    Token::One => next_at[t + 1] |= c != '/',
                    Token::Class(neg, ranges) => {
                        next_at[t + 1] |= ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *neg
                    }
                    Token::Star => next_at[t] |= c != '/',
                    // The regexp's `.` never matches a newline.
                    Token::Any => next_at[t] |= c != '\n',
                    Token::AnyDirs => {}
                }
            }
            if matches!(toks[t], Token::AnyDirs) && (at[t] || inside[t]) && c != '\n' {
                next_inside[t] = true;
                if c == '/' {
                    next_at[t + 1] = true;
                }
            }
        }
        close(&mut next_at);
        if !next_at.iter().any(|a| *a) && !next_inside.iter().any(|a| *a) {
            return false;
        }
        at = next_at;
        inside = next_inside;
    }
    at[n]
}

#[cfg(test)]
#[test]
fn long_patterns_and_paths_do_not_overflow_the_stack() {
    let pattern = format!("{}zz", "**/".repeat(300_000));
    let m = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let p = Pattern::compile(pattern, false).unwrap();
            let deep = "a/".repeat(50) + "zz";
            (p.matches("a/b/zz"), p.matches("a/b/zy"), p.matches(&deep))
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert_eq!(m, (true, false, true));
    let long = "a/".repeat(200_000) + "zz";
    let p = Pattern::compile("**/zz".to_string(), false).unwrap();
    assert!(p.matches(&long));
    // A Matcher takes no pattern longer than a path may be.
    let e = Matcher::new(&["**/".repeat(2000)]).unwrap_err();
    assert!(e.contains("longer than the 4096"), "{e}");
    let p = Pattern::compile("a*b".to_string(), false).unwrap();
    assert!(!p.matches(&"a".repeat(1 << 20)));
    assert!(p.matches(&format!("{}b", "a".repeat(1 << 20))));
}

/// The per-pattern results for a directory, handed to its entries
/// (`patternmatcher.MatchInfo`).
#[derive(Debug, Clone, Default)]
pub struct ParentMatches(Vec<bool>);

/// The longest pattern a [`Matcher`] takes: Linux's PATH_MAX.
const MAX_PATTERN: usize = 4096;

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
            // Matching costs the pattern's length times the path's: a pattern longer than
            // any path (PATH_MAX) names nothing and only costs.
            if text.len() > MAX_PATTERN {
                return Err(format!(
                    "a pattern of {} bytes is longer than the {MAX_PATTERN} a path may be",
                    text.len()
                ));
            }
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

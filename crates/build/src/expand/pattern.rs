//! The shell patterns of `${V#pat}`, `${V%pat}` and `${V/pat/r}`: `*` any run, `?` one
//! character, `\` makes `*`, `?` and `\` literal (`\}` and `\/` are the literal `}` and `/`
//! that would otherwise end the pattern). Everything else is literal. BuildKit turns these
//! into regular expressions; matching them directly gives the same results.

/// One piece of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    /// `*`
    Any,
    /// `?`
    One,
    Literal(char),
}

/// A parsed pattern.
#[derive(Debug)]
pub(super) struct Glob(Vec<Piece>);

/// The most steps the pattern operations of one expansion may take: matching every prefix
/// or every substring of a long value is quadratic or worse, and a Dockerfile is not to hold
/// one of berthd's threads for hours (BuildKit's regular expressions are linear).
const MAX_STEPS: u64 = 100_000_000;

/// What the pattern operations of one expansion have cost so far, in steps.
#[derive(Debug, Default)]
pub(super) struct Work(u64);

impl Work {
    fn spend(&mut self, steps: usize) -> Result<(), String> {
        self.0 += steps as u64;
        if self.0 > MAX_STEPS {
            return Err(format!(
                "a pattern substitution takes more than {MAX_STEPS} steps: the value is too \
                 long for it"
            ));
        }
        Ok(())
    }
}

impl Glob {
    /// Parses `pattern`; an escape before anything but `*`, `?`, `\`, `}` or `/` is an error
    /// in Docker's words (`invalid escape '\a'`).
    pub(super) fn parse(pattern: &str) -> Result<Glob, String> {
        let mut pieces = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            pieces.push(match c {
                '*' => Piece::Any,
                '?' => Piece::One,
                '\\' => match chars.next() {
                    Some(n @ ('*' | '?' | '\\' | '}' | '/')) => Piece::Literal(n),
                    Some(n) => return Err(format!("invalid escape '\\{n}'")),
                    None => return Err("invalid escape '\\' at the end".into()),
                },
                c => Piece::Literal(c),
            });
        }
        Ok(Glob(pieces))
    }

    /// Whether the pattern matches all of `text`.
    fn matches(&self, text: &[char], work: &mut Work) -> Result<bool, String> {
        work.spend(1)?;
        // Classic wildcard matching with one backtrack point for the last `*`.
        let p = &self.0;
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < text.len() {
            work.spend(1)?;
            match p.get(pi) {
                Some(Piece::Any) => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(Piece::One) => {
                    pi += 1;
                    ti += 1;
                }
                Some(Piece::Literal(c)) if *c == text[ti] => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return Ok(false),
                },
            }
        }
        Ok(p[pi..].iter().all(|x| *x == Piece::Any))
    }

    /// `${V#pat}` (shortest) and `${V##pat}` (`greedy`, longest): removes the matching
    /// prefix, or nothing when none matches.
    pub(super) fn trim_prefix(
        &self,
        value: &str,
        greedy: bool,
        work: &mut Work,
    ) -> Result<String, String> {
        let chars: Vec<char> = value.chars().collect();
        let mut ends: Vec<usize> = (0..=chars.len()).collect();
        if greedy {
            ends.reverse();
        }
        for end in ends {
            if self.matches(&chars[..end], work)? {
                return Ok(chars[end..].iter().collect());
            }
        }
        Ok(value.to_string())
    }

    /// `${V%pat}` (shortest) and `${V%%pat}` (`greedy`, longest): removes the matching
    /// suffix.
    pub(super) fn trim_suffix(
        &self,
        value: &str,
        greedy: bool,
        work: &mut Work,
    ) -> Result<String, String> {
        let chars: Vec<char> = value.chars().collect();
        let mut starts: Vec<usize> = (0..=chars.len()).collect();
        if !greedy {
            starts.reverse();
        }
        for start in starts {
            if self.matches(&chars[start..], work)? {
                return Ok(chars[..start].iter().collect());
            }
        }
        Ok(value.to_string())
    }

    /// `${V/pat/r}` (first match) and `${V//pat/r}` (`all`): the leftmost, longest match
    /// replaced, as BuildKit's greedy regular expression does.
    pub(super) fn replace(
        &self,
        value: &str,
        replacement: &str,
        all: bool,
        work: &mut Work,
    ) -> Result<String, String> {
        let chars: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut at = 0;
        let mut replaced = false;
        while at <= chars.len() {
            if replaced && !all {
                break;
            }
            let mut found = None;
            'search: for start in at..=chars.len() {
                for end in (start..=chars.len()).rev() {
                    if self.matches(&chars[start..end], work)? {
                        found = Some((start, end));
                        break 'search;
                    }
                }
            }
            let Some((start, end)) = found else { break };
            out.extend(&chars[at..start]);
            out.push_str(replacement);
            replaced = true;
            if end == start {
                // An empty match: keep one character and look again after it.
                if let Some(c) = chars.get(end) {
                    out.push(*c);
                }
                at = end + 1;
            } else {
                at = end;
            }
        }
        if at < chars.len() {
            out.extend(&chars[at..]);
        }
        Ok(out)
    }
}

//! COPY's and ADD's `--chmod`: an octal mode (`0755`), or, as BuildKit's stable Dockerfile
//! syntax since 1.14, a symbolic one as chmod(1) writes it (`u=rwx,go=rx`, `+x`, `a-w`,
//! `g=u`), applied to each copied file's own mode with a umask of 0 (BSD `setmode`'s rules,
//! which BuildKit follows).

/// A parsed `--chmod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// Every file and directory gets this mode (permission, setuid, setgid, sticky bits).
    Octal(u32),
    /// Clauses applied in order to each entry's mode.
    Symbolic(Vec<Clause>),
}

/// One `who op perms` action of a symbolic mode (`u+x`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// The bits `who` covers (`u`: setuid and `rwx` of the owner; none written: all).
    who: u32,
    /// Whether `who` was written (`+x` alone applies to all classes, `s`/`t` included).
    who_given: bool,
    op: char,
    perm: Perm,
}

/// What a clause sets: bits (`rwxst`, `X` kept apart), or another class's bits (`g=u`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Perm {
    Bits { bits: u32, cond_x: bool },
    Copy(char),
}

const SETUID: u32 = 0o4000;
const SETGID: u32 = 0o2000;
const STICKY: u32 = 0o1000;
const USER: u32 = 0o700;
const GROUP: u32 = 0o070;
const OTHER: u32 = 0o007;
const ALL_X: u32 = 0o111;

impl Chmod {
    /// Parses `--chmod`'s value; the error is the message the build fails with.
    pub fn parse(s: &str) -> Result<Chmod, String> {
        let bad_octal = || {
            format!(
                "invalid chmod parameter: '{s}'. it should be octal string and between 0 and 07777"
            )
        };
        if s.starts_with(|c: char| c.is_ascii_digit()) {
            return u32::from_str_radix(s, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .map(Chmod::Octal)
                .ok_or_else(bad_octal);
        }
        parse_symbolic(s)
            .map(Chmod::Symbolic)
            .ok_or_else(|| format!("invalid chmod parameter: '{s}': invalid syntax"))
    }

    /// The mode an entry of mode `mode` (permission bits and setuid/setgid/sticky) gets.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Chmod::Octal(m) => *m,
            Chmod::Symbolic(clauses) => {
                let original = mode & 0o7777;
                let mut m = original;
                for c in clauses {
                    m = c.apply(m, original, is_dir);
                }
                m
            }
        }
    }
}

impl Clause {
    fn apply(&self, mode: u32, original: u32, is_dir: bool) -> u32 {
        let who = self.who;
        let add = match &self.perm {
            Perm::Bits { bits, cond_x } => {
                let mut b = *bits;
                if *cond_x && (self.op == '-' || is_dir || original & ALL_X != 0) {
                    b |= ALL_X;
                }
                b & who
            }
            Perm::Copy(from) => {
                let class = match from {
                    'u' => (mode & USER) >> 6,
                    'g' => (mode & GROUP) >> 3,
                    _ => mode & OTHER,
                };
                (class << 6 | class << 3 | class) & who & 0o777
            }
        };
        match self.op {
            '+' => mode | add,
            '-' => mode & !add,
            _ => {
                // `=`: the classes named lose what they had (their setuid/setgid too), then
                // get what is written; with no class named, every standard bit.
                let clear = if self.who_given {
                    who & !STICKY
                } else {
                    0o6777
                };
                (mode & !clear) | add
            }
        }
    }
}

/// `[ugoa]*([-+=]([rwxXst]*|[ugo]))+` clauses separated by commas; `None` when malformed.
fn parse_symbolic(s: &str) -> Option<Vec<Clause>> {
    let mut out = Vec::new();
    for clause in s.split(',') {
        let chars: Vec<char> = clause.chars().collect();
        let mut i = 0;
        let mut who = 0;
        while let Some(c) = chars.get(i) {
            who |= match c {
                'u' => SETUID | USER,
                'g' => SETGID | GROUP,
                'o' => OTHER,
                'a' => SETUID | SETGID | USER | GROUP | OTHER,
                _ => break,
            };
            i += 1;
        }
        let who_given = who != 0;
        // No class written: all of them (the umask is 0).
        let who_bits = if who_given {
            who
        } else {
            SETUID | SETGID | USER | GROUP | OTHER
        };
        let mut any = false;
        while let Some(&op) = chars.get(i) {
            if !matches!(op, '+' | '-' | '=') {
                return None;
            }
            i += 1;
            any = true;
            if let Some(&c @ ('u' | 'g' | 'o')) = chars.get(i) {
                i += 1;
                out.push(Clause {
                    who: who_bits,
                    who_given,
                    op,
                    perm: Perm::Copy(c),
                });
                continue;
            }
            let mut bits = 0;
            let mut cond_x = false;
            let mut who = who_bits;
            while let Some(c) = chars.get(i) {
                match c {
                    'r' => bits |= 0o444,
                    'w' => bits |= 0o222,
                    'x' => bits |= ALL_X,
                    'X' => cond_x = true,
                    // Setuid and setgid only for the owner and group classes (`o+s` is
                    // nothing); the sticky bit with no class or one beyond `o`.
                    's' if !who_given || who & !OTHER != 0 => bits |= SETUID | SETGID,
                    's' => {}
                    't' if !who_given || who & !OTHER != 0 => {
                        who |= STICKY;
                        bits |= STICKY;
                    }
                    't' => {}
                    _ => break,
                }
                i += 1;
            }
            out.push(Clause {
                who,
                who_given,
                op,
                perm: Perm::Bits { bits, cond_x },
            });
        }
        if !any || i != chars.len() {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str, mode: u32, dir: bool) -> u32 {
        Chmod::parse(s).unwrap().apply(mode, dir)
    }

    #[test]
    fn octal_modes_and_their_bounds() {
        assert_eq!(Chmod::parse("0755"), Ok(Chmod::Octal(0o755)));
        assert_eq!(Chmod::parse("4755"), Ok(Chmod::Octal(0o4755)));
        let e = Chmod::parse("0758").unwrap_err();
        assert!(e.contains("it should be octal string"), "{e}");
        assert!(Chmod::parse("17777").is_err());
    }

    #[test]
    fn symbolic_modes_apply_to_each_files_own_mode() {
        assert_eq!(sym("u=rwx,go=rx", 0o600, false), 0o755);
        assert_eq!(sym("+x", 0o644, false), 0o755);
        assert_eq!(sym("a-w", 0o666, false), 0o444);
        assert_eq!(sym("go-rwx", 0o755, true), 0o700);
        assert_eq!(sym("g=u", 0o640, false), 0o660);
        assert_eq!(sym("o=", 0o777, false), 0o770);
        assert_eq!(sym("u+s", 0o755, false), 0o4755);
        assert_eq!(sym("o+s", 0o755, false), 0o755);
        assert_eq!(sym("+t", 0o777, true), 0o1777);
        assert_eq!(sym("u=rw,g=r,o=", 0o777, false), 0o640);
        assert_eq!(sym("u+r-w", 0o200, false), 0o400);
        // `X`: execute only for directories and files executable by someone already.
        assert_eq!(sym("a+X", 0o644, false), 0o644);
        assert_eq!(sym("a+X", 0o744, false), 0o755);
        assert_eq!(sym("a+X", 0o600, true), 0o711);
    }

    #[test]
    fn malformed_symbolic_modes_are_refused() {
        for bad in ["", "u", "u+q", "x+r", "u+r,", "rwx", "+r u"] {
            let e = Chmod::parse(bad).unwrap_err();
            assert!(e.contains("invalid chmod parameter"), "{bad}: {e}");
        }
    }
}

//! Expectations are Docker's: each case was checked against BuildKit's lexer rules
//! (`shell/lex.go`) and, where noted, what `docker build` prints.

use super::*;

fn vars(name: &str) -> Option<String> {
    match name {
        "A" => Some("one".into()),
        "E" => Some(String::new()),
        "S" => Some("two words".into()),
        "P" => Some("/usr/local/bin/tool.tar.gz".into()),
        "F" => Some("foo-bar-foo".into()),
        _ => None,
    }
}

fn w(s: &str) -> String {
    word(s, &vars, '\\').unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn ws(s: &str) -> Vec<String> {
    words(s, &vars, '\\').unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn fail(s: &str) -> String {
    word(s, &vars, '\\').unwrap_err().0
}

#[test]
fn plain_and_braced_references() {
    assert_eq!(w("$A"), "one");
    assert_eq!(w("${A}x"), "onex");
    assert_eq!(w("$Ax"), "");
    assert_eq!(w("$A-x"), "one-x");
    assert_eq!(w("pre$A/post"), "preone/post");
    assert_eq!(w("$U"), "");
    assert_eq!(w("a$"), "a$");
    assert_eq!(w("$ a"), "$ a");
    assert_eq!(w("$/"), "$/");
}

#[test]
fn special_parameters_are_unset_names() {
    // Docker looks `$1`, `$@` and `$$` up like any name; none is ever set in a build.
    assert_eq!(w("a$1b"), "ab");
    assert_eq!(w("$12x"), "x");
    assert_eq!(w("$@"), "");
    assert_eq!(w("$$"), "");
    assert_eq!(referenced("$1 $$ $@", '\\'), ["1", "$", "@"]);
}

#[test]
fn default_and_alternative_forms() {
    assert_eq!(w("${U:-d}"), "d");
    assert_eq!(w("${E:-d}"), "d");
    assert_eq!(w("${A:-d}"), "one");
    assert_eq!(w("${U-d}"), "d");
    assert_eq!(w("${E-d}"), "");
    assert_eq!(w("${A:+set}"), "set");
    assert_eq!(w("${E:+set}"), "");
    assert_eq!(w("${E+set}"), "set");
    assert_eq!(w("${U+set}"), "");
    assert_eq!(w("${U:-$A}"), "one");
    assert_eq!(w("${U:-${E:-deep}}"), "deep");
    assert_eq!(w("${U:-\"a b\"}"), "a b");
    assert_eq!(w("${U:-'$A'}"), "$A");
    assert_eq!(w("${U:-a\\}b}"), "a}b");
    assert_eq!(w("${U:-}"), "");
}

#[test]
fn required_form_errors_in_dockers_words() {
    assert_eq!(w("${A:?boom}"), "one");
    assert_eq!(w("${E?boom}"), "");
    assert_eq!(
        fail("${U:?must be set}"),
        "failed to process \"${U:?must be set}\": U: must be set"
    );
    assert_eq!(
        fail("${U?}"),
        "failed to process \"${U?}\": U: is not allowed to be unset"
    );
    assert_eq!(
        fail("${E:?}"),
        "failed to process \"${E:?}\": E: is not allowed to be empty"
    );
}

#[test]
fn pattern_forms() {
    assert_eq!(w("${P#*/}"), "usr/local/bin/tool.tar.gz");
    assert_eq!(w("${P##*/}"), "tool.tar.gz");
    assert_eq!(w("${P%.*}"), "/usr/local/bin/tool.tar");
    assert_eq!(w("${P%%.*}"), "/usr/local/bin/tool");
    assert_eq!(w("${P#nomatch}"), "/usr/local/bin/tool.tar.gz");
    assert_eq!(w("${P%/???l.tar.gz}"), "/usr/local/bin");
    assert_eq!(w("${F/foo/baz}"), "baz-bar-foo");
    assert_eq!(w("${F//foo/baz}"), "baz-bar-baz");
    assert_eq!(w("${F//o/}"), "f-bar-f");
    assert_eq!(w("${F/b*r/X}"), "foo-X-foo");
    assert_eq!(w("${F/\\*/X}"), "foo-bar-foo");
    assert_eq!(w("${U#x}"), "");
    assert_eq!(w("${F//-/\\/}"), "foo\\/bar\\/foo");
}

#[test]
fn modifier_errors() {
    assert_eq!(
        fail("${A:#x}"),
        "failed to process \"${A:#x}\": unsupported modifier (:#) in substitution"
    );
    assert_eq!(
        fail("${A!x}"),
        "failed to process \"${A!x}\": unsupported modifier (!) in substitution"
    );
    assert_eq!(
        fail("${}"),
        "failed to process \"${}\": syntax error: bad substitution"
    );
    assert_eq!(
        fail("${:-x}"),
        "failed to process \"${:-x}\": syntax error: bad substitution"
    );
    assert_eq!(
        fail("${A"),
        "failed to process \"${A\": syntax error: missing '}'"
    );
    assert_eq!(
        fail("${A:-x"),
        "failed to process \"${A:-x\": syntax error: missing '}'"
    );
    assert_eq!(
        fail("${F//o}"),
        "failed to process \"${F//o}\": syntax error: missing '/' in ${}"
    );
    assert_eq!(
        fail("${F#\\a}"),
        "failed to process \"${F#\\\\a}\": invalid pattern (\\a) in substitution: invalid escape '\\a'"
    );
}

#[test]
fn quotes_and_escapes() {
    assert_eq!(w("\\$A"), "$A");
    assert_eq!(w("'$A'"), "$A");
    assert_eq!(w("'a\\b'"), "a\\b");
    assert_eq!(w("\"$A b\""), "one b");
    assert_eq!(w("\"a\\\"b\""), "a\"b");
    assert_eq!(w("\"\\$A\""), "$A");
    assert_eq!(w("\"a\\\\b\""), "a\\b");
    // Inside double quotes the escape only escapes `"`, `$` and itself.
    assert_eq!(w("\"a\\nb\""), "a\\nb");
    assert_eq!(w("a\\ b"), "a b");
    assert_eq!(w("a\\"), "a");
    assert_eq!(w("it's\\ fine'"), "its\\ fine");
    assert_eq!(w("x\"\"y"), "xy");
    assert_eq!(w("  spaced  out "), "  spaced  out ");
}

#[test]
fn unterminated_quotes_are_errors() {
    assert_eq!(
        fail("\"abc"),
        "failed to process \"\\\"abc\": unexpected end of statement while looking for matching double-quote"
    );
    assert_eq!(
        fail("'abc"),
        "failed to process \"'abc\": unexpected end of statement while looking for matching single-quote"
    );
}

#[test]
fn backtick_escape() {
    let w = |s: &str| word(s, &vars, '`').unwrap();
    assert_eq!(w("`$A"), "$A");
    assert_eq!(w("C:\\path\\$A"), "C:\\path\\one");
    assert_eq!(w("a` b"), "a b");
    assert_eq!(w("\"`\"q`\"\""), "\"q\"");
    assert_eq!(words("a` b c", &vars, '`').unwrap(), ["a b", "c"]);
}

#[test]
fn words_split_unquoted_values_only() {
    assert_eq!(ws("$S \"x y\" z"), ["two", "words", "x y", "z"]);
    assert_eq!(ws("\"$S\""), ["two words"]);
    assert_eq!(ws("pre$S"), ["pretwo", "words"]);
    assert_eq!(ws("  a   b  "), ["a", "b"]);
    assert_eq!(ws("a\\ b"), ["a b"]);
    assert_eq!(ws("'a b'c"), ["a bc"]);
    // Docker drops an empty word: `""` alone gives none.
    assert_eq!(ws("\"\" a"), ["a"]);
    assert_eq!(ws("$U"), Vec::<String>::new());
    assert_eq!(ws("80/tcp ${PORT:-8080}"), ["80/tcp", "8080"]);
}

#[test]
fn referenced_names_in_order_without_duplicates() {
    assert_eq!(
        referenced("$A ${B:-$C} \"$A\" '$D' \\$E ${F:?} ${G#x} ${H/a/$I}", '\\'),
        ["A", "B", "C", "F", "G", "H", "I"]
    );
    assert_eq!(referenced("`$A $B", '`'), ["B"]);
    assert_eq!(referenced("no refs", '\\'), Vec::<String>::new());
    assert_eq!(referenced("$A ${B", '\\'), ["A", "B"]);
}

#[test]
fn heredoc_markers_stay_one_word() {
    assert_eq!(
        heredoc_line_words("RUN cat << EOF > \"$OUT\""),
        ["RUN", "cat", "<< EOF", ">", "\"$OUT\""]
    );
    assert_eq!(
        heredoc_delimiter_words("\"EOF\"").unwrap(),
        (vec!["EOF".to_string()], vec!["\"EOF\"".to_string()])
    );
}

/// A COPY heredoc's body (BuildKit's `SkipProcessQuotes` lexer): quotes are text, lines and
/// whitespace kept, the backslash removed before what it escapes.
#[test]
fn heredoc_bodies_expand_variables_but_keep_quotes() {
    let body = |s: &str| heredoc_body(s, &vars).unwrap_or_else(|e| panic!("{s}: {e}"));
    assert_eq!(body("$A \"$S\" '${A}'\n"), "one \"two words\" 'one'\n");
    assert_eq!(body("  x\n\ty $U\n"), "  x\n\ty \n");
    assert_eq!(body("\\$A costs \\\\ 5\n"), "$A costs \\ 5\n");
    assert_eq!(body("${A:-d} ${U:-d}\n"), "one d\n");
    assert!(heredoc_body("${U:?unset}\n", &vars).is_err());
}

/// A Dockerfile cannot crash berthd by nesting substitutions deeper than a thread's stack
/// (this thread's is 2 MiB, as a tokio worker's): refused, in Docker's words' form.
#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let n = 200_000;
    let deep = format!("{}x{}", "${U:-".repeat(n), "}".repeat(n));
    let e = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            (
                word(&deep, &vars, '\\').unwrap_err().0,
                referenced(&deep, '\\').len(),
            )
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert!(e.0.contains("nested more than 100 deep"), "{}", e.0);
    assert!(e.0.len() < 400, "the word is shown by its start: {}", e.0);
    assert_eq!(e.1, 1);
    // What Dockerfiles nest still expands.
    assert_eq!(w("${U:-${U:-${U:-${A}}}}"), "one");
}

/// Substitutions are bounded: in one word (a line that repeats a big value), in a build
/// (lines that double a variable), and a pattern replacement that repeats a value is
/// charged by what it makes.
#[test]
fn substitutions_are_bounded_per_word_and_per_build() {
    let big = "x".repeat(1 << 20);
    let v = |n: &str| (n == "BIG").then(|| big.clone());
    let line = "$BIG".repeat(40);
    let e = word(&line, &v, '\\').unwrap_err().0;
    assert!(e.contains("more than the 32 MiB"), "{e}");
    assert!(e.contains("in one word"), "{e}");
    // Doubling across lines: each word is small, the build's budget runs out.
    let budget = Budget::new(8 << 20);
    let mut value = "x".repeat(1024);
    let mut failed = None;
    for _ in 0..40 {
        let current = value.clone();
        let vars = Charged {
            get: |n: &str| (n == "A").then(|| current.clone()),
            budget: &budget,
        };
        match word("$A$A", &vars, '\\') {
            Ok(v) => value = v,
            Err(e) => {
                failed = Some(e.0);
                break;
            }
        }
    }
    let e = failed.expect("the budget runs out");
    assert!(e.contains("more than the 8 MiB"), "{e}");
    assert!(e.contains("in a build"), "{e}");
    assert!(value.len() <= 8 << 20);
    // ${B//?/$BIG}: every character of B becomes a mebibyte.
    let b = "y".repeat(100);
    let v = |n: &str| match n {
        "BIG" => Some(big.clone()),
        "B" => Some(b.clone()),
        _ => None,
    };
    let e = word("${B//?/$BIG}", &v, '\\').unwrap_err().0;
    assert!(e.contains("more than the 32 MiB"), "{e}");
}

/// A pattern operation on a long value stops at its step bound instead of holding a thread
/// for hours (matching every substring is cubic here).
#[test]
fn pattern_operations_have_a_step_bound() {
    let long = "a".repeat(1 << 16);
    let v = |n: &str| (n == "L").then(|| long.clone());
    let start = std::time::Instant::now();
    let e = word("${L/*b*/x}", &v, '\\').unwrap_err().0;
    assert!(e.contains("steps"), "{e}");
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
    // Short values are unaffected.
    assert_eq!(w("${F//foo/x}"), "x-bar-x");
    assert_eq!(w("${P##*/}"), "tool.tar.gz");
}

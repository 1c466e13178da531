//! The parser against Docker's behaviour. The files under `testdata/` are written for these
//! tests in the shapes real Dockerfiles have; the expectations quote what Docker's parser
//! (BuildKit `frontend/dockerfile/{parser,instructions}`) does with the same input.

use super::*;

fn ok(text: &str) -> Dockerfile {
    parse("Dockerfile", text).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> String {
    parse("Dockerfile", text).unwrap_err().to_string()
}

/// The instructions of the last stage.
fn last(df: &Dockerfile) -> &[Instruction] {
    &df.stages.last().expect("a stage").instructions
}

fn shell(s: &str) -> Command {
    Command::Shell(s.into())
}

fn exec(v: &[&str]) -> Command {
    Command::Exec(v.iter().map(|s| s.to_string()).collect())
}

fn heredoc(name: &str, content: &str, expand: bool, chomp: bool) -> Heredoc {
    Heredoc {
        name: name.into(),
        content: content.into(),
        expand,
        chomp,
    }
}

// ---- the corpus ----------------------------------------------------------------------

#[test]
fn go_multistage_with_cache_mounts_and_global_args() {
    let df = ok(include_str!("testdata/go-multistage.Dockerfile"));
    assert_eq!(
        df.directives.syntax.as_deref(),
        Some("docker/dockerfile:1.7")
    );
    assert_eq!(df.directives.check.as_deref(), Some("skip=StageNameCasing"));
    assert_eq!(df.global_args.len(), 2);
    assert_eq!(
        df.global_args[0].kind,
        Kind::Arg(vec![("GO_VERSION".into(), Some("1.22".into()))])
    );
    let build = &df.stages[0];
    assert_eq!(build.base, "golang:${GO_VERSION}-alpine");
    assert_eq!(build.name.as_deref(), Some("build"));
    assert_eq!(build.from.flag("platform"), Some("$BUILDPLATFORM"));
    assert_eq!(build.from.line, 7);
    let download = &build.instructions[1];
    assert_eq!(download.line, 9);
    assert_eq!(
        download.flags_named("mount").collect::<Vec<_>>(),
        [
            "type=cache,target=/go/pkg/mod",
            "type=bind,source=go.sum,target=go.sum",
            "type=bind,source=go.mod,target=go.mod"
        ]
    );
    assert_eq!(
        download.kind,
        Kind::Run {
            command: shell("go mod download -x"),
            heredocs: vec![]
        }
    );
    assert_eq!(
        build.instructions[2].kind,
        Kind::Arg(vec![("TARGETOS".into(), None), ("TARGETARCH".into(), None)])
    );
    assert_eq!(build.instructions[3].line, 14);
    let fin = &df.stages[1];
    assert_eq!(fin.from.line, 18);
    assert_eq!(fin.instructions[0].flag("network"), Some("none"));
    assert_eq!(
        fin.instructions[0].kind,
        Kind::Run {
            command: shell(
                "apk --no-cache add ca-certificates tzdata  && adduser -D -H -u 10001 appuser"
            ),
            heredocs: vec![]
        }
    );
    let copy = &fin.instructions[2];
    assert_eq!(copy.flag("from"), Some("build"));
    assert_eq!(copy.flag("chown"), Some("10001:10001"));
    assert_eq!(copy.flag("chmod"), Some("0755"));
    assert_eq!(
        copy.kind,
        Kind::Copy(CopyArgs {
            sources: vec!["/bin/server".into()],
            dest: "/bin/".into(),
            heredocs: vec![]
        })
    );
    assert_eq!(
        fin.instructions[3].kind,
        Kind::Expose(vec!["8080/tcp".into(), "9090".into()])
    );
    let health = &fin.instructions[4];
    assert_eq!(health.line, 24);
    assert_eq!(health.flag("start-interval"), Some("1s"));
    assert_eq!(health.flag("retries"), Some("3"));
    assert_eq!(
        health.kind,
        Kind::Healthcheck(Health::Cmd(exec(&["/bin/server", "-healthcheck"])))
    );
    assert_eq!(
        fin.instructions[5].kind,
        Kind::Entrypoint(exec(&["/bin/server"]))
    );
    assert!(df.warnings.is_empty());
}

#[test]
fn python_apt_continuations_comments_and_legacy_env() {
    let df = ok(include_str!("testdata/python-apt.Dockerfile"));
    let i = last(&df);
    assert_eq!(
        i[0].kind,
        Kind::Env(vec![("LANG".into(), "C.UTF-8".into())])
    );
    assert_eq!(
        i[1].kind,
        Kind::Env(vec![
            ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
            ("PYTHONUNBUFFERED".into(), "1".into()),
            ("PIP_NO_CACHE_DIR".into(), "off".into()),
        ])
    );
    // The comment line inside the continuation is dropped; continuation lines keep their
    // leading tabs, as in Docker.
    assert_eq!(i[2].line, 8);
    assert_eq!(
        i[2].kind,
        Kind::Run {
            command: shell(
                "set -eux; \tapt-get update; \tapt-get install -y --no-install-recommends \t\tbuild-essential \t\tlibpq-dev \t; \trm -rf /var/lib/apt/lists/*"
            ),
            heredocs: vec![]
        }
    );
    assert_eq!(i[3].line, 17);
    assert_eq!(
        i[5].flag("mount"),
        Some("type=cache,target=/root/.cache/pip")
    );
    assert_eq!(
        i[7].kind,
        Kind::Label(vec![
            (
                "org.opencontainers.image.title".into(),
                "\"demo app\"".into()
            ),
            (
                "org.opencontainers.image.description".into(),
                "\"a \\\"quoted\\\" word\"".into()
            ),
            ("version".into(), "1.0".into()),
        ])
    );
    assert_eq!(
        i[8].kind,
        Kind::Volume(vec!["/data".into(), "/logs".into()])
    );
    assert_eq!(i[9].kind, Kind::StopSignal("SIGINT".into()));
    assert_eq!(
        i[10].kind,
        Kind::Cmd(shell("python -m app --port \"${PORT:-8000}\""))
    );
    assert_eq!(i[10].line, 25);
}

#[test]
fn node_heredocs_and_line_numbers_after_them() {
    let df = ok(include_str!("testdata/node-heredoc.Dockerfile"));
    assert_eq!(df.stages[0].name.as_deref(), Some("deps"));
    let i = last(&df);
    assert_eq!(i[2].flag("from"), Some("deps"));
    let npmrc = &i[3];
    assert_eq!(npmrc.line, 11);
    assert!(npmrc.flag_bool("link"));
    assert_eq!(
        npmrc.kind,
        Kind::Copy(CopyArgs {
            sources: vec![],
            dest: "/app/.npmrc".into(),
            heredocs: vec![heredoc(
                "EOF",
                "registry=https://registry.npmjs.org/\n",
                true,
                false
            )]
        })
    );
    let two = &i[4];
    assert_eq!(two.line, 14);
    assert_eq!(
        two.kind,
        Kind::Copy(CopyArgs {
            sources: vec![],
            dest: "/etc/".into(),
            heredocs: vec![
                heredoc("CONF", "port=${PORT}\n", false, true),
                heredoc("APP", "console.log(\"hi from $HOSTNAME\")\n", true, false),
            ]
        })
    );
    let script = &i[5];
    assert_eq!(script.line, 19);
    assert_eq!(
        script.kind.run_script(),
        Some(&heredoc(
            "EOF",
            "set -e\necho \"building in $NODE_ENV\"\n",
            true,
            false
        ))
    );
    let stdin = &i[6];
    assert_eq!(stdin.line, 23);
    assert_eq!(
        stdin.kind,
        Kind::Run {
            command: shell("python3 <<'PY' > /out.txt"),
            heredocs: vec![heredoc("PY", "print(\"stdin\")\n", false, false)]
        }
    );
    assert_eq!(stdin.kind.run_script(), None);
    let both = &i[7];
    assert_eq!(both.line, 26);
    match &both.kind {
        Kind::Run { heredocs, .. } => assert_eq!(
            heredocs,
            &[
                heredoc("A", "a body\n", true, false),
                heredoc("B", "b body\n", true, true)
            ]
        ),
        k => panic!("{k:?}"),
    }
    let onbuild = &i[8];
    assert_eq!(onbuild.line, 31);
    assert_eq!(
        onbuild.kind,
        Kind::Onbuild("RUN <<EOT\necho trigger\nEOT".into())
    );
    let trigger = parse_trigger("ONBUILD", "RUN <<EOT\necho trigger\nEOT").unwrap();
    assert_eq!(
        trigger[0].kind.run_script(),
        Some(&heredoc("EOT", "echo trigger\n", true, false))
    );
    assert_eq!(i[9].line, 34);
    assert_eq!(i[10].line, 35);
    assert_eq!(i[10].kind, Kind::Cmd(exec(&["node", "server.js"])));
}

#[test]
fn windows_backtick_escape() {
    let df = ok(include_str!("testdata/windows-backtick.Dockerfile"));
    assert_eq!(df.directives.escape, '`');
    let i = last(&df);
    assert_eq!(
        i[0].kind,
        Kind::Shell(vec![
            "powershell".into(),
            "-Command".into(),
            "$ErrorActionPreference = 'Stop';".into()
        ])
    );
    assert_eq!(
        i[1].kind,
        Kind::Env(vec![
            ("GOPATH".into(), "C:\\go".into()),
            (
                "PATH".into(),
                "\"C:\\go\\bin;C:\\Program Files\\Git\\cmd\"".into()
            )
        ])
    );
    assert_eq!(
        i[2].kind,
        Kind::Run {
            command: shell("Write-Host 'one';     Write-Host 'two'"),
            heredocs: vec![]
        }
    );
    assert_eq!(i[2].line, 7);
    assert_eq!(
        i[3].kind,
        Kind::Copy(CopyArgs {
            sources: vec!["C:\\src\\app.exe".into()],
            dest: "C:\\app\\".into(),
            heredocs: vec![]
        })
    );
    assert_eq!(i[4].kind, Kind::Workdir("C:\\app".into()));
    // With the backtick as escape, a trailing backslash continues nothing.
    assert_eq!(
        i[5].kind,
        Kind::Run {
            command: shell("echo line1 \\"),
            heredocs: vec![]
        }
    );
    assert_eq!(i[6].line, 12);
    // ENV values expand with the same escape character.
    let Kind::Env(env) = &i[1].kind else {
        unreachable!()
    };
    let unset = |_: &str| None;
    assert_eq!(
        crate::expand::word(&env[1].1, &unset, '`').unwrap(),
        "C:\\go\\bin;C:\\Program Files\\Git\\cmd"
    );
}

// ---- parser directives ----------------------------------------------------------------

#[test]
fn directives_are_case_insensitive_and_spaced() {
    let df = ok("#  ESCAPE = `\n# Syntax=docker/dockerfile:1 \nFROM a\nRUN x `\n  y\n");
    assert_eq!(df.directives.escape, '`');
    assert_eq!(df.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(last(&df)[0].original, "RUN x   y");
}

#[test]
fn directives_only_in_the_leading_comment_block() {
    // After another comment, a blank line or an instruction, it is a comment.
    for text in [
        "# hello\n# escape=`\nFROM a\nRUN x \\\n y\n",
        "\n# escape=`\nFROM a\nRUN x \\\n y\n",
        "FROM a\n# escape=`\nRUN x \\\n y\n",
        "# unknown=1\n# escape=`\nFROM a\nRUN x \\\n y\n",
    ] {
        let df = ok(text);
        assert_eq!(df.directives.escape, '\\', "{text:?}");
        assert_eq!(last(&df)[0].original, "RUN x  y");
    }
}

#[test]
fn directive_errors() {
    assert_eq!(
        err("# escape=`\n# escape=\\\nFROM a\n"),
        "Dockerfile:2:1: only one escape parser directive can be used"
    );
    assert_eq!(
        err("# syntax=a\n# SYNTAX=b\nFROM a\n"),
        "Dockerfile:2:1: only one syntax parser directive can be used"
    );
    assert_eq!(
        err("# escape=x\nFROM a\n"),
        "Dockerfile:1:1: invalid escape token 'x' does not match ` or \\"
    );
}

// ---- logical lines --------------------------------------------------------------------

#[test]
fn continuations_trailing_blanks_comments_and_empty_lines() {
    let df = ok("FROM a\nRUN a \\  \n  # comment\n\n   \n  b \\\t\n  c\nRUN d\n");
    let i = last(&df);
    assert_eq!(i[0].original, "RUN a   b   c");
    assert_eq!(i[0].line, 2);
    assert_eq!(i[1].line, 8);
    assert_eq!(
        df.warnings,
        ["Empty continuation line found in: RUN a   b   c"]
    );
}

#[test]
fn continuation_at_end_of_file_and_escaped_escape() {
    let df = ok("FROM a\nRUN echo \\\\\nRUN echo \\");
    let i = last(&df);
    assert_eq!(i[0].original, "RUN echo \\\\");
    assert_eq!(i[1].original, "RUN echo");
    let df = ok("FROM a\r\nRUN a \\\r\n  b\r\nUSER x\r\n");
    assert_eq!(last(&df)[0].original, "RUN a   b");
    assert_eq!(last(&df)[1].kind, Kind::User("x".into()));
}

#[test]
fn keywords_are_case_insensitive_and_leading_blanks_ignored() {
    let df = ok("\u{feff}from a as B\n   run echo\n\tCmd [\"x\"]\nworkDIR /w\n");
    assert_eq!(df.stages[0].name.as_deref(), Some("b"));
    let i = last(&df);
    assert_eq!(i[0].keyword(), "RUN");
    assert_eq!(i[0].original, "run echo");
    assert_eq!(i[1].kind, Kind::Cmd(exec(&["x"])));
    assert_eq!(i[2].kind, Kind::Workdir("/w".into()));
}

// ---- heredocs -------------------------------------------------------------------------

#[test]
fn heredoc_forms() {
    let df = ok(concat!(
        "FROM a\n",
        "RUN <<'EOF' bash\n$not_expanded\nEOF\n",
        "RUN <<E\"O\"F\nx\nEOF\n",
        "RUN 3<<X cat /dev/fd/3\nx\nX\n",
        "RUN << SPACED\ns\nSPACED\n",
        "RUN <<-T\n\t\tx\n\ty\n\t\tT\n",
        "RUN <<A <<B \\\n  && cat\na\nA\nb\nB\n",
        "USER after\n",
    ));
    let i = last(&df);
    let docs = |n: usize| match &i[n].kind {
        Kind::Run { heredocs, .. } => heredocs.clone(),
        k => panic!("{k:?}"),
    };
    assert_eq!(docs(0), [heredoc("EOF", "$not_expanded\n", false, false)]);
    assert_eq!(i[0].kind.run_script(), None);
    assert_eq!(docs(1), [heredoc("EOF", "x\n", false, false)]);
    assert_eq!(docs(2), [heredoc("X", "x\n", true, false)]);
    assert_eq!(docs(3), [heredoc("SPACED", "s\n", true, false)]);
    assert_eq!(docs(4), [heredoc("T", "x\ny\n", true, true)]);
    assert_eq!(
        docs(5),
        [
            heredoc("A", "a\n", true, false),
            heredoc("B", "b\n", true, false)
        ]
    );
    assert_eq!(i[5].line, 18);
    assert_eq!(i[6].line, 24);
}

#[test]
fn heredocs_only_for_run_copy_add_in_shell_form() {
    let df = ok("FROM a\nRUN [\"cat\", \"<<EOF\"]\nENV A=<<EOF\nRUN echo '<<EOF'\nUSER x\n");
    let i = last(&df);
    assert_eq!(
        i[0].kind,
        Kind::Run {
            command: exec(&["cat", "<<EOF"]),
            heredocs: vec![]
        }
    );
    assert_eq!(i[1].kind, Kind::Env(vec![("A".into(), "<<EOF".into())]));
    assert_eq!(i[3].kind, Kind::User("x".into()));
    let df = ok("FROM a\nADD <<EOF https://x/y /dst/\nbody\nEOF\n");
    assert_eq!(
        last(&df)[0].kind,
        Kind::Add(CopyArgs {
            sources: vec!["https://x/y".into()],
            dest: "/dst/".into(),
            heredocs: vec![heredoc("EOF", "body\n", true, false)]
        })
    );
}

#[test]
fn heredoc_errors() {
    assert_eq!(
        err("FROM a\nRUN <<EOF\nnever closed\n"),
        "Dockerfile:2:1: RUN: unterminated heredoc"
    );
    assert_eq!(
        err("FROM a\nCOPY a <<EOF\nx\nEOF\n"),
        "Dockerfile:2:1: COPY: COPY cannot accept a heredoc as a destination"
    );
}

// ---- flags ----------------------------------------------------------------------------

#[test]
fn flags_values_quotes_and_repeats() {
    let df = ok(concat!(
        "FROM a\n",
        "COPY --link --parents=false --exclude=*.md --exclude=\"a b\" x y\n",
        "ADD --checksum=sha256:abc --keep-git-dir=true --unpack https://x /y\n",
        "RUN --security=insecure --mount=type=secret,id=k -- --not-a-flag\n",
        "COPY -- --odd /dst\n",
    ));
    let i = last(&df);
    assert!(i[0].flag_bool("link"));
    assert!(!i[0].flag_bool("parents"));
    assert_eq!(
        i[0].flags_named("exclude").collect::<Vec<_>>(),
        ["*.md", "a b"]
    );
    assert_eq!(i[1].flag("checksum"), Some("sha256:abc"));
    assert!(i[1].flag_bool("keep-git-dir"));
    assert_eq!(i[2].flag("security"), Some("insecure"));
    assert_eq!(
        i[2].kind,
        Kind::Run {
            command: shell("--not-a-flag"),
            heredocs: vec![]
        }
    );
    match &i[3].kind {
        Kind::Copy(c) => assert_eq!(c.sources, ["--odd"]),
        k => panic!("{k:?}"),
    }
}

#[test]
fn flag_errors_in_dockers_words_with_their_column() {
    assert_eq!(
        err("FROM a\nCOPY --chwon=1 a b\n"),
        "Dockerfile:2:6: COPY: unknown flag: --chwon (did you mean chown?)"
    );
    assert_eq!(
        err("FROM a\nENV --x=1 A=b\n"),
        "Dockerfile:2:5: ENV: unknown flag: --x"
    );
    assert_eq!(
        err("FROM a\nCOPY --checksum=x a b\n"),
        "Dockerfile:2:6: COPY: unknown flag: --checksum"
    );
    assert_eq!(
        err("FROM a\n  COPY --from=a --from=b a b\n"),
        "Dockerfile:2:17: COPY: duplicate flag specified: --from"
    );
    assert_eq!(
        err("FROM a\nCOPY --from a b\n"),
        "Dockerfile:2:6: COPY: missing a value on flag: --from"
    );
    assert_eq!(
        err("FROM a\nCOPY --link= a b\n"),
        "Dockerfile:2:6: COPY: missing a value on flag: --link"
    );
    assert_eq!(
        err("FROM a\nCOPY --link=yes a b\n"),
        "Dockerfile:2:6: COPY: expecting boolean value for flag --link, not: yes"
    );
    assert_eq!(
        err("FROM a\nRUN --mount a\n"),
        "Dockerfile:2:5: RUN: missing a value on flag: --mount"
    );
    assert_eq!(
        err("FROM a\nRUN --network=bridge a\n"),
        "Dockerfile:2:5: RUN: invalid network mode \"bridge\""
    );
    assert_eq!(
        err("FROM a\nRUN --mount=from=$X,target=/x a\n"),
        "Dockerfile:2:5: RUN: 'from' doesn't support variable expansion, define alias stage instead"
    );
    assert_eq!(
        err("FROM a\nRUN --security=x a\n"),
        "Dockerfile:2:5: RUN: security \"x\" is not valid"
    );
    assert_eq!(
        err("FROM --platform a\n"),
        "Dockerfile:1:6: FROM: missing a value on flag: --platform"
    );
    // On a continuation line the column falls back to the instruction's.
    assert_eq!(
        err("FROM a\nCOPY \\\n  --bad=1 a b\n"),
        "Dockerfile:2:1: COPY: unknown flag: --bad"
    );
}

// ---- exec form ------------------------------------------------------------------------

#[test]
fn exec_form_and_the_fallback_to_shell_form() {
    let df = ok(concat!(
        "FROM a\n",
        "CMD [\"a\", \"b c\"]\n",
        "CMD [\"unterminated\"\n",
        "CMD ['single']\n",
        "ENTRYPOINT []\n",
        "CMD\n",
        "RUN [ \"sh\" , \"-c\" , \"echo \\\"$X\\\"\" ]\n",
    ));
    let i = last(&df);
    assert_eq!(i[0].kind, Kind::Cmd(exec(&["a", "b c"])));
    assert_eq!(i[1].kind, Kind::Cmd(shell("[\"unterminated\"")));
    assert_eq!(i[2].kind, Kind::Cmd(shell("['single']")));
    assert_eq!(i[3].kind, Kind::Entrypoint(Command::Exec(vec![])));
    assert_eq!(i[4].kind, Kind::Cmd(shell("")));
    assert_eq!(
        i[5].kind,
        Kind::Run {
            command: exec(&["sh", "-c", "echo \"$X\""]),
            heredocs: vec![]
        }
    );
}

#[test]
fn json_errors_and_shell_requires_json() {
    assert_eq!(
        err("FROM a\nCMD [\"a\", 1]\n"),
        "Dockerfile:2:1: CMD: when using JSON array syntax, arrays must be comprised of strings only"
    );
    assert_eq!(
        err("FROM a\nSHELL /bin/bash -c\n"),
        "Dockerfile:2:1: SHELL: SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(
        err("FROM a\nSHELL []\n"),
        "Dockerfile:2:1: SHELL: SHELL requires at least one argument"
    );
    assert_eq!(
        err("FROM a\nVOLUME [\"/a\", \" \"]\n"),
        "Dockerfile:2:1: VOLUME: VOLUME specified can not be an empty string"
    );
}

// ---- ENV, LABEL, ARG ------------------------------------------------------------------

#[test]
fn name_value_pairs() {
    let df = ok(concat!(
        "FROM a\n",
        "ENV C=three\\ words D='single $q' E=\"x\"y F=\n",
        "ENV KEY value with  spaces\n",
        "LABEL \"com.example.quoted\"=yes a.b=\"c d\"\n",
        "ARG ONE TWO=2 THREE=\"x y\"\n",
        "ARG EMPTY=\n",
    ));
    let i = last(&df);
    assert_eq!(
        i[0].kind,
        Kind::Env(vec![
            ("C".into(), "three\\ words".into()),
            ("D".into(), "'single $q'".into()),
            ("E".into(), "\"x\"y".into()),
            ("F".into(), "".into()),
        ])
    );
    assert_eq!(
        i[1].kind,
        Kind::Env(vec![("KEY".into(), "value with  spaces".into())])
    );
    assert_eq!(
        i[2].kind,
        Kind::Label(vec![
            ("\"com.example.quoted\"".into(), "yes".into()),
            ("a.b".into(), "\"c d\"".into())
        ])
    );
    assert_eq!(
        i[3].kind,
        Kind::Arg(vec![
            ("ONE".into(), None),
            ("TWO".into(), Some("2".into())),
            ("THREE".into(), Some("\"x y\"".into()))
        ])
    );
    assert_eq!(
        i[4].kind,
        Kind::Arg(vec![("EMPTY".into(), Some("".into()))])
    );
    // Expansion turns them into values.
    let Kind::Env(env) = &i[0].kind else {
        unreachable!()
    };
    let unset = |_: &str| None;
    let values: Vec<String> = env
        .iter()
        .map(|(_, v)| crate::expand::word(v, &unset, '\\').unwrap())
        .collect();
    assert_eq!(values, ["three words", "single $q", "xy", ""]);
}

#[test]
fn name_value_errors() {
    assert_eq!(
        err("FROM a\nENV A=1 B\n"),
        "Dockerfile:2:1: ENV: Syntax error - can't find = in \"B\". Must be of the form: name=value"
    );
    assert_eq!(
        err("FROM a\nENV ONLYKEY\n"),
        "Dockerfile:2:1: ENV: ENV must have two arguments"
    );
    assert_eq!(
        err("FROM a\nLABEL\n"),
        "Dockerfile:2:1: LABEL: LABEL requires at least one argument"
    );
    assert_eq!(
        err("FROM a\nENV =x\n"),
        "Dockerfile:2:1: ENV: ENV names can not be blank"
    );
    assert_eq!(
        err("FROM a\nARG =x\n"),
        "Dockerfile:2:1: ARG: ARG names can not be blank"
    );
    assert_eq!(
        err("ARG\nFROM a\n"),
        "Dockerfile:1:1: ARG: ARG requires at least one argument"
    );
}

// ---- FROM and stages ------------------------------------------------------------------

#[test]
fn from_forms_and_errors() {
    let df = ok("ARG B=x\nFROM $B\nFROM --platform=linux/arm64 scratch As Out_1.x\nFROM 0\n");
    assert_eq!(df.global_args.len(), 1);
    assert_eq!(df.stages[0].base, "$B");
    assert_eq!(df.stages[1].name.as_deref(), Some("out_1.x"));
    assert_eq!(df.stages[1].from.flag("platform"), Some("linux/arm64"));
    assert_eq!(df.stages[2].base, "0");
    assert_eq!(
        err("FROM a AS 1st\n"),
        "Dockerfile:1:11: FROM: invalid name for build stage: \"1st\", name can't start with a number or contain symbols"
    );
    assert_eq!(
        err("FROM a AS\n"),
        "Dockerfile:1:1: FROM: FROM requires either one or three arguments"
    );
    assert_eq!(
        err("FROM a b c\n"),
        "Dockerfile:1:1: FROM: FROM requires either one or three arguments"
    );
    assert_eq!(
        err("# only a comment\nRUN x\nFROM a\n"),
        "Dockerfile:2:1: RUN: no build stage in current context"
    );
    assert_eq!(
        err("ARG A\n"),
        "Dockerfile:1:1: dockerfile contains no stages to build"
    );
    assert_eq!(
        err("# nothing\n\n"),
        "Dockerfile:2:1: file with no instructions"
    );
}

// ---- ONBUILD, HEALTHCHECK and the rest -------------------------------------------------

#[test]
fn onbuild_triggers() {
    let df = ok("FROM a\nONBUILD   run  --mount=type=cache,target=/c make\nonbuild COPY . /src\n");
    let i = last(&df);
    assert_eq!(
        i[0].kind,
        Kind::Onbuild("run  --mount=type=cache,target=/c make".into())
    );
    assert_eq!(i[1].kind, Kind::Onbuild("COPY . /src".into()));
    let t = parse_trigger("Dockerfile", "run  --mount=type=cache,target=/c make").unwrap();
    assert_eq!(t[0].flag("mount"), Some("type=cache,target=/c"));
    assert_eq!(
        err("FROM a\nONBUILD ONBUILD RUN x\n"),
        "Dockerfile:2:1: ONBUILD: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(
        err("FROM a\nONBUILD from b\n"),
        "Dockerfile:2:1: ONBUILD: FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        err("FROM a\nONBUILD MAINTAINER me\n"),
        "Dockerfile:2:1: ONBUILD: MAINTAINER isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        err("FROM a\nONBUILD\n"),
        "Dockerfile:2:1: ONBUILD: ONBUILD requires at least one argument"
    );
    assert_eq!(
        parse_trigger("t", "FROM x").unwrap_err().to_string(),
        "t:1:1: FROM: FROM isn't allowed as an ONBUILD trigger"
    );
}

#[test]
fn healthcheck_forms() {
    let df = ok(concat!(
        "FROM a\n",
        "HEALTHCHECK NONE\n",
        "healthcheck --interval=1m30s --timeout=0 cmd curl -f http://localhost/ || exit 1\n",
        "HEALTHCHECK --interval=5s NONE\n",
    ));
    let i = last(&df);
    assert_eq!(i[0].kind, Kind::Healthcheck(Health::None));
    assert_eq!(
        i[1].kind,
        Kind::Healthcheck(Health::Cmd(shell("curl -f http://localhost/ || exit 1")))
    );
    assert_eq!(
        go_duration(i[1].flag("interval").unwrap()),
        Ok(std::time::Duration::from_secs(90))
    );
    assert_eq!(i[2].kind, Kind::Healthcheck(Health::None));
}

#[test]
fn flags_docker_never_checks() {
    // BuildKit's ARG and STOPSIGNAL never parse their flags, so anything passes.
    let df = ok("FROM a\nARG --whatever=1 A\nSTOPSIGNAL --x SIGKILL\n");
    let i = last(&df);
    assert_eq!(i[0].kind, Kind::Arg(vec![("A".into(), None)]));
    assert_eq!(i[0].flag("whatever"), Some("1"));
    assert_eq!(i[1].kind, Kind::StopSignal("SIGKILL".into()));
}

#[test]
fn healthcheck_errors() {
    for (text, message) in [
        ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        (
            "HEALTHCHECK CMD []",
            "Missing command after HEALTHCHECK CMD",
        ),
        (
            "HEALTHCHECK curl x",
            "Unknown type \"CURL\" in HEALTHCHECK (try CMD)",
        ),
        (
            "HEALTHCHECK --interval=5 CMD x",
            "time: missing unit in duration \"5\"",
        ),
        (
            "HEALTHCHECK --timeout=abc CMD x",
            "time: invalid duration \"abc\"",
        ),
        (
            "HEALTHCHECK --timeout=5d CMD x",
            "time: unknown unit \"d\" in duration \"5d\"",
        ),
        (
            "HEALTHCHECK --start-period=10us CMD x",
            "Interval \"start-period\" cannot be less than 1ms",
        ),
        (
            "HEALTHCHECK --retries=-1 CMD x",
            "--retries cannot be negative (-1)",
        ),
        (
            "HEALTHCHECK --retries=x CMD x",
            "strconv.ParseInt: parsing \"x\": invalid syntax",
        ),
        ("HEALTHCHECK --mount=x CMD x", "unknown flag: --mount"),
    ] {
        let e = parse("Dockerfile", &format!("FROM a\n{text}\n")).unwrap_err();
        assert_eq!(e.message, message, "{text}");
        assert_eq!(e.line, 2);
    }
}

#[test]
fn go_durations() {
    let d = |s: &str| go_duration(s).map(|d| d.as_nanos());
    assert_eq!(d("0"), Ok(0));
    assert_eq!(d("1.5s"), Ok(1_500_000_000));
    assert_eq!(d("1h2m3s4ms5us6ns"), Ok(3_723_004_005_006));
    assert_eq!(d(".5m"), Ok(30_000_000_000));
    assert_eq!(d("300µs"), Ok(300_000));
    assert!(d("-1s").is_err());
    assert!(d("").is_err());
    assert!(d("s").is_err());
}

#[test]
fn one_argument_instructions() {
    let df = ok("FROM a\nUSER 1000:1000\nMAINTAINER Jane Doe <jane@example.com>\nSTOPSIGNAL 9\n");
    let i = last(&df);
    assert_eq!(i[0].kind, Kind::User("1000:1000".into()));
    assert_eq!(
        i[1].kind,
        Kind::Maintainer("Jane Doe <jane@example.com>".into())
    );
    for keyword in ["WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER"] {
        assert_eq!(
            err(&format!("FROM a\n{keyword}\n")),
            format!("Dockerfile:2:1: {keyword}: {keyword} requires exactly one argument")
        );
    }
    assert_eq!(
        err("FROM a\nEXPOSE\n"),
        "Dockerfile:2:1: EXPOSE: EXPOSE requires at least one argument"
    );
    assert_eq!(
        err("FROM a\nCOPY onlyone\n"),
        "Dockerfile:2:1: COPY: COPY requires at least two arguments, but only one was provided. Destination could not be determined"
    );
}

#[test]
fn unknown_instruction_names_its_line() {
    assert_eq!(
        err("FROM a\n\nFOO bar\n"),
        "Dockerfile:3:1: unknown instruction: FOO (did you mean FROM?)"
    );
    assert_eq!(
        err("FROM a\n    cpoy a b\n"),
        "Dockerfile:2:5: unknown instruction: cpoy (did you mean copy?)"
    );
    assert_eq!(
        err("FROM a\nFROBNICATE x\n"),
        "Dockerfile:2:1: unknown instruction: FROBNICATE"
    );
}

#[test]
fn original_keeps_the_text_as_written() {
    let df = ok("FROM a\nRun --mount=type=tmpfs,target=/t \\\n  echo  hi\n");
    assert_eq!(
        last(&df)[0].original,
        "Run --mount=type=tmpfs,target=/t   echo  hi"
    );
}

#[test]
fn args_and_expansion_lowercase_file() {
    use crate::expand;
    let df = ok(include_str!("testdata/args-expansion.Dockerfile"));
    let stage = &df.stages[0];
    assert_eq!(stage.name.as_deref(), Some("base"));
    // FROM sees only the global ARGs; the build cache learns which ones it uses.
    assert_eq!(
        expand::referenced(&stage.base, df.directives.escape),
        ["REGISTRY", "IMAGE", "TAG"]
    );
    let global = |n: &str| match n {
        "REGISTRY" => Some("docker.io".to_string()),
        "IMAGE" => Some("library/debian".to_string()),
        _ => None,
    };
    assert_eq!(
        expand::word(&stage.base, &global, '\\').unwrap(),
        "docker.io/library/debian:bookworm"
    );
    let i = &stage.instructions;
    let stage_vars = |n: &str| match n {
        "VERSION" => Some("1.2.3".to_string()),
        "APP_HOME" => Some("/opt/app".to_string()),
        "ARCHIVE" => Some("app-1.2.3.tar.gz".to_string()),
        _ => None,
    };
    let Kind::Env(env) = &i[1].kind else {
        panic!("{:?}", i[1].kind)
    };
    assert_eq!(
        expand::word(&env[1].1, &stage_vars, '\\').unwrap(),
        "app-1.2.3.tar.gz"
    );
    assert_eq!(i[2].kind, Kind::Workdir("$APP_HOME".into()));
    let Kind::Add(add) = &i[3].kind else {
        panic!("{:?}", i[3].kind)
    };
    assert_eq!(i[3].flag("checksum"), Some("sha256:0123"));
    assert_eq!(
        expand::word(&add.sources[0], &stage_vars, '\\').unwrap(),
        "https://example.com/releases/app-1.2.3.tar.gz"
    );
    // RUN text is left to the shell: nothing to expand, but the names are still known.
    assert_eq!(
        i[4].kind,
        Kind::Run {
            command: shell("tar -xzf \"$ARCHIVE\" && rm \"$ARCHIVE\""),
            heredocs: vec![]
        }
    );
    let Kind::Expose(ports) = &i[5].kind else {
        panic!("{:?}", i[5].kind)
    };
    assert_eq!(
        expand::words(&ports[0], &stage_vars, '\\').unwrap(),
        ["8080/tcp"]
    );
    let Kind::Label(labels) = &i[6].kind else {
        panic!("{:?}", i[6].kind)
    };
    assert_eq!(
        expand::word(&labels[1].1, &stage_vars, '\\').unwrap(),
        "app-1.2.3"
    );
    assert_eq!(i[6].line, 11);
}

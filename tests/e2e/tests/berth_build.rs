//! `berth build` against berthd: the context a directory with Docker's `.dockerignore`
//! rules, `-f` outside the context and from stdin, a tar or a Dockerfile on stdin,
//! `--build-arg` from the environment, `-q`, `--iidfile`, and a failing RUN's exit code.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use berth_e2e::{bin_dir, text, Daemon};

/// A context directory `name` holding `files` (the Dockerfile among them).
fn context(d: &Daemon, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = d.dir.path().join(name);
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir
}

/// `berth build ARGS` with `env` set and `input` on stdin.
fn berth_build(d: &Daemon, args: &[&str], env: &[(&str, &str)], input: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(bin_dir().join("berth"));
    cmd.arg("build")
        .args(args)
        .env("BERTH_HOST", d.host())
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().expect("run berth build");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    child.wait_with_output().expect("berth build output")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "berth build failed ({:?}):\n{}\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

fn run_out(d: &Daemon, image: &str, script: &str) -> String {
    d.berth_ok(&["run", "--rm", image, "sh", "-c", script])
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn berth_build_sends_the_context_with_dockers_dockerignore_rules() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY . /ctx/\nRUN find /ctx -type f | sort\n",
            ),
            (
                ".dockerignore",
                "# comment\n*.log\ndocs\n!docs/keep.md\n/secret\n**/*.tmp\nDockerfile\n",
            ),
            ("app.txt", "app\n"),
            ("debug.log", "log\n"),
            ("docs/keep.md", "keep\n"),
            ("docs/drop.md", "drop\n"),
            ("secret", "s\n"),
            ("sub/x.tmp", "t\n"),
            ("sub/y.txt", "y\n"),
        ],
    );
    let o = berth_build(&d, &["-t", "berthtest/ignore:1", path_str(&dir)], &[], None);
    let out = ok(&o);
    // docker's bytes: the context's size (go-units, right-aligned in 8), then the steps.
    assert!(
        out.starts_with("Sending build context to Docker daemon ")
            && out.contains("kB\r\r\nStep 1/3 : FROM busybox\n"),
        "{out:?}"
    );
    assert!(
        out.contains("Successfully tagged berthtest/ignore:1"),
        "{out}"
    );
    // The Dockerfile, ignored, was sent all the same (the build ran); what COPY sees of the
    // build files is the daemon's business.
    let files = run_out(
        &d,
        "berthtest/ignore:1",
        "cd /ctx && find . -type f ! -name Dockerfile ! -name .dockerignore | sort",
    );
    assert_eq!(
        files, "./app.txt\n./docs/keep.md\n./sub/y.txt\n",
        "ignored files absent, the exception present"
    );
}

#[test]
fn berth_build_takes_a_dockerfile_outside_the_context_or_from_stdin() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(&d, "ctx", &[("hello.txt", "hello\n")]);
    let outside = d.dir.path().join("elsewhere.Dockerfile");
    std::fs::write(
        &outside,
        "FROM busybox\nCOPY hello.txt /\nCMD [\"cat\", \"/hello.txt\"]\n",
    )
    .unwrap();
    let o = berth_build(
        &d,
        &[
            "-t",
            "berthtest/outside",
            "-f",
            path_str(&outside),
            path_str(&dir),
        ],
        &[],
        None,
    );
    ok(&o);
    assert_eq!(d.berth_ok(&["run", "--rm", "berthtest/outside"]), "hello\n");

    // A Dockerfile's own `<name>.dockerignore` wins over the context's.
    let own = context(
        &d,
        "own-ignore",
        &[
            (".dockerignore", "kept-by-own.txt\n"),
            ("kept-by-own.txt", "k\n"),
            ("dropped-by-own.txt", "d\n"),
            ("sub/app.Dockerfile", "FROM busybox\nCOPY . /c/\n"),
            ("sub/app.Dockerfile.dockerignore", "dropped-by-own.txt\n"),
        ],
    );
    let df = own.join("sub/app.Dockerfile");
    ok(&berth_build(
        &d,
        &[
            "-t",
            "berthtest/own-ignore",
            "-f",
            path_str(&df),
            path_str(&own),
        ],
        &[],
        None,
    ));
    assert_eq!(
        run_out(&d, "berthtest/own-ignore", "ls /c/*.txt"),
        "/c/kept-by-own.txt\n"
    );
    let o = berth_build(
        &d,
        &["-f", "/nonexistent/Dockerfile", path_str(&own)],
        &[],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "unable to prepare context: unable to evaluate symlinks in Dockerfile path: \
         lstat /nonexistent: no such file or directory\n"
    );

    let o = berth_build(
        &d,
        &[
            "-t",
            "berthtest/stdin-dockerfile",
            "-f",
            "-",
            path_str(&dir),
        ],
        &[],
        Some(b"FROM busybox\nCOPY hello.txt /from-stdin.txt\n"),
    );
    ok(&o);
    assert_eq!(
        run_out(&d, "berthtest/stdin-dockerfile", "cat /from-stdin.txt"),
        "hello\n"
    );
}

#[test]
fn berth_build_reads_a_tar_or_a_dockerfile_on_stdin() {
    let d = Daemon::start();
    d.busybox();
    let mut tar = tar::Builder::new(Vec::new());
    for (name, content) in [
        ("Dockerfile", "FROM busybox\nCOPY in.txt /\n"),
        ("in.txt", "from the tar\n"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(content.len() as u64);
        tar.append_data(&mut h, name, content.as_bytes()).unwrap();
    }
    let tar = tar.into_inner().unwrap();
    let o = berth_build(&d, &["-t", "berthtest/tar", "-"], &[], Some(&tar));
    ok(&o);
    assert_eq!(
        run_out(&d, "berthtest/tar", "cat /in.txt"),
        "from the tar\n"
    );

    // Compressed, sent as it is.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let o = berth_build(
        &d,
        &["-t", "berthtest/targz", "-"],
        &[],
        Some(&gz.finish().unwrap()),
    );
    ok(&o);

    // A Dockerfile alone.
    let o = berth_build(
        &d,
        &["-t", "berthtest/dfonly", "-"],
        &[],
        Some(b"FROM busybox\nRUN echo only > /only\n"),
    );
    ok(&o);
    assert_eq!(run_out(&d, "berthtest/dfonly", "cat /only"), "only\n");
}

#[test]
fn berth_build_args_quiet_iidfile_and_failures() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "args",
        &[(
            "Dockerfile",
            "FROM busybox\nARG FROM_ENV\nARG GIVEN\nARG ABSENT=default\nRUN echo \"$FROM_ENV $GIVEN $ABSENT\" > /args\n",
        )],
    );
    let iid = d.dir.path().join("iid");
    std::fs::write(&iid, "stale").unwrap();
    let o = berth_build(
        &d,
        &[
            "-q",
            "--iidfile",
            path_str(&iid),
            "-t",
            "berthtest/args",
            "--build-arg",
            "FROM_ENV",
            "--build-arg",
            "GIVEN=given",
            "--build-arg",
            "ABSENT",
            path_str(&dir),
        ],
        &[("FROM_ENV", "env-value")],
        None,
    );
    let out = ok(&o);
    let id = std::fs::read_to_string(&iid).unwrap();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id:?}");
    assert_eq!(out, format!("{id}\n"), "-q prints only the id");
    assert_eq!(
        run_out(&d, "berthtest/args", "cat /args"),
        "env-value given default\n"
    );

    // A failing RUN: its exit code, the daemon's message on stderr.
    let dir = context(
        &d,
        "fail",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo about to fail && exit 7\n",
        )],
    );
    let o = berth_build(
        &d,
        &["--iidfile", path_str(&iid), path_str(&dir)],
        &[],
        None,
    );
    assert_eq!(o.status.code(), Some(7), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("about to fail"),
        "{}",
        text(&o.stdout)
    );
    assert!(
        text(&o.stderr).contains("returned a non-zero code: 7"),
        "{}",
        text(&o.stderr)
    );
    assert!(!iid.exists(), "a failed build leaves no id file");

    // Refused before anything is sent: a secret whose file is missing.
    let o = berth_build(&d, &["--secret", "id=x", path_str(&dir)], &[], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("invalid secret: failed to read secret x: x: "),
        "{}",
        text(&o.stderr)
    );
    let o = berth_build(&d, &["-t", "Bad:tag", path_str(&dir)], &[], None);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o.stderr));
}

#[test]
fn berth_build_on_a_terminal_shows_the_running_step_and_ends_with_the_summary() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "live",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             RUN for i in 1 2 3 4 5 6 7 8; do echo line $i; sleep 0.1; done; sleep 2\n\
             RUN echo failing now && exit 3\n",
        )],
    );
    let ok_dir = context(
        &d,
        "live-ok",
        &[("Dockerfile", "FROM busybox\nRUN echo fine\n")],
    );
    let mut t = d.terminal(&format!(
        "berth build -t berthtest/live {}; echo exit=$?",
        ok_dir.display()
    ));
    t.expect(" => Step 2/2 : RUN echo fine");
    t.expect("Successfully built ");
    t.expect("Successfully tagged berthtest/live:latest");
    t.expect("exit=0");
    assert_eq!(t.finish(), 0);

    let mut t = d.terminal(&format!("berth build {}; echo exit=$?", dir.display()));
    // The running step with its last output lines (the step lingers after its last line, so
    // the view shows it whatever the timing), then one line per finished step.
    t.expect("[+] Building ");
    t.expect("line 8");
    t.expect(" => ERROR Step 3/3 : RUN echo failing now && exit 3");
    t.expect("failing now");
    t.expect("returned a non-zero code: 3");
    t.expect("exit=3");
    let seen = String::from_utf8_lossy(&t.seen).into_owned();
    assert_eq!(t.finish(), 0);
    assert!(seen.contains(" => Step 1/3 : FROM busybox"), "{seen}");
    assert!(
        !seen.contains(" ---> "),
        "builder chatter stays out: {seen}"
    );
}

/// Waits until nothing under `dir` changed within the last 2 s and a bit: only then does
/// `berth build` give berthd a key to keep the context under.
fn settle(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    fn newest(p: &Path) -> i64 {
        let m = std::fs::symlink_metadata(p).unwrap();
        let own = m.ctime() * 1000 + m.ctime_nsec() / 1_000_000;
        if !m.is_dir() {
            return own;
        }
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| newest(&e.unwrap().path()))
            .fold(own, i64::max)
    }
    berth_e2e::wait_for_within(
        "the context to settle",
        std::time::Duration::from_secs(10),
        || {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            now - newest(dir) > 2300
        },
    );
}

fn kept_contexts(d: &Daemon) -> usize {
    std::fs::read_dir(d.root().join("build/contexts"))
        .map(|r| r.count())
        .unwrap_or(0)
}

#[test]
fn an_unchanged_directory_is_not_sent_again() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "kept",
        &[
            ("Dockerfile", "FROM busybox\nCOPY f /f\nRUN cat /f > /g\n"),
            ("f", "one\n"),
            ("ignored.log", "x\n"),
            (".dockerignore", "*.log\n"),
        ],
    );
    let sent = |o: &str| o.contains("Sending build context to Docker daemon");
    // Just written: sent, and not kept (a change within the same tick would not show).
    let out = ok(&berth_build(&d, &["-t", "kept", path_str(&dir)], &[], None));
    assert!(sent(&out), "{out}");
    assert_eq!(kept_contexts(&d), 0);
    settle(&dir);
    // Settled: sent once more, with the key berthd keeps it under; then not sent at all.
    let out = ok(&berth_build(&d, &["-t", "kept", path_str(&dir)], &[], None));
    assert!(sent(&out), "{out}");
    assert_eq!(kept_contexts(&d), 1);
    let out = ok(&berth_build(&d, &["-t", "kept", path_str(&dir)], &[], None));
    assert!(!sent(&out), "{out}");
    assert_eq!(out.matches("Using cache").count(), 2, "{out}");
    // An ignored file changing changes nothing sent.
    std::fs::write(dir.join("ignored.log"), "y\n").unwrap();
    let out = ok(&berth_build(&d, &["-t", "kept", path_str(&dir)], &[], None));
    assert!(!sent(&out), "{out}");
    // A copied file's content changing (same size): sent, and the COPY runs again.
    std::fs::write(dir.join("f"), "two\n").unwrap();
    let out = ok(&berth_build(&d, &["-t", "kept", path_str(&dir)], &[], None));
    assert!(sent(&out), "{out}");
    assert_eq!(out.matches("Using cache").count(), 0, "{out}");
    assert_eq!(run_out(&d, "kept", "cat /g"), "two\n");
    settle(&dir);
    ok(&berth_build(&d, &["-t", "kept", path_str(&dir)], &[], None));
    let out = ok(&berth_build(&d, &["-t", "kept", path_str(&dir)], &[], None));
    assert!(!sent(&out), "{out}");
    assert_eq!(run_out(&d, "kept", "cat /g"), "two\n");
    // A touch alone: sent again, every step from the cache (keyed on content).
    let o = Command::new("touch").arg(dir.join("f")).status().unwrap();
    assert!(o.success());
    let out = ok(&berth_build(&d, &["-t", "kept", path_str(&dir)], &[], None));
    assert!(sent(&out), "{out}");
    assert_eq!(out.matches("Using cache").count(), 2, "{out}");
    // builder prune drops what berthd kept.
    assert!(kept_contexts(&d) >= 1);
    // (berth's own builder prune, in the docker CLI's words; docker's finds nothing left.)
    let pruned = d.berth_ok(&["builder", "prune", "-af"]);
    assert!(
        pruned.starts_with("Deleted build cache objects:\n")
            && pruned.contains("\n\nTotal reclaimed space: "),
        "{pruned}"
    );
    assert_eq!(kept_contexts(&d), 0);
    assert_eq!(
        d.ok(&["builder", "prune", "-af"]),
        "Total reclaimed space: 0B\n"
    );
}

#[test]
fn no_cache_filter_runs_the_named_stages_again() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "filter",
        &[(
            "Dockerfile",
            "FROM busybox AS base\nRUN echo base > /b\nFROM base AS app\nRUN cat /b > /a\n",
        )],
    );
    let build = |extra: &[&str]| {
        let mut args = vec!["-t", "filtered"];
        args.extend_from_slice(extra);
        args.push(path_str(&dir));
        berth_build(&d, &args, &[], None)
    };
    ok(&build(&[]));
    assert_eq!(ok(&build(&[])).matches("Using cache").count(), 2);
    // The named stage's steps run, and so do those built on them.
    let out = ok(&build(&["--no-cache-filter", "base"]));
    assert_eq!(out.matches("Using cache").count(), 0, "{out}");
    assert_eq!(out.matches("Running in").count(), 2, "{out}");
    // Only the last stage: the first comes from the cache.
    let out = ok(&build(&["--no-cache-filter", "APP"]));
    assert_eq!(out.matches("Using cache").count(), 1, "{out}");
    assert_eq!(out.matches("Running in").count(), 1, "{out}");
    let o = build(&["--no-cache-filter", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("--no-cache-filter nosuch: the Dockerfile has no stage"),
        "{}",
        text(&o.stderr)
    );
}

/// Whether `hay` holds `needle` anywhere.
fn holds(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every regular file below `dir` (not following symlinks) that holds one of `needles`;
/// gzip files are also searched decompressed.
fn files_holding(dir: &Path, needles: &[&[u8]]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            todo.extend(std::fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
        } else if meta.is_file() {
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            let mut all = vec![bytes.clone()];
            if bytes.starts_with(&[0x1f, 0x8b]) {
                let o = Command::new("gzip").args(["-dc"]).arg(&p).output().unwrap();
                all.push(o.stdout);
            }
            if all.iter().any(|b| needles.iter().any(|n| holds(b, n))) {
                found.push(p);
            }
        }
    }
    found
}

fn sha256_hex(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// `berth build --secret` from a file and from the environment: the RUN reads each at its
/// target with its mode and owner, a secret not given is not mounted, and the contents are
/// nowhere after: not in the output, the history, the config, any layer of the saved image,
/// berthd's data root or its exec root; another content hits the cache (a secret is not
/// part of a step's key). A required secret not given fails the build by name.
#[test]
fn berth_build_secrets_reach_the_run_and_nothing_else() {
    let d = Daemon::start();
    d.busybox();
    let file_secret = format!("file-secret-{}-Qx7PzR", std::process::id());
    let env_secret = format!("env-secret-{}-Wm3KvT", std::process::id());
    let secret_file = d.dir.path().join("token.txt");
    std::fs::write(&secret_file, &file_secret).unwrap();
    let dir = context(
        &d,
        "secrets",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -d' ' -f1 > /tok.sha && stat -c '%a %u' /run/secrets/tok > /tok.stat && stat -f -c %T /run/secrets/tok >> /tok.stat\n\
             RUN --mount=type=secret,id=envtok,target=/etc/envtok,mode=0440,uid=1 sha256sum /etc/envtok | cut -d' ' -f1 > /envtok.sha && stat -c '%a %u' /etc/envtok > /envtok.stat\n\
             RUN --mount=type=secret,id=absent sh -c 'cat /run/secrets/absent 2>/dev/null || echo absent' > /absent\n\
             RUN --mount=type=secret,id=tok,env=TOK_ENV printf %s \"$TOK_ENV\" | sha256sum | cut -d' ' -f1 > /tokenv.sha && ls /run/secrets > /tokenv.files 2>&1; true\n",
        )],
    );
    let secret_arg = format!("id=tok,src={}", secret_file.display());
    // The steps' containers are kept (--rm=false): their configs are searched too.
    let args = [
        "--rm=false",
        "-t",
        "berthtest/secrets",
        "--secret",
        &secret_arg,
        "--secret",
        "id=envtok,env=BERTH_E2E_TOKEN",
        path_str(&dir),
    ];
    let o = berth_build(&d, &args, &[("BERTH_E2E_TOKEN", &env_secret)], None);
    let out = ok(&o);
    assert_eq!(
        run_out(
            &d,
            "berthtest/secrets",
            "cat /tok.sha /tok.stat /envtok.sha /envtok.stat /absent /tokenv.sha /tokenv.files; \
             ls /run/secrets /etc/envtok 2>&1; true"
        ),
        format!(
            "{}\n400 0\ntmpfs\n{}\n440 1\nabsent\n{}\n\
             ls: /run/secrets: No such file or directory\n\
             ls: /run/secrets: No such file or directory\n\
             ls: /etc/envtok: No such file or directory\n",
            sha256_hex(file_secret.as_bytes()),
            sha256_hex(env_secret.as_bytes()),
            sha256_hex(file_secret.as_bytes()),
        )
    );
    // Kept: the steps' containers but the one that held a secret in its environment (its
    // runtime spec had it); the configs of those kept hold no secret (searched below).
    let kept = d.berth_ok(&["ps", "-aq", "--filter", "label=com.berth.build-step"]);
    assert_eq!(kept.lines().count(), 3, "{kept}");
    let needles: [&[u8]; 2] = [file_secret.as_bytes(), env_secret.as_bytes()];
    let output = format!("{out}{}", text(&o.stderr));
    assert!(
        !needles.iter().any(|n| holds(output.as_bytes(), n)),
        "{output}"
    );
    for what in [
        d.berth_ok(&["history", "--no-trunc", "berthtest/secrets"]),
        d.berth_ok(&["image", "inspect", "berthtest/secrets"]),
        d.berth_ok(&[&["inspect"][..], &kept.lines().collect::<Vec<_>>()].concat()),
    ] {
        assert!(!needles.iter().any(|n| holds(what.as_bytes(), n)), "{what}");
    }
    // Every layer of the image, saved.
    let saved = d.dir.path().join("saved");
    std::fs::create_dir_all(&saved).unwrap();
    let tar = saved.join("image.tar");
    d.berth_ok(&["save", "-o", path_str(&tar), "berthtest/secrets"]);
    let unpacked = saved.join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let untar = |archive: &Path, into: &Path| {
        let o = Command::new("tar")
            .arg("-xf")
            .arg(archive)
            .arg("-C")
            .arg(into)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
    };
    untar(&tar, &unpacked);
    let mut layers = 0;
    let mut todo = vec![unpacked.clone()];
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            todo.extend(std::fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
            continue;
        }
        let listed = Command::new("tar").arg("-tf").arg(&p).output().unwrap();
        if listed.status.success() && !listed.stdout.is_empty() {
            let into = saved.join(format!("layer-{layers}"));
            std::fs::create_dir_all(&into).unwrap();
            untar(&p, &into);
            layers += 1;
        }
    }
    assert!(
        layers >= 4,
        "the base's layer and the three RUNs': {layers}"
    );
    // The steps' files are in the layers (the search finds them), the secrets are not.
    let tok_sha = sha256_hex(file_secret.as_bytes());
    assert!(!files_holding(&saved, &[tok_sha.as_bytes()]).is_empty());
    assert_eq!(files_holding(&saved, &needles), Vec::<PathBuf>::new());
    // Nor in berthd's data root or exec root (no tmpfs left mounted either).
    assert_eq!(files_holding(&d.root(), &needles), Vec::<PathBuf>::new());
    assert_eq!(
        files_holding(&d.exec_root(), &needles),
        Vec::<PathBuf>::new()
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(path_str(&d.exec_root().join("build"))),
        "{mounts}"
    );

    // Another content: the steps come from the cache (a secret is not in a step's key).
    std::fs::write(&secret_file, "another content").unwrap();
    let o = berth_build(&d, &args, &[("BERTH_E2E_TOKEN", "another")], None);
    let out = ok(&o);
    assert_eq!(out.matches(" ---> Using cache").count(), 4, "{out}");

    // A context berthd keeps (an unchanged directory is sent once, then not at all): the
    // secrets still go, their frame alone being the body then; the kept context holds none.
    settle(&dir);
    std::fs::write(&secret_file, "kept-context-secret-Jt5").unwrap();
    let no_cache = [&["--no-cache"][..], &args[..]].concat();
    let env = [("BERTH_E2E_TOKEN", "kept-context-env-Zq9")];
    ok(&berth_build(&d, &no_cache, &env, None));
    let out = ok(&berth_build(&d, &no_cache, &env, None));
    assert!(!out.contains("Sending build context"), "{out}");
    assert_eq!(
        run_out(&d, "berthtest/secrets", "cat /tok.sha"),
        format!("{}\n", sha256_hex(b"kept-context-secret-Jt5"))
    );
    assert!(kept_contexts(&d) >= 1);
    assert_eq!(
        files_holding(
            &d.root(),
            &[b"kept-context-secret-Jt5", b"kept-context-env-Zq9"]
        ),
        Vec::<PathBuf>::new()
    );

    // A required secret that is not given fails the build, naming it.
    let dir = context(
        &d,
        "secret-required",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=secret,id=needed,required=true true\n",
        )],
    );
    let o = berth_build(&d, &[path_str(&dir)], &[], None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("secret needed: not found"),
        "{}",
        text(&o.stderr)
    );
}

/// The files of `dir`'s subdirectories (its secrets' tmpfs: one directory per step).
fn secret_files(exec_root: &Path) -> usize {
    let Ok(builds) = std::fs::read_dir(exec_root.join("build")) else {
        return 0;
    };
    builds
        .flatten()
        .flat_map(|b| std::fs::read_dir(b.path()).into_iter().flatten().flatten())
        .flat_map(|s| std::fs::read_dir(s.path()).into_iter().flatten().flatten())
        .count()
}

/// A client that goes away while a RUN holds a secret: the step's container goes, and with
/// it the secret's file and the build's tmpfs (unmounted); a berthd killed then leaves
/// nothing mounted after its next start either.
#[test]
fn a_stopped_build_leaves_no_secret_behind() {
    let mut d = Daemon::start();
    d.busybox();
    let secret_file = d.dir.path().join("token.txt");
    std::fs::write(&secret_file, "stopped-build-secret-Hq2").unwrap();
    let dir = context(
        &d,
        "secret-long",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=secret,id=tok --mount=type=secret,id=tok,env=TOK sleep 600\n",
        )],
    );
    let secret_arg = format!("id=tok,src={}", secret_file.display());
    let mounted = |d: &Daemon| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(path_str(&d.exec_root().join("build")))
    };
    let start = |d: &Daemon| {
        let child = Command::new(bin_dir().join("berth"))
            .args(["build", "--secret", &secret_arg, path_str(&dir)])
            .env("BERTH_HOST", d.host())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        berth_e2e::wait_for("the RUN to run with its secret", || {
            d.berth_ok(&["ps", "-q"]).lines().count() == 1
                && mounted(d)
                && secret_files(&d.exec_root()) == 1
        });
        child
    };
    let mut client = start(&d);
    // While it runs: the secret in its environment is in no config the data root keeps,
    // nor in what inspect shows (only in the runtime's spec under the exec root).
    let secret: &[u8] = b"stopped-build-secret-Hq2";
    assert_eq!(files_holding(&d.root(), &[secret]), Vec::<PathBuf>::new());
    let running = d.berth_ok(&["ps", "-q", "--no-trunc"]);
    let inspect = d.berth_ok(&["inspect", running.trim()]);
    assert!(!holds(inspect.as_bytes(), secret), "{inspect}");
    // Under the exec root: the file on the build's tmpfs, and the runtime's spec.
    let live = files_holding(&d.exec_root(), &[secret]);
    assert_eq!(live.len(), 2, "{live:?}");
    assert!(live.iter().any(|p| p.ends_with("spec.json")), "{live:?}");
    client.kill().unwrap();
    client.wait().unwrap();
    berth_e2e::wait_for("the stopped build's secret to go", || {
        d.berth_ok(&["ps", "-aq"]).is_empty() && !mounted(&d) && secret_files(&d.exec_root()) == 0
    });
    assert_eq!(
        files_holding(&d.root(), &[b"stopped-build-secret-Hq2"]),
        Vec::<PathBuf>::new()
    );
    // berthd dies mid-build: its next start unmounts and removes the tmpfs.
    let mut client = start(&d);
    d.kill9();
    let _ = client.kill();
    let _ = client.wait();
    d.spawn();
    assert!(!mounted(&d));
    assert_eq!(secret_files(&d.exec_root()), 0);
}

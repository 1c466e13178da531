//! `docker build` (the classic builder protocol, `POST /build`) against berthd, through the
//! real docker CLI: Docker's step lines, the image's config and history as Docker records
//! them, RUN in a container with the build's environment, COPY from the context, a failing
//! RUN's exit code, and paths outside the context refused.

use std::path::Path;
use std::process::{Command, Output};

use berth_e2e::{text, Daemon};

/// `docker build` with the context `dir`, classic builder (no buildx here; forced anyway).
fn build(d: &Daemon, dir: &Path, args: &[&str]) -> Output {
    Command::new("docker")
        .arg("build")
        .args(args)
        .arg(dir)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env("DOCKER_BUILDKIT", "0")
        .env_remove("DOCKER_API_VERSION")
        .output()
        .expect("run docker build")
}

fn context(d: &Daemon, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = d.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir
}

#[test]
fn docker_build_runs_each_step_and_records_dockers_config_and_history() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "ctx",
        "FROM busybox\n\
         LABEL org.example=berth\n\
         ARG WHO=nobody\n\
         ENV GREETING=hi\n\
         COPY hello.txt /app/\n\
         COPY sub /app/sub\n\
         RUN echo \"$GREETING $WHO\" && cat /app/hello.txt > /app/out && ls /app/sub\n\
         WORKDIR /app\n\
         EXPOSE 8080\n\
         CMD [\"cat\", \"/app/out\"]\n",
        &[("hello.txt", "hello\n"), ("sub/in.txt", "inner\n")],
    );
    let o = build(
        &d,
        &dir,
        &[
            "-t",
            "berthtest/built:1",
            "--build-arg",
            "WHO=berth",
            "--build-arg",
            "EXTRA=x",
        ],
    );
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", text(&o.stderr));
    for want in [
        "Step 1/10 : FROM busybox\n",
        "Step 7/10 : RUN echo \"$GREETING $WHO\"",
        " ---> Running in ",
        "hi berth\n",
        "in.txt\n",
        "Removing intermediate container ",
        "[Warning] One or more build-args [EXTRA] were not consumed\n",
        "Successfully tagged berthtest/built:1\n",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .expect("Successfully built <id>")
        .to_string();
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.Id}}", "berthtest/built:1"])
            .trim()[7..19],
        id
    );
    assert_eq!(d.ok(&["run", "--rm", "berthtest/built:1"]), "hello\n");
    let config = d.ok(&["inspect", "-f", "{{json .Config}}", "berthtest/built:1"]);
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["Cmd"], serde_json::json!(["cat", "/app/out"]));
    assert_eq!(config["WorkingDir"], "/app");
    assert_eq!(
        config["Env"],
        serde_json::json!(["GREETING=hi"]),
        "build args stay out"
    );
    assert_eq!(config["Labels"]["org.example"], "berth");
    assert_eq!(config["ExposedPorts"], serde_json::json!({"8080/tcp": {}}));
    // History: a layer for COPY and RUN only; Docker's `#(nop)` lines for the rest.
    let history = d.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Size}}",
        "berthtest/built:1",
    ]);
    let lines: Vec<&str> = history.lines().collect();
    assert!(
        lines[0].starts_with("/bin/sh -c #(nop)  CMD [\"cat\", \"/app/out\"]|0B"),
        "{history}"
    );
    assert!(
        lines[3].starts_with("/bin/sh -c echo \"$GREETING $WHO\""),
        "{history}"
    );
    assert!(!lines[3].ends_with("|0B"), "RUN made no layer: {history}");
    // The copied files are root's, whatever the context's owner.
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "berthtest/built:1",
            "stat",
            "-c",
            "%u:%g %a",
            "/app/hello.txt"
        ]),
        "0:0 644\n"
    );
    // No step container is left, and the build's files are gone.
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    let leftovers: Vec<_> = std::fs::read_dir(d.root().join("build")).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_failing_run_gives_its_exit_code_and_docker_s_message() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "fail",
        "FROM busybox\nRUN echo about to fail && exit 7\n",
        &[],
    );
    let o = build(&d, &dir, &[]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("about to fail\n"));
    assert!(
        text(&o.stderr).contains(
            "The command '/bin/sh -c echo about to fail && exit 7' returned a non-zero code: 7"
        ),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn bad_dockerfiles_and_paths_outside_the_context_are_refused() {
    let d = Daemon::start();
    d.busybox();
    std::fs::write(d.dir.path().join("secret"), "outside\n").unwrap();
    for (name, dockerfile, want) in [
        (
            "unknown",
            "FROM busybox\nFOO bar\n",
            "Dockerfile:2:1: unknown instruction: FOO",
        ),
        (
            "climb",
            "FROM busybox\nCOPY ../secret /\n",
            "forbidden path outside the build context",
        ),
        (
            "missing",
            "FROM busybox\nCOPY nothere /\n",
            "nothere: file does not exist",
        ),
        (
            "noimage",
            "FROM 127.0.0.1:1/nosuchimage\n",
            "connection refused",
        ),
        (
            "gitsource",
            "FROM busybox\nADD https://github.com/moby/buildkit.git /src\n",
            "ADD of a git repository (https://github.com/moby/buildkit.git) is not supported",
        ),
        (
            "keepgitdir",
            "FROM busybox\nADD --keep-git-dir=true https://github.com/moby/buildkit.git /src\n",
            "ADD --keep-git-dir (git sources are not) is not supported",
        ),
        (
            "unpack",
            "FROM busybox\nADD --unpack=true http://127.0.0.1:9/x.tar /x\n",
            "ADD --unpack is not supported",
        ),
        (
            "copyurl",
            "FROM busybox\nCOPY http://127.0.0.1:9/x /x\n",
            "source can't be a URL for COPY",
        ),
        (
            "checksumlocal",
            "FROM busybox\nADD --checksum=sha256:0000 Dockerfile /x\n",
            "checksum requires HTTP(S) or Git sources",
        ),
        (
            "badchmod",
            "FROM busybox\nCOPY --chmod=u+q Dockerfile /x\n",
            "invalid chmod parameter: 'u+q'",
        ),
        (
            "sshmount",
            "FROM busybox\nRUN --mount=type=ssh true\n",
            "RUN --mount=type=ssh is not supported",
        ),
        (
            "secretenv",
            "FROM busybox\nRUN --mount=type=secret,id=x,env=A=B true\n",
            "env=A=B: not a variable name",
        ),
        (
            "secretrequired",
            "FROM busybox\nRUN --mount=type=secret,id=x,required true\n",
            "secret x: not found (give it with berth build --secret",
        ),
        (
            "argflag",
            "FROM busybox\nARG --x=1 A\n",
            "ARG --x is not supported",
        ),
    ] {
        let dir = context(&d, name, dockerfile, &[]);
        let o = build(&d, &dir, &["-t", "shouldnot:exist"]);
        assert_ne!(o.status.code(), Some(0), "{name}");
        assert!(
            text(&o.stderr).contains(want),
            "{name}: {}",
            text(&o.stderr)
        );
    }
    let (code, _, _) = d.outcome(&["inspect", "shouldnot:exist"]);
    assert_ne!(code, 0, "a failed build tagged an image");
}

/// COPY's destination rules, as Docker's: `.` and a trailing `/` are directories, so is an
/// existing directory (the file goes inside, never over it); a directory source copies its
/// contents; WORKDIR makes its directory in the image.
#[test]
fn copy_destinations_follow_dockers_rules() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "dests",
        "FROM busybox\n\
         WORKDIR /w\n\
         COPY hello.txt .\n\
         COPY hello.txt /w\n\
         COPY hello.txt /w/renamed\n\
         COPY sub/ /dst/\n\
         COPY h*.txt sub/in.txt /many/\n",
        &[("hello.txt", "hello\n"), ("sub/in.txt", "inner\n")],
    );
    let o = build(&d, &dir, &["-t", "dests"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = d.ok(&[
        "run",
        "--rm",
        "dests",
        "sh",
        "-c",
        "test -d /w && test -d /dst && cat /w/hello.txt /w/renamed /dst/in.txt /many/hello.txt \
         /many/in.txt && pwd && ls /w",
    ]);
    assert_eq!(
        out,
        "hello\nhello\ninner\nhello\ninner\n/w\nhello.txt\nrenamed\n"
    );
}

/// The steps of a build's output that ran (` ---> Running in`) and that came from the cache.
fn cache_hits(out: &str) -> (usize, usize) {
    (
        out.matches(" ---> Running in ").count(),
        out.matches(" ---> Using cache\n").count(),
    )
}

/// The cache: keyed on the parent, the expanded instruction, the build args in scope and
/// the content of what is copied (not its mtime); it survives berthd's kill -9 and is not
/// listed by `docker images`; `--no-cache` runs everything.
#[test]
fn the_cache_reuses_unchanged_steps_and_only_those() {
    let mut d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "cache",
        "FROM busybox\n\
         ARG FLAVOUR=plain\n\
         RUN echo \"first $FLAVOUR\" > /first\n\
         COPY data.txt /data.txt\n\
         RUN cat /data.txt > /second\n\
         CMD [\"cat\", \"/first\", \"/second\"]\n",
        &[("data.txt", "v1\n")],
    );
    let run = |d: &Daemon, args: &[&str]| {
        let o = build(d, &dir, args);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let out = text(&o.stdout);
        let id = out
            .lines()
            .find_map(|l| l.strip_prefix("Successfully built "))
            .unwrap()
            .to_string();
        (out, id)
    };
    let mut results = Vec::new();
    let (out, first) = run(&d, &["-t", "cached"]);
    results.push(first.clone());
    assert_eq!(cache_hits(&out), (2, 0), "{out}");
    d.kill9();
    d.spawn();
    let (out, again) = run(&d, &["-t", "cached"]);
    assert_eq!(cache_hits(&out), (0, 4), "{out}");
    assert_eq!(again, first, "a fully cached build is the same image");
    // A new mtime alone changes nothing.
    let data = dir.join("data.txt");
    let f = std::fs::File::options().write(true).open(&data).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .unwrap();
    let (out, id) = run(&d, &["-t", "cached"]);
    assert_eq!(cache_hits(&out), (0, 4), "mtime only: {out}");
    assert_eq!(id, first);
    // New content: the COPY and what follows run again, not what comes before.
    std::fs::write(&data, "v2\n").unwrap();
    let (out, id) = run(&d, &["-t", "cached"]);
    assert_eq!(cache_hits(&out), (1, 1), "content: {out}");
    results.push(id);
    assert_eq!(d.ok(&["run", "--rm", "cached"]), "first plain\nv2\n");
    // A build arg in scope: every RUN after its ARG runs again (and what follows them).
    let (out, id) = run(&d, &["-t", "cached", "--build-arg", "FLAVOUR=spicy"]);
    assert_eq!(cache_hits(&out), (2, 0), "build arg: {out}");
    results.push(id);
    assert_eq!(d.ok(&["run", "--rm", "cached"]), "first spicy\nv2\n");
    let (out, id) = run(&d, &["-t", "cached", "--no-cache"]);
    assert_eq!(cache_hits(&out), (2, 0), "--no-cache: {out}");
    results.push(id);
    // The steps' images are build cache: `docker images` lists busybox and the builds'
    // results (the earlier ones untagged, as Docker's), no step's image.
    let busybox = d.ok(&["images", "-q", "busybox"]);
    let listed = d.ok(&["images", "-q"]);
    for id in listed.lines() {
        assert!(
            busybox.trim() == id || results.iter().any(|r| r == id),
            "{id} is listed: {listed}"
        );
    }
    assert!(listed.lines().count() >= 2, "{listed}");
}

/// Multi-stage: a stage's files copied `--from` it by name (and from an image) into a
/// stage `FROM scratch`; `--target` stops at the stage named and builds only what it needs.
#[test]
fn multi_stage_builds_from_scratch_with_copy_from_and_target() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "multi",
        "FROM busybox AS builder\n\
         RUN mkdir -p /out/sub && echo built > /out/artifact && echo deep > /out/sub/f \
             && ln -s artifact /out/link\n\
         FROM busybox AS unused\n\
         RUN echo never-run-for-the-target\n\
         FROM scratch\n\
         COPY --from=builder /out /app/\n\
         COPY --from=builder /out/artifact /single\n\
         COPY --from=busybox /bin/busybox /bin/busybox\n\
         ENTRYPOINT [\"/bin/busybox\"]\n",
        &[],
    );
    let o = build(&d, &dir, &["-t", "multi"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // The stage nothing needs is not built.
    assert!(
        !text(&o.stdout).contains("never-run"),
        "{}",
        text(&o.stdout)
    );
    assert!(
        text(&o.stdout).contains("Step 7/7 : ENTRYPOINT"),
        "{}",
        text(&o.stdout)
    );
    let out = d.ok(&[
        "run",
        "--rm",
        "multi",
        "sh",
        "-c",
        "cat /app/artifact /app/sub/f /single && readlink /app/link && ls /",
    ]);
    assert_eq!(
        out,
        "built\ndeep\nbuilt\nartifact\napp\nbin\ndev\netc\nproc\nsingle\nsys\n"
    );
    // Only busybox's layer and the three COPY layers: scratch adds none.
    let layers = d.ok(&["inspect", "-f", "{{len .RootFS.Layers}}", "multi"]);
    assert_eq!(layers.trim(), "3");
    let o = build(&d, &dir, &["-t", "builder-only", "--target", "builder"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!out.contains("never-run-for-the-target"), "{out}");
    assert!(out.contains("Step 2/2 : RUN mkdir"), "{out}");
    let o = build(&d, &dir, &["--target", "nosuch"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o.stderr).contains("failed to reach build target nosuch"));
}

/// Starts `docker build` of `dir` and returns it once its output shows a RUN running.
fn build_until_running(d: &Daemon, dir: &Path) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new("docker")
        .arg("build")
        .arg(dir)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env("DOCKER_BUILDKIT", "0")
        .env_remove("DOCKER_API_VERSION")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("the build ended early").unwrap();
        if line.starts_with(" ---> Running in ") {
            break;
        }
    }
    child
}

/// A client that goes away mid-build stops it: the running step's container is killed and
/// removed, and the build's files go; a berthd killed mid-build leaves nothing at its next
/// start either.
#[test]
fn a_build_stopped_part_way_leaves_no_container_or_files() {
    let mut d = Daemon::start();
    d.busybox();
    let dir = context(&d, "long", "FROM busybox\nRUN sleep 600\n", &[]);
    let mut client = build_until_running(&d, &dir);
    berth_e2e::wait_for("the RUN to run", || {
        d.ok(&["ps", "-q"]).lines().count() == 1
    });
    client.kill().unwrap();
    client.wait().unwrap();
    berth_e2e::wait_for("the stopped build's container to go", || {
        d.ok(&["ps", "-aq"]).is_empty()
    });
    let build_dir = d.root().join("build");
    berth_e2e::wait_for("the stopped build's files to go", || {
        std::fs::read_dir(&build_dir).unwrap().next().is_none()
    });
    // berthd dies mid-build: the next berthd removes what the build left.
    let mut client = build_until_running(&d, &dir);
    berth_e2e::wait_for("the RUN to run", || {
        d.ok(&["ps", "-q"]).lines().count() == 1
    });
    d.kill9();
    let _ = client.kill();
    let _ = client.wait();
    d.spawn();
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    assert!(std::fs::read_dir(&build_dir).unwrap().next().is_none());
}

/// ADD extracts a local archive (compressed or not, told by content) and copies any other
/// file. RUN --network=none has no interface but lo.
/// ONBUILD triggers of the base run in the child's build and are not inherited.
#[test]
fn add_archives_run_network_and_onbuild_triggers() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "add",
        "FROM busybox\n\
         ADD bundle.tgz /opt/\n\
         ADD plain.txt notatar.tar.gz /files/\n\
         RUN --network=none cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' > /ifaces\n\
         ONBUILD RUN echo triggered > /triggered\n",
        &[("plain.txt", "plain\n"), ("notatar.tar.gz", "just text\n")],
    );
    // A gzipped tar of inner/x, made with the system's tar.
    let staging = d.dir.path().join("staging");
    std::fs::create_dir_all(staging.join("inner")).unwrap();
    std::fs::write(staging.join("inner/x"), "from the archive\n").unwrap();
    let o = Command::new("tar")
        .arg("-czf")
        .arg(dir.join("bundle.tgz"))
        .arg("-C")
        .arg(&staging)
        .arg("inner")
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = build(&d, &dir, &["-t", "added"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = d.ok(&[
        "run",
        "--rm",
        "added",
        "sh",
        "-c",
        "cat /opt/inner/x /files/plain.txt /files/notatar.tar.gz /ifaces",
    ]);
    assert_eq!(out, "from the archive\nplain\njust text\nlo\n");
    let onbuild = d.ok(&["inspect", "-f", "{{json .Config.OnBuild}}", "added"]);
    assert_eq!(onbuild.trim(), "[\"RUN echo triggered > /triggered\"]");
    let child = context(&d, "child", "FROM added\nRUN cat /triggered\n", &[]);
    let o = build(&d, &child, &["-t", "child"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(out.contains("# Executing 1 build trigger\n"), "{out}");
    assert!(out.contains("triggered\n"), "{out}");
    let onbuild = d.ok(&["inspect", "-f", "{{json .Config.OnBuild}}", "child"]);
    assert!(matches!(onbuild.trim(), "null" | "[]"), "{onbuild}");
}

/// The build cache in `system df`, `builder prune` (all, and Docker's confirmation-free
/// `-f`), and berthd's bound on it.
#[test]
fn build_cache_is_accounted_pruned_and_bounded() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "acct",
        "FROM busybox\nRUN head -c 100000 /dev/zero > /zeros\nRUN echo two > /two\nCMD [\"true\"]\n",
        &[],
    );
    let o = build(&d, &dir, &["-t", "acct"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let df = d.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Size}}",
    ]);
    let cache_line = df
        .lines()
        .find(|l| l.starts_with("Build Cache "))
        .unwrap_or_else(|| panic!("{df}"));
    let count: usize = cache_line.split(' ').nth(2).unwrap().parse().unwrap();
    assert!(count >= 2, "the steps' images are build cache: {df}");
    let o = d.docker(&["builder", "prune", "-af"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("Total reclaimed space"),
        "{}",
        text(&o.stdout)
    );
    let df = d.ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(df.contains("Build Cache 0"), "{df}");
    // The image built stays whole.
    assert_eq!(d.ok(&["run", "--rm", "acct", "cat", "/two"]), "two\n");
    // Pruned: the rebuild runs its steps again.
    let o = build(&d, &dir, &["-t", "acct"]);
    assert_eq!(text(&o.stdout).matches(" ---> Running in ").count(), 2);

    // A berthd that keeps 1 byte of cache. Layers an image holds cost the cache nothing;
    // once the image is removed they do, and the next build's bound removes them.
    let small = Daemon::start_with_args(&["--build-cache-max", "1"]);
    small.busybox();
    let o = build(&small, &dir, &["-t", "acct"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = build(&small, &dir, &["-t", "acct"]);
    assert_eq!(text(&o.stdout).matches(" ---> Using cache").count(), 3);
    small.ok(&["rmi", "acct"]);
    let other = context(
        &small,
        "other",
        "FROM busybox
RUN echo other
",
        &[],
    );
    let o = build(&small, &other, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = build(&small, &dir, &["-t", "acct"]);
    assert_eq!(
        text(&o.stdout).matches(" ---> Running in ").count(),
        2,
        "the bound kept the unheld cache: {}",
        text(&o.stdout)
    );
}

/// RUN heredocs (a script alone, and a heredoc feeding a command), and RUN --mount: a
/// cache directory that outlives the build without entering the image, and a tmpfs.
#[test]
fn run_heredocs_and_cache_and_tmpfs_mounts() {
    let d = Daemon::start();
    d.busybox();
    let dockerfile = "FROM busybox\n\
         RUN <<EOF\n\
         echo script line one > /script\n\
         echo script line two >> /script\n\
         EOF\n\
         RUN cat > /fed <<DATA\n\
         fed by a heredoc\n\
         DATA\n\
         ARG ROUND=1\n\
         RUN --mount=type=cache,target=/cache echo $ROUND >> /cache/rounds && cat /cache/rounds > /seen\n\
         RUN --mount=type=tmpfs,target=/scratch,size=1m touch /scratch/x && grep -q ' /scratch tmpfs' /proc/mounts\n";
    let dir = context(&d, "heredocs", dockerfile, &[]);
    for round in ["1", "2"] {
        let arg = format!("ROUND={round}");
        let o = build(&d, &dir, &["-t", "heredocs", "--build-arg", &arg]);
        assert!(
            o.status.success(),
            "{}\n{}",
            text(&o.stdout),
            text(&o.stderr)
        );
    }
    let out = d.ok(&[
        "run",
        "--rm",
        "heredocs",
        "sh",
        "-c",
        "cat /script /fed /seen; cat /cache/rounds /scratch/x 2>/dev/null; echo end",
    ]);
    // The cache kept round 1's line for round 2; neither mount is in the image.
    assert_eq!(
        out,
        "script line one\nscript line two\nfed by a heredoc\n1\n2\nend\n"
    );
}

/// COPY --chown by name (the destination image's passwd and group; no group: the user's id,
/// as Docker) and by number, --chmod in octal, and an unknown user refused.
#[test]
fn copy_chown_by_name_and_chmod() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "chown",
        "FROM busybox\n\
         RUN mkdir -p /etc && echo 'app:x:1234:4321::/home/app:/bin/sh' >> /etc/passwd \
             && echo 'staff:x:50:' >> /etc/group\n\
         COPY --chown=app:staff f /a\n\
         COPY --chown=app f /b\n\
         COPY --chown=7:8 --chmod=0750 f /c\n\
         COPY --chmod=600 sub /d/\n",
        &[("f", "x\n"), ("sub/g", "y\n")],
    );
    let o = build(&d, &dir, &["-t", "chowned"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = d.ok(&[
        "run",
        "--rm",
        "chowned",
        "stat",
        "-c",
        "%n %u:%g %a",
        "/a",
        "/b",
        "/c",
        "/d/g",
    ]);
    assert_eq!(
        out,
        "/a 1234:50 644\n/b 1234:1234 644\n/c 7:8 750\n/d/g 0:0 600\n"
    );
    let bad = context(
        &d,
        "nouser",
        "FROM busybox\nCOPY --chown=nosuch f /x\n",
        &[("f", "x")],
    );
    let o = build(&d, &bad, &[]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o.stderr).contains("no such user: nosuch"),
        "{}",
        text(&o.stderr)
    );
}

/// `.dockerignore` that names the Dockerfile and itself: the build still reads them, COPY
/// does not see them (Docker's daemon drops them), and the client left out the rest. A
/// `--build-arg K` whose K is unset on the client keeps the ARG's default.
#[test]
fn dockerignored_build_files_are_read_but_not_copied() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "ignored",
        "FROM busybox\nARG K=default\nCOPY . /ctx/\nRUN echo $K > /k && ls -A /ctx > /listing\n",
        &[
            (".dockerignore", "Dockerfile\n.dockerignore\nsecret.txt\n"),
            ("secret.txt", "do not ship\n"),
            ("kept.txt", "kept\n"),
        ],
    );
    let o = Command::new("docker")
        .args(["build", "-t", "ignored", "--build-arg", "K"])
        .arg(&dir)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env("DOCKER_BUILDKIT", "0")
        .env_remove("K")
        .env_remove("DOCKER_API_VERSION")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        d.ok(&["run", "--rm", "ignored", "cat", "/listing", "/k"]),
        "kept.txt\ndefault\n"
    );
}

/// A build refused for its parameters reads the upload to its end first: the docker CLI
/// shows berth's message, not a broken pipe, even with a context of many megabytes.
#[test]
fn a_refused_build_answers_after_the_upload() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(&d, "bigpull", "FROM busybox\n", &[]);
    std::fs::write(dir.join("big"), vec![7u8; 24 << 20]).unwrap();
    let o = build(&d, &dir, &["--cache-from", "x"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o.stderr).contains("--cache-from [\"x\"] is not supported"),
        "{}",
        text(&o.stderr)
    );
}

/// A context that decompresses to a gigabyte (1 MiB of gzip) stops at berthd's ingest
/// bound with a clear error, and leaves no build files and no image.
#[test]
fn a_context_bomb_stops_at_the_ingest_bound() {
    let d = Daemon::start_with_args(&["--max-ingest-size", "16m"]);
    d.busybox();
    let bomb = d.dir.path().join("bomb.tar.gz");
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "d=$(mktemp -d) && printf 'FROM busybox\\n' > $d/Dockerfile && \
             truncate -s 1G $d/zeros && tar -C $d -cf - Dockerfile zeros | gzip -1 > {} && \
             rm -rf $d",
            bomb.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(std::fs::metadata(&bomb).unwrap().len() < 8 << 20);
    let socket = d.host().trim_start_matches("unix://").to_string();
    let o = Command::new("curl")
        .args(["-s", "--unix-socket", &socket, "-X", "POST"])
        .args(["-H", "Content-Type: application/x-tar", "--data-binary"])
        .arg(format!("@{}", bomb.display()))
        .arg("http://berth/v1.44/build?t=bomb")
        .output()
        .unwrap();
    let answer = text(&o.stdout);
    assert!(answer.contains("--max-ingest-size"), "{answer}");
    let build_dir = d.root().join("build");
    let left: Vec<_> = std::fs::read_dir(&build_dir)
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    let (code, _, _) = d.outcome(&["inspect", "bomb"]);
    assert_ne!(code, 0);
}

/// A RUN that marks `mine` in a cache mount shared by the build's stages and waits (a
/// bounded poll) for the other stage's `theirs`: it succeeds only if both run at once.
fn meeting_run(id: &str, mine: &str, theirs: &str, then: &str) -> String {
    format!(
        "RUN --mount=type=cache,id={id},target=/m touch /m/{mine} && i=0 && \
         while [ ! -e /m/{theirs} ]; do i=$((i+1)); [ $i -lt 1200 ] || exit 3; sleep 0.05; done \
         && {then}\n"
    )
}

#[test]
fn independent_stages_build_at_once_and_print_in_order() {
    let d = Daemon::start();
    d.busybox();
    let id = format!("meet-{}", std::process::id());
    let dockerfile = format!(
        "FROM busybox AS a\n{}FROM busybox AS b\n{}FROM busybox\n\
         COPY --from=a /a /a\nCOPY --from=b /b /b\nCMD [\"cat\", \"/a\", \"/b\"]\n",
        meeting_run(&id, "a", "b", "echo from-a > /a"),
        meeting_run(&id, "b", "a", "echo from-b > /b"),
    );
    let dir = context(&d, "concurrent", &dockerfile, &[]);
    let o = build(&d, &dir, &["-t", "both"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    // The lines read as a sequential build's: steps 1 to 8 in order, each once.
    let steps: Vec<usize> = out
        .lines()
        .filter_map(|l| l.strip_prefix("Step "))
        .map(|l| l.split('/').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(steps, (1..=8).collect::<Vec<_>>(), "{out}");
    let a = out.find("Step 2/8").unwrap();
    let b = out.find("Step 3/8").unwrap();
    let a_ran = out[a..b].find("Running in").expect("stage a's RUN ran");
    assert!(a + a_ran < b, "{out}");
    assert_eq!(d.ok(&["run", "--rm", "both"]), "from-a\nfrom-b\n");
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn a_failing_stage_stops_the_stages_running_beside_it() {
    let d = Daemon::start();
    d.busybox();
    let id = format!("fail-{}", std::process::id());
    // Stage a would run for ten minutes once b has started; b fails as soon as a runs.
    let dockerfile = format!(
        "FROM busybox AS a\n{}FROM busybox AS b\n{}FROM busybox\n\
         COPY --from=a /a /a\nCOPY --from=b /b /b\n",
        meeting_run(&id, "a", "b", "sleep 600"),
        meeting_run(&id, "b", "a", "exit 5"),
    );
    let dir = context(&d, "failing", &dockerfile, &[]);
    let o = Command::new("timeout")
        .args(["120", "docker", "build", "-t", "never"])
        .arg(&dir)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env("DOCKER_BUILDKIT", "0")
        .env_remove("DOCKER_API_VERSION")
        .output()
        .unwrap();
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(5), "{out}{err}");
    assert!(err.contains("returned a non-zero code: 5"), "{err}");
    // b's lines came out whole, and its step's container stays (as Docker leaves a failed
    // step's); a's, killed mid-RUN, is gone.
    assert!(out.contains("Step 3/7 : FROM busybox AS b"), "{out}");
    let left = d.ok(&["ps", "-a", "--no-trunc", "--format", "{{.Command}}"]);
    assert_eq!(left.lines().count(), 1, "{left}");
    assert!(
        left.contains("exit 5") || left.contains("touch /m/b"),
        "{left}"
    );
    assert!(!d
        .ok(&["images", "-q", "never"])
        .contains(char::is_alphanumeric));
}

/// The id a successful build printed, and its output.
fn built(d: &Daemon, dir: &Path, args: &[&str]) -> (String, String) {
    let o = build(d, dir, args);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", text(&o.stderr));
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .expect("an image id")
        .to_string();
    (id, out)
}

/// COPY and ADD heredocs: BuildKit's expansion (quotes are text, `\$` keeps a `$`; none for a
/// quoted delimiter), `<<-` tabs stripped, several in one COPY named by their delimiters,
/// 0644 root's unless `--chmod`/`--chown`; the content is the cache key.
#[test]
fn copy_heredocs_expand_and_take_modes_owners_and_cache() {
    let d = Daemon::start();
    d.busybox();
    let dockerfile = |body: &str| {
        format!(
            "FROM busybox\n\
             ARG NAME=world\n\
             ENV GREETING=hello\n\
             COPY <<EOF /greeting\n\
             $GREETING ${{NAME}} \"quoted\" 'single' \\$HOME\n\
             EOF\n\
             COPY <<'EOF' /raw\n\
             $GREETING stays\n\
             EOF\n\
             COPY --chmod=750 --chown=7:8 <<one <<two /multi/\n\
             first\n\
             one\n\
             second\n\
             two\n\
             COPY <<-EOF /tabs\n\
             \t\ttabbed\n\
             \tEOF\n\
             ADD <<EOF /added\n\
             {body} $NAME\n\
             EOF\n\
             RUN cat /added > /seen\n"
        )
    };
    let dir = context(&d, "heredoc-copy", &dockerfile("via add"), &[]);
    let (first, _) = built(&d, &dir, &["-t", "heredoc-copy"]);
    let out = d.ok(&[
        "run",
        "--rm",
        "heredoc-copy",
        "sh",
        "-c",
        "cat /greeting /raw /multi/one /multi/two /tabs /added /seen && \
         stat -c '%n %u:%g %a' /greeting /multi/one /multi/two /added",
    ]);
    assert_eq!(
        out,
        "hello world \"quoted\" 'single' $HOME\n\
         $GREETING stays\n\
         first\n\
         second\n\
         tabbed\n\
         via add world\n\
         via add world\n\
         /greeting 0:0 644\n\
         /multi/one 7:8 750\n\
         /multi/two 7:8 750\n\
         /added 0:0 644\n"
    );
    // Unchanged: every step from the cache, the same image.
    let (again, out) = built(&d, &dir, &["-t", "heredoc-copy"]);
    assert_eq!(again, first);
    assert_eq!(cache_hits(&out), (0, 7), "{out}");
    // A build arg the heredoc expands: its COPY and what follows run again.
    let (id, out) = built(
        &d,
        &dir,
        &["-t", "heredoc-copy", "--build-arg", "NAME=berth"],
    );
    assert_ne!(id, first);
    assert_eq!(cache_hits(&out), (1, 1), "{out}");
    assert_eq!(
        d.ok(&["run", "--rm", "heredoc-copy", "cat", "/greeting", "/seen"]),
        "hello berth \"quoted\" 'single' $HOME\nvia add berth\n"
    );
    // A new body: only that step (and the RUN after it) miss.
    std::fs::write(dir.join("Dockerfile"), dockerfile("changed")).unwrap();
    let (id, out) = built(&d, &dir, &["-t", "heredoc-copy"]);
    assert_ne!(id, first);
    assert_eq!(cache_hits(&out), (1, 5), "{out}");
    assert_eq!(
        d.ok(&["run", "--rm", "heredoc-copy", "cat", "/seen"]),
        "changed world\n"
    );
}

/// `--chmod` in symbolic form (BuildKit's stable syntax since Dockerfile 1.14), applied to
/// each file's own mode.
#[test]
fn copy_chmod_takes_symbolic_modes() {
    use std::os::unix::fs::PermissionsExt;
    let d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "symchmod",
        "FROM busybox\n\
         COPY --chmod=u=rwx,go=rx f /s1\n\
         COPY --chmod=+x f /s2\n\
         COPY --chmod=go-rwx sub /s3/\n\
         COPY --chmod=a+X sub /s4/\n\
         COPY --chmod=g=u <<EOF /s5\n\
         inline\n\
         EOF\n",
        &[("f", "x\n"), ("sub/g", "y\n"), ("sub/run", "z\n")],
    );
    for (f, mode) in [("f", 0o600), ("sub/g", 0o644), ("sub/run", 0o744)] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    built(&d, &dir, &["-t", "symchmod"]);
    let out = d.ok(&[
        "run", "--rm", "symchmod", "stat", "-c", "%n %a", "/s1", "/s2", "/s3/g", "/s3/run",
        "/s4/g", "/s4/run", "/s5",
    ]);
    assert_eq!(
        out,
        "/s1 755\n/s2 711\n/s3/g 600\n/s3/run 700\n/s4/g 644\n/s4/run 755\n/s5 664\n"
    );
}

/// `COPY --link`: the files are copied alone into an empty layer laid on the image, so a
/// symlink of an earlier layer on the destination's path is not followed (the layer's
/// directory hides it); without `--link` it is. An existing directory merges with the layer.
#[test]
fn copy_link_lays_a_layer_that_does_not_follow_earlier_symlinks() {
    let d = Daemon::start();
    d.busybox();
    let dockerfile = |link: &str| {
        format!(
            "FROM busybox AS base\n\
             RUN mkdir /real && echo old > /real/old && ln -s /real /linked\n\
             COPY {link} --chown=5:6 f /linked/\n\
             COPY {link} <<EOF /etc/berth-note\n\
             note\n\
             EOF\n\
             FROM base\n\
             COPY {link} --from=base /real/old /from-stage/\n"
        )
    };
    let linked = context(&d, "linked", &dockerfile("--link"), &[("f", "copied\n")]);
    let (first, _) = built(&d, &linked, &["-t", "linked"]);
    let out = d.ok(&[
        "run",
        "--rm",
        "linked",
        "sh",
        "-c",
        "test -d /linked && ! test -L /linked && ls /linked && cat /linked/f && \
         stat -c '%u:%g %a' /linked/f && ls /real && cat /etc/berth-note /from-stage/old && \
         grep -c ^root: /etc/passwd",
    ]);
    assert_eq!(out, "f\ncopied\n5:6 644\nold\nnote\nold\n1\n");
    let (again, out) = built(&d, &linked, &["-t", "linked"]);
    assert_eq!(again, first);
    assert_eq!(cache_hits(&out), (0, 4), "{out}");
    let plain = context(&d, "unlinked", &dockerfile(""), &[("f", "copied\n")]);
    built(&d, &plain, &["-t", "unlinked"]);
    let out = d.ok(&[
        "run",
        "--rm",
        "unlinked",
        "sh",
        "-c",
        "test -L /linked && ls /real",
    ]);
    assert_eq!(out, "f\nold\n");
}

/// `COPY --parents` keeps each source's path (from the context's root, or from a `/./`
/// pivot), globs included; `--exclude` patterns (`.dockerignore`'s rules, relative to each
/// source) leave files out, of the copy and of the cache key.
#[test]
fn copy_parents_and_exclude_layouts_and_cache() {
    let d = Daemon::start();
    d.busybox();
    let files = [
        ("a/b/c.txt", "c\n"),
        ("a/b/d.md", "d\n"),
        ("a/e.txt", "e\n"),
        ("x/y/z.txt", "z\n"),
        ("x/w/z.txt", "w\n"),
        ("top.txt", "top\n"),
    ];
    let dir = context(
        &d,
        "parents",
        "FROM busybox\n\
         COPY --parents a/b/c.txt x/*/z.txt /p1/\n\
         COPY --parents ./a/./b/*.md /p2/\n\
         COPY --parents a /p3/\n\
         COPY --exclude=*.md --exclude=b/c.txt a /e1/\n\
         COPY --exclude=**/*.txt --exclude=Dockerfile . /e2/\n\
         ADD --exclude=*.md a/b /e3/\n\
         COPY --parents --exclude=**/*.md a /e4/\n",
        &files,
    );
    built(&d, &dir, &["-t", "parents"]);
    let out = d.ok(&[
        "run",
        "--rm",
        "parents",
        "sh",
        "-c",
        "cd / && find p1 p2 p3 e1 e2 e3 e4 -type f | sort",
    ]);
    assert_eq!(
        out,
        "e1/b/d.md\ne1/e.txt\n\
         e2/a/b/d.md\n\
         e3/c.txt\n\
         e4/a/b/c.txt\ne4/a/e.txt\n\
         p1/a/b/c.txt\np1/x/w/z.txt\np1/x/y/z.txt\n\
         p2/b/d.md\n\
         p3/a/b/c.txt\np3/a/b/d.md\np3/a/e.txt\n"
    );
    // A source --parents names that does not exist fails as any missing source.
    let missing = context(
        &d,
        "parents-missing",
        "FROM busybox\nCOPY --parents a/nothere /p/\n",
        &files,
    );
    let o = build(&d, &missing, &[]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o.stderr).contains("a/nothere: file does not exist"),
        "{}",
        text(&o.stderr)
    );
    // The cache: an excluded file changed is no change; an included one is.
    let cached = context(
        &d,
        "exclude-cache",
        "FROM busybox\n\
         COPY --exclude=*.md a/b /e/\n\
         RUN cat /e/c.txt > /seen\n",
        &files,
    );
    let (first, _) = built(&d, &cached, &["-t", "excache"]);
    std::fs::write(cached.join("a/b/d.md"), "changed\n").unwrap();
    let (id, out) = built(&d, &cached, &["-t", "excache"]);
    assert_eq!(id, first);
    assert_eq!(cache_hits(&out), (0, 2), "{out}");
    std::fs::write(cached.join("a/b/c.txt"), "changed\n").unwrap();
    let (id, out) = built(&d, &cached, &["-t", "excache"]);
    assert_ne!(id, first);
    assert_eq!(cache_hits(&out), (1, 0), "{out}");
    assert_eq!(
        d.ok(&["run", "--rm", "excache", "cat", "/seen"]),
        "changed\n"
    );
}

/// A local HTTP server (`python3 -m http.server`) on an ephemeral port of 127.0.0.1,
/// serving `dir`; killed when dropped.
struct HttpServer {
    child: std::process::Child,
    port: u16,
}

impl HttpServer {
    fn start(dir: &Path) -> HttpServer {
        use std::io::BufRead;
        let mut child = Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run python3 -m http.server");
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ...", printed
        // once it listens.
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .split(" port ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        let server = HttpServer { child, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "port {port} never answered"
            );
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ADD of an http URL: named from the URL (into a directory destination), 0600 root's
/// unless `--chmod`/`--chown`, its mtime the `Last-Modified`, never extracted; downloaded
/// again at each build and cached on its content; `--checksum` verified; redirects followed;
/// a URL that fails (a closed port, a 404) fails the build naming it.
#[test]
fn add_url_downloads_checks_and_caches_on_content() {
    let d = Daemon::start();
    d.busybox();
    let served = d.dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::write(served.join("data.bin"), "downloaded\n").unwrap();
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(served.join("data.bin"))
        .unwrap()
        .set_modified(when)
        .unwrap();
    // A real gzipped tar: ADD of a URL keeps it as it is.
    let staging = d.dir.path().join("url-staging");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("inner"), "x\n").unwrap();
    let o = Command::new("tar")
        .arg("-czf")
        .arg(served.join("arch.tar.gz"))
        .arg("-C")
        .arg(&staging)
        .arg("inner")
        .output()
        .unwrap();
    assert!(o.status.success());
    let server = HttpServer::start(&served);
    let dockerfile = format!(
        "FROM busybox\n\
         ADD {data} /dl/\n\
         ADD --chmod=644 --chown=5:6 {arch} /arch/\n\
         ADD {data} /renamed\n\
         RUN cat /dl/data.bin > /seen\n",
        data = server.url("data.bin"),
        arch = server.url("arch.tar.gz"),
    );
    let dir = context(&d, "addurl", &dockerfile, &[]);
    let (first, _) = built(&d, &dir, &["-t", "addurl"]);
    let out = d.ok(&[
        "run",
        "--rm",
        "addurl",
        "sh",
        "-c",
        "cat /dl/data.bin /renamed /seen && ls /arch && \
         stat -c '%n %u:%g %a %Y' /dl/data.bin /renamed /arch/arch.tar.gz",
    ]);
    let mtime_of_arch = std::fs::metadata(served.join("arch.tar.gz"))
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(
        out,
        format!(
            "downloaded\ndownloaded\ndownloaded\narch.tar.gz\n\
             /dl/data.bin 0:0 600 1000000000\n\
             /renamed 0:0 600 1000000000\n\
             /arch/arch.tar.gz 5:6 644 {mtime_of_arch}\n"
        )
    );
    // The same content: cached; new content: that ADD and what follows run again.
    let (id, out) = built(&d, &dir, &["-t", "addurl"]);
    assert_eq!(id, first);
    assert_eq!(cache_hits(&out), (0, 4), "{out}");
    std::fs::write(served.join("data.bin"), "changed\n").unwrap();
    let (id, out) = built(&d, &dir, &["-t", "addurl"]);
    assert_ne!(id, first);
    assert_eq!(cache_hits(&out), (1, 0), "{out}");
    assert_eq!(
        d.ok(&["run", "--rm", "addurl", "cat", "/seen"]),
        "changed\n"
    );
    // --checksum: the right digest passes, another fails the build.
    let sum = |content: &str| {
        use sha2::{Digest, Sha256};
        format!("sha256:{:x}", Sha256::digest(content.as_bytes()))
    };
    let good = context(
        &d,
        "checksum-good",
        &format!(
            "FROM busybox\nADD --checksum={} {} /c\n",
            sum("changed\n"),
            server.url("data.bin")
        ),
        &[],
    );
    built(&d, &good, &["-t", "checksum-good"]);
    assert_eq!(
        d.ok(&["run", "--rm", "checksum-good", "cat", "/c"]),
        "changed\n"
    );
    let bad = context(
        &d,
        "checksum-bad",
        &format!(
            "FROM busybox\nADD --checksum={} {} /c\n",
            sum("something else\n"),
            server.url("data.bin")
        ),
        &[],
    );
    let o = build(&d, &bad, &["-t", "shouldnot:exist"]);
    assert_ne!(o.status.code(), Some(0));
    let err = text(&o.stderr);
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(err.contains(&sum("changed\n")), "{err}");
    // A redirect is followed (http.server answers /sub with a 301 to /sub/, whose
    // index.html it serves); the file is named from the URL as written.
    std::fs::create_dir_all(served.join("sub")).unwrap();
    std::fs::write(served.join("sub/index.html"), "index\n").unwrap();
    let redirected = context(
        &d,
        "url-redirect",
        &format!("FROM busybox\nADD {} /r/\n", server.url("sub")),
        &[],
    );
    built(&d, &redirected, &["-t", "redirected"]);
    assert_eq!(
        d.ok(&["run", "--rm", "redirected", "cat", "/r/sub"]),
        "index\n"
    );
    // A 404, and a closed port: the build fails naming the URL.
    let missing = server.url("nothere");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}/x", l.local_addr().unwrap().port())
    };
    for (url, why) in [(&missing, "404"), (&closed, "connection refused")] {
        let ctx = context(
            &d,
            &format!("url-fails-{why}"),
            &format!("FROM busybox\nADD {url} /x\n"),
            &[],
        );
        let o = build(&d, &ctx, &["-t", "shouldnot:exist"]);
        assert_ne!(o.status.code(), Some(0), "{url}");
        let err = text(&o.stderr);
        assert!(
            err.contains(url.as_str()) && err.contains(why),
            "{url}: {err}"
        );
    }
    let (code, _, _) = d.outcome(&["inspect", "shouldnot:exist"]);
    assert_ne!(code, 0, "a failed build tagged an image");
}

/// ADD of a URL is bounded as any ingest: past berthd's `--max-ingest-size` the download
/// stops and the build fails naming the URL and the bound, leaving no image.
#[test]
fn add_url_stops_at_the_ingest_bound() {
    let d = Daemon::start_with_args(&["--max-ingest-size", "16m"]);
    d.busybox();
    let served = d.dir.path().join("served-big");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::File::create(served.join("big"))
        .unwrap()
        .set_len(24 << 20)
        .unwrap();
    let server = HttpServer::start(&served);
    let url = server.url("big");
    let dir = context(
        &d,
        "addbig",
        &format!("FROM busybox\nADD {url} /big\n"),
        &[],
    );
    let o = build(&d, &dir, &["-t", "shouldnot:exist"]);
    assert_ne!(o.status.code(), Some(0));
    let err = text(&o.stderr);
    assert!(
        err.contains(&url) && err.contains("--max-ingest-size"),
        "{err}"
    );
    let (code, _, _) = d.outcome(&["inspect", "shouldnot:exist"]);
    assert_ne!(code, 0, "a failed build tagged an image");
}

/// ADD of an https URL goes through TLS and checks the server's certificate against the
/// system's roots (rustls-native-certs: `SSL_CERT_FILE` names them when set): a server
/// whose issuer they lack fails the build, naming the URL and the reason; one they trust
/// serves the file.
#[test]
fn add_https_url_checks_the_certificate_against_the_systems_roots() {
    let tls = tempfile::tempdir().unwrap();
    let t = |name: &str| tls.path().join(name);
    std::fs::write(t("x"), "over tls\n").unwrap();
    std::fs::write(
        t("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n",
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(tls.path())
            .output()
            .expect("run openssl");
        assert!(o.status.success(), "openssl {args:?}: {}", text(&o.stderr));
    };
    // A CA of the test's own, and a certificate for 127.0.0.1 it signs.
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=berth test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
        "-out",
        "leaf.pem",
    ]);
    // python's http.server wrapped in TLS, on an ephemeral port it prints.
    let script = "import http.server, ssl, sys, functools\n\
        h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])\n\
        s = http.server.HTTPServer(('127.0.0.1', 0), h)\n\
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
        c.load_cert_chain(sys.argv[2], sys.argv[3])\n\
        s.socket = c.wrap_socket(s.socket, server_side=True)\n\
        print('Serving HTTPS on 127.0.0.1 port', s.server_address[1], flush=True)\n\
        s.serve_forever()\n";
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(tls.path())
        .arg(t("leaf.pem"))
        .arg(t("leaf.key"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let server = HttpServer {
        child,
        port: line.trim().rsplit(' ').next().unwrap().parse().unwrap(),
    };
    let url = format!("https://127.0.0.1:{}/x", server.port);
    let dockerfile = format!("FROM busybox\nADD {url} /x\n");
    // The system's roots lack the test's CA.
    let d = Daemon::start();
    d.busybox();
    let dir = context(&d, "https", &dockerfile, &[]);
    let o = build(&d, &dir, &["-t", "shouldnot:exist"]);
    assert_ne!(o.status.code(), Some(0));
    let err = text(&o.stderr);
    assert!(
        err.contains(&url) && err.contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
    drop(d);
    // A berthd whose roots are the test's CA.
    let roots = format!("SSL_CERT_FILE={}", t("ca.pem").display());
    let d = Daemon::start_wrapped(&["env", &roots], &[]);
    d.busybox();
    let dir = context(&d, "https", &dockerfile, &[]);
    built(&d, &dir, &["-t", "over-tls"]);
    assert_eq!(
        d.ok(&["run", "--rm", "over-tls", "stat", "-c", "%a", "/x"]),
        "600\n"
    );
    assert_eq!(
        d.ok(&["run", "--rm", "over-tls", "cat", "/x"]),
        "over tls\n"
    );
}

/// `RUN --mount=type=bind` (BuildKit's semantics): from the context (a directory, read-only
/// by default), from a stage and from an image; `rw` writes go to a copy that is gone after
/// the step; a source outside the context is refused; nothing of the mounts is committed
/// (the mount points stay, empty).
#[test]
fn run_bind_mounts_from_the_context_a_stage_and_an_image() {
    let d = Daemon::start();
    d.busybox();
    let dockerfile = "FROM busybox AS tools\n\
         RUN mkdir -p /opt/tool && echo from-stage > /opt/tool/version && ln -s opt/tool /tool-link\n\
         FROM busybox\n\
         RUN --mount=type=bind,source=src,target=/src cat /src/a.txt /src/sub/b.txt > /seen-context && readlink /src/escape > /link\n\
         RUN --mount=type=bind,from=tools,source=/opt/tool,target=/tool,rw sh -c 'echo overwritten > /tool/version'\n\
         RUN --mount=type=bind,from=tools,source=/opt/tool,target=/tool cat /tool/version > /seen-stage\n\
         RUN --mount=type=bind,from=busybox,source=/bin/busybox,target=/img/busybox /img/busybox echo from-image > /seen-image\n\
         RUN --mount=type=bind,from=tools,source=/tool-link,target=/linked cat /linked/version > /seen-link\n\
         RUN --mount=target=/ro,source=src sh -c 'touch /ro/x 2>/dev/null && echo writable || echo read-only' > /ro-check\n\
         RUN --mount=type=bind,source=src,target=/rw,rw sh -c 'echo changed > /rw/a.txt && echo new > /rw/new && cat /rw/a.txt' > /rw-check\n\
         WORKDIR /w\n\
         RUN --mount=source=src/a.txt,target=again.txt cat /w/again.txt > /again-seen\n";
    let dir = context(
        &d,
        "bind-mounts",
        dockerfile,
        &[("src/a.txt", "alpha\n"), ("src/sub/b.txt", "beta\n")],
    );
    std::os::unix::fs::symlink("/etc", dir.join("src/escape")).unwrap();
    let o = build(&d, &dir, &["-t", "binds"]);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let out = d.ok(&[
        "run",
        "--rm",
        "binds",
        "sh",
        "-c",
        "cat /seen-context /link /seen-stage /seen-image /seen-link /ro-check /rw-check /again-seen",
    ]);
    assert_eq!(
        out,
        "alpha\nbeta\n/etc\nfrom-stage\nfrom-image\nfrom-stage\nread-only\nchanged\nalpha\n"
    );
    // The rw write went to the step's copy: the context's file is as it was, and nothing of
    // any mount is in the image, not even the mount points the runtime made (BuildKit's).
    assert_eq!(
        std::fs::read_to_string(dir.join("src/a.txt")).unwrap(),
        "alpha\n"
    );
    let left = d.ok(&[
        "run",
        "--rm",
        "binds",
        "sh",
        "-c",
        "for p in /w /src /tool /ro /rw /img /linked /w/again.txt; do [ -e $p ] && echo $p; done; true",
    ]);
    assert_eq!(left, "/w\n", "mount points stay");
    // The build's files are gone.
    let build_dir = d.root().join("build");
    let leftovers: Vec<_> = std::fs::read_dir(&build_dir)
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers.iter().all(|n| n == "cache-mounts"),
        "{leftovers:?}"
    );
    // A source that climbs out of the context is refused.
    let bad = context(
        &d,
        "bind-outside",
        "FROM busybox\nRUN --mount=source=../bind-mounts,target=/x true\n",
        &[],
    );
    let o = build(&d, &bad, &[]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("not found in the build context"),
        "{}",
        text(&o.stderr)
    );
}

/// A RUN with a bind mount of the context is cached on the content bound: a new mtime
/// alone hits the cache, new content runs it again.
#[test]
fn run_bind_mount_cache_follows_the_content_not_the_mtime() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "bind-cache",
        "FROM busybox\nRUN --mount=source=data,target=/data cat /data/v > /v\n",
        &[("data/v", "one\n"), ("other", "x\n")],
    );
    let run = || {
        let o = build(&d, &dir, &["-t", "bindcache"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    let out = run();
    assert_eq!(cache_hits(&out), (1, 0), "{out}");
    let f = std::fs::File::options()
        .write(true)
        .open(dir.join("data/v"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .unwrap();
    // A file outside the bound subtree changes nothing either.
    std::fs::write(dir.join("other"), "y\n").unwrap();
    let out = run();
    assert_eq!(cache_hits(&out), (0, 1), "mtime only: {out}");
    std::fs::write(dir.join("data/v"), "two\n").unwrap();
    let out = run();
    assert_eq!(cache_hits(&out), (1, 0), "content: {out}");
    assert_eq!(d.ok(&["run", "--rm", "bindcache", "cat", "/v"]), "two\n");
}

#[test]
fn locked_cache_mounts_never_wait_in_a_circle() {
    let d = Daemon::start();
    d.busybox();
    let id = std::process::id();
    // Two stages at once, locking the same two cache mounts in opposite orders; and a RUN
    // mounting one locked cache at two targets.
    let dockerfile = format!(
        "FROM busybox AS a\n\
         RUN --mount=type=cache,id=x{id},target=/x,sharing=locked \
             --mount=type=cache,id=y{id},target=/y,sharing=locked echo a >> /x/log && echo a > /a\n\
         FROM busybox AS b\n\
         RUN --mount=type=cache,id=y{id},target=/y,sharing=locked \
             --mount=type=cache,id=x{id},target=/x,sharing=locked echo b >> /x/log && echo b > /b\n\
         FROM busybox\n\
         COPY --from=a /a /a\nCOPY --from=b /b /b\n\
         RUN --mount=type=cache,id=x{id},target=/one,sharing=locked \
             --mount=type=cache,id=x{id},target=/two,sharing=locked cat /one/log /two/log > /logs\n"
    );
    let dir = context(&d, "locks", &dockerfile, &[]);
    let o = Command::new("timeout")
        .args(["120", "docker", "build", "-t", "locked"])
        .arg(&dir)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env("DOCKER_BUILDKIT", "0")
        .env_remove("DOCKER_API_VERSION")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let logs = d.ok(&["run", "--rm", "locked", "cat", "/logs"]);
    assert_eq!(logs.lines().count(), 4, "{logs}");
}

/// Starts `docker build` of `dir` and returns it once its output has a line starting with
/// `prefix`.
fn build_until_line(d: &Daemon, dir: &Path, prefix: &str) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new("docker")
        .arg("build")
        .arg(dir)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env("DOCKER_BUILDKIT", "0")
        .env_remove("DOCKER_API_VERSION")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("the build ended early").unwrap();
        if line.starts_with(prefix) {
            break;
        }
    }
    child
}

/// A client that goes away while its build waits (here for a locked cache mount another
/// build holds) stops the build there: no step of it runs afterwards, no container of it
/// appears, and the lock is not held by a build nobody waits for.
#[test]
fn a_build_whose_client_left_while_it_waited_runs_no_later_step() {
    let d = Daemon::start();
    d.busybox();
    let id = format!("left-{}", std::process::id());
    let mount = format!("--mount=type=cache,id={id},sharing=locked,target=/c");
    let holder = context(
        &d,
        "holder",
        &format!("FROM busybox\nRUN {mount} sleep 4\n"),
        &[],
    );
    let waiter = context(
        &d,
        "waiter",
        &format!("FROM busybox\nRUN {mount} touch /c/ran && sleep 600\n"),
        &[],
    );
    std::thread::scope(|s| {
        let holding = s.spawn(|| build(&d, &holder, &[]));
        berth_e2e::wait_for("the holder's RUN to run", || {
            d.ok(&["ps", "-q"]).lines().count() == 1
        });
        let mut client = build_until_line(&d, &waiter, "Step 2/2");
        client.kill().unwrap();
        client.wait().unwrap();
        let o = holding.join().unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
    });
    // The lock is free: the waiter's build, had it gone on, would run now.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(d.ok(&["ps", "-aq"]), "", "a step ran after its client left");
    // Another build takes the lock at once and sees no trace of the waiter's step.
    let probe = context(
        &d,
        "probe",
        &format!("FROM busybox\nRUN {mount} test ! -e /c/ran\n"),
        &[],
    );
    let o = Command::new("timeout")
        .args(["60", "docker", "build", "--no-cache"])
        .arg(&probe)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env("DOCKER_BUILDKIT", "0")
        .env_remove("DOCKER_API_VERSION")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
}

/// `RUN --network=host` is BuildKit's network.host entitlement: a Dockerfile alone does not
/// put a RUN in the host's network; the client grants it with `docker build --network=host`.
#[test]
fn run_network_host_needs_the_clients_grant() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "hostnet",
        "FROM busybox\n\
         RUN --network=host cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' > /ifaces\n",
        &[],
    );
    let o = build(&d, &dir, &["-t", "hostnet"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("network.host is not allowed"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    let o = build(&d, &dir, &["--network=host", "-t", "hostnet"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let ifaces = d.ok(&["run", "--rm", "hostnet", "cat", "/ifaces"]);
    assert!(ifaces.lines().any(|l| l != "lo"), "{ifaces}");
}

/// Dockerfiles that would crash berthd, freeze it or fill its memory are refused and berthd
/// goes on: substitutions nested 200000 deep (a thread's stack overflowed: berthd aborted),
/// a variable doubled line after line, a thousand and one stages, a COPY source of stars,
/// an --exclude pattern of 300000 `**/`.
#[test]
fn dockerfile_bombs_are_refused_and_berthd_stays_up() {
    let d = Daemon::start();
    d.busybox();
    let n = 200_000;
    let nested = format!(
        "FROM busybox\nENV X={}x{}\n",
        "${A:-".repeat(n),
        "}".repeat(n)
    );
    let doubled = format!(
        "FROM busybox\nENV A={}\n{}",
        "x".repeat(4096),
        "ENV A=$A$A\n".repeat(40)
    );
    let stages = "FROM busybox\n".repeat(1001);
    // A pattern of stars took exponential time (berthd's threads spun for good, its API
    // froze); a long --exclude pattern overflowed a thread's stack (berthd aborted).
    let stars = format!("FROM busybox\nCOPY {}*b /x/\n", "*a".repeat(25));
    let long_name = "a".repeat(80);
    // One ENV of 150000 pairs copied the whole environment per pair: two such builds froze
    // berthd's API for hours.
    let env_pairs = format!(
        "FROM busybox\nENV {}\n",
        (0..150_000)
            .map(|i| format!("a{i}=1"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let exclude = format!(
        "FROM busybox\nCOPY --exclude={}zz . /dst/\n",
        "**/".repeat(300_000)
    );
    for (name, dockerfile, want) in [
        ("nested", nested.as_str(), "nested more than 100 deep"),
        (
            "doubled",
            doubled.as_str(),
            "variables substitute more than",
        ),
        ("stages", stages.as_str(), "takes at most 1000"),
        ("stars", stars.as_str(), "file does not exist"),
        ("envpairs", env_pairs.as_str(), "takes at most 10000"),
        ("exclude", exclude.as_str(), "longer than the 4096"),
    ] {
        let dir = context(&d, name, dockerfile, &[(long_name.as_str(), "x\n")]);
        let o = build(&d, &dir, &["-q"]);
        assert_ne!(o.status.code(), Some(0), "{name}");
        let err = text(&o.stderr);
        assert!(
            err.contains(want),
            "{name}: {}",
            &err[..err.len().min(2000)]
        );
        assert_eq!(d.ok(&["version", "--format", "{{.Server.Os}}"]), "linux\n");
    }
}

/// A path in the image that climbs above the root stays at the root, as Go's path.Clean
/// has it: `COPY f /../../x` makes /x (not /f), `WORKDIR /../w` is /w (not /), and
/// `COPY --from` of `/../x` copies /x (not the whole root).
#[test]
fn image_paths_that_climb_above_the_root_stay_at_it() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "climb",
        "FROM busybox AS first\n\
         COPY f /../../x\n\
         WORKDIR /../w\n\
         FROM busybox\n\
         COPY --from=first /../x /y\n\
         CMD [\"sh\", \"-c\", \"cat /y; test ! -e /f && test ! -e /bin/x && echo ok\"]\n",
        &[("f", "content\n")],
    );
    let o = build(&d, &dir, &["-t", "climb"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(d.ok(&["run", "--rm", "climb"]), "content\nok\n");
    let first = build(&d, &dir, &["--target", "first", "-t", "climbfirst"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(d.ok(&["run", "--rm", "climbfirst", "pwd"]), "/w\n");
    assert_eq!(
        d.ok(&["run", "--rm", "climbfirst", "cat", "/x"]),
        "content\n"
    );
}

/// A stage that fails after an earlier one finished gives its own error and exit code (the
/// finished stage's task is not waited for twice: that panicked, and the build ended with
/// "JoinHandle polled after completion" instead).
#[test]
fn a_stage_failing_after_another_finished_gives_its_error() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "laterfail",
        "FROM busybox AS a\nRUN echo a > /a\nFROM busybox\nCOPY --from=a /a /a\n\
         RUN sleep 1 && exit 7\n",
        &[],
    );
    let o = build(&d, &dir, &[]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(7), "{}{err}", text(&o.stdout));
    assert!(err.contains("returned a non-zero code: 7"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Docker's rules for ENV: the pairs of one instruction are expanded with the environment
/// as it was before it (`ENV abc=bye def=$abc` gives def the old abc); a pair replaces its
/// name's entry in place, or is added at the end.
#[test]
fn env_pairs_see_the_environment_before_their_instruction() {
    let d = Daemon::start();
    d.busybox();
    let dir = context(
        &d,
        "envpairs",
        "FROM busybox\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n\
         ENV x=1 y=2 x=3\n",
        &[],
    );
    let o = build(&d, &dir, &["-t", "envpairs"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let env = d.ok(&["inspect", "-f", "{{json .Config.Env}}", "envpairs"]);
    let env: Vec<String> = serde_json::from_str(env.trim()).unwrap();
    let ours: Vec<&str> = env
        .iter()
        .map(String::as_str)
        .filter(|e| !e.starts_with("PATH="))
        .collect();
    assert_eq!(ours, ["abc=bye", "def=hello", "ghi=bye", "x=3", "y=2"]);
}

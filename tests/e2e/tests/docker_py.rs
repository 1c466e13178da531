//! docker-py, the Docker SDK for Python from PyPI, drives berthd: the scripts in
//! `tests/e2e/sdk/` assert what they see. `scripts/deps.sh` installs the SDK in a venv; a
//! missing one fails the test (BERTH_DOCKER_PY: that venv's python).

use berth_e2e::registry::{htpasswd, sha256_of, DockerRegistry, RegistryOptions};
use berth_e2e::{text, Daemon};
use std::process::{Command, Output};

/// Runs `tests/e2e/sdk/<script>` with `args` under docker-py's python; it must pass.
fn docker_py(script: &str, args: &[&str]) -> String {
    let python = std::env::var("BERTH_DOCKER_PY")
        .unwrap_or_else(|_| "/var/cache/berth/docker-py/bin/python".into());
    let path = format!("{}/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let out: Output = Command::new(&python)
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e} (scripts/deps.sh installs docker-py)"));
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("all checks passed"), "{stdout}");
    stdout
}

#[test]
fn docker_py_runs_binds_restarts_and_sees_refusals() {
    let d = Daemon::with_bridge(&[]);
    d.busybox();
    let bind = tempfile::tempdir().unwrap();
    docker_py("docker_py.py", &[&d.host(), bind.path().to_str().unwrap()]);
}

#[test]
fn docker_py_logs_in_pushes_and_pulls_with_the_registrys_digest() {
    let d = Daemon::start();
    d.busybox();
    let creds = tempfile::tempdir().unwrap();
    let htpasswd = htpasswd(creds.path(), "nurse", "s3cret");
    let reg = DockerRegistry::start(
        d.dir.path(),
        RegistryOptions {
            htpasswd: Some(&htpasswd),
            ..Default::default()
        },
    );
    let out = docker_py(
        "docker_py_registry.py",
        &[&d.host(), &reg.addr, "nurse", "s3cret"],
    );
    let said = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line: {out}"))
            .to_string()
    };
    // The registry's own digest of what was pushed, as skopeo reads it.
    let name = format!("{}/py/busybox", reg.addr);
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", "--creds"])
        .arg("nurse:s3cret")
        .arg(format!("docker://{name}:1"))
        .output()
        .expect("skopeo (Debian's skopeo package; scripts/deps.sh installs it)");
    assert!(raw.status.success(), "{}", text(&raw.stderr));
    let digest = sha256_of(&raw.stdout);
    assert_eq!(said("pushed "), digest);
    assert_eq!(said("pulled "), format!("{name}@{digest}"));
}

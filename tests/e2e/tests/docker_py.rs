//! docker-py, the Docker SDK for Python from PyPI, drives berthd: `tests/e2e/sdk/docker_py.py`
//! asserts what it sees. `scripts/deps.sh` installs the SDK in a venv; a missing one fails
//! the test (BERTH_DOCKER_PY: that venv's python).

use berth_e2e::{text, Daemon};
use std::process::Command;

#[test]
fn docker_py_runs_binds_restarts_and_sees_refusals() {
    let d = Daemon::with_bridge(&[]);
    d.busybox();
    let python = std::env::var("BERTH_DOCKER_PY")
        .unwrap_or_else(|_| "/var/cache/berth/docker-py/bin/python".into());
    let bind = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/sdk/docker_py.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(d.host())
        .arg(bind.path())
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e} (scripts/deps.sh installs docker-py)"));
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("all checks passed"));
}

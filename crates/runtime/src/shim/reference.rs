//! The reference implementation inside the shim: libcontainer (youki), used by the
//! `berth-shim-libcontainer` binary only ([`crate::shim_main_libcontainer`]), so that
//! `berth-shim` links neither libcontainer nor libseccomp. The differential tests compare
//! berth's own runtime against it.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::rc::Rc;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::oci_spec::runtime::Spec;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::unistd::Pid;

use super::server::{pipe, test_hang, Held, ReferenceContainer};
use crate::error::RuntimeError;
use crate::linux;
use crate::oci::{self, HostFacts};
use crate::spec::{ContainerSpec, Seccomp};
use crate::{defaults, seccomp_bpf, user};

impl ReferenceContainer for Container {
    fn pause(&mut self) -> Result<(), String> {
        Container::pause(self).map_err(|e| error_chain(&e))
    }

    fn resume(&mut self) -> Result<(), String> {
        Container::resume(self).map_err(|e| error_chain(&e))
    }

    fn delete(&mut self) -> Result<(), String> {
        Container::delete(self, true).map_err(|e| error_chain(&e))
    }
}

/// The workload executor: `execvp` of the process args. `validate` is a no-op because the
/// shim already checked the executable from the host side (with Docker's error texts).
#[derive(Clone, Default)]
struct BerthExecutor {
    /// Write end of the shim's exec-status pipe (CLOEXEC: a successful execve closes it, a
    /// failure writes its text first).
    exec_status_fd: Option<RawFd>,
    /// A precompiled seccomp program to load before exec (see `seccomp_bpf`).
    filter: Option<Rc<Vec<u8>>>,
    /// Capabilities given to the init only to load the filter; dropped before exec.
    drop_caps: Vec<u32>,
    /// The container's real capability mask.
    keep_caps: u64,
}

impl BerthExecutor {
    fn report_exec_error(&self, message: String) -> ExecutorError {
        if let Some(fd) = self.exec_status_fd {
            // SAFETY: write to the inherited pipe fd from a byte slice that outlives the call.
            unsafe { libc::write(fd, message.as_ptr().cast(), message.len()) };
        }
        ExecutorError::Other(message)
    }
}

impl Executor for BerthExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let args = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().as_ref())
            .ok_or(ExecutorError::InvalidArg)?;
        let cargs: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_bytes()).map_err(|_| ExecutorError::InvalidArg))
            .collect::<Result<_, _>>()?;
        // The shim (a Rust program) ignores SIGPIPE and may have signals blocked; the
        // workload must start with default dispositions and an empty mask, as under runc.
        crate::linux::sys::reset_signals();
        if let Some(bpf) = &self.filter {
            // Fail closed: without the filter or with the extra capabilities still held, the
            // workload must not run.
            if let Err(e) = seccomp_bpf::load_and_drop(bpf, &self.drop_caps, self.keep_caps) {
                return Err(self.report_exec_error(e));
            }
        }
        // execve, not execvp: glibc's execvp runs a shebang-less file with /bin/sh on
        // ENOEXEC, where runc (and so Docker) report "exec format error".
        let Some(path) = lookup_path(&args[0]) else {
            return Err(self.report_exec_error(format!(
                "exec: {:?}: executable file not found in $PATH",
                args[0]
            )));
        };
        let err = nix::unistd::execv(&path, &cargs).unwrap_err();
        // runc's wording; the docker CLI maps these texts to exit codes 127 / 126.
        Err(self.report_exec_error(format!(
            "exec: {:?}: {}",
            args[0],
            err.desc().to_lowercase()
        )))
    }

    fn validate(&self, _spec: &Spec) -> Result<(), ExecutorValidationError> {
        Ok(())
    }
}

/// Resolves a command like Go's `exec.LookPath` inside the container (the init's own
/// environment is the container's by now): names with a slash are taken as they are.
fn lookup_path(name: &str) -> Option<CString> {
    if name.contains('/') {
        return CString::new(name).ok();
    }
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':').find_map(|dir| {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = CString::new(format!("{dir}/{name}")).ok()?;
        let meta = std::fs::metadata(dir.to_string() + "/" + name).ok()?;
        // SAFETY: access reads a valid NUL-terminated path.
        let executable = unsafe { libc::access(candidate.as_ptr(), libc::X_OK) } == 0;
        (meta.is_file() && executable).then_some(candidate)
    })
}

/// Creates and starts the container through libcontainer (the reference implementation).
pub(crate) fn create_libcontainer(
    bundle: &Path,
    spec: &ContainerSpec,
    user: &user::ExecUser,
    caps: &[String],
    section: Option<serde_json::Value>,
    stdio: linux::Stdio,
    phase: &dyn Fn(&str),
) -> Result<(Held, Pid), RuntimeError> {
    let mut executor = BerthExecutor::default();
    let mut init_caps = caps.to_vec();
    let section = match section {
        // Docker's default profile: load a cached, precompiled filter from the executor.
        Some(section)
            if spec.seccomp == Seccomp::Default
                && seccomp_bpf::precompilable(&section)
                && std::env::var_os("BERTH_SECCOMP_LIBCONTAINER").is_none() =>
        {
            let bpf = seccomp_bpf::filter_for(&section)?;
            phase("seccomp filter ready");
            for extra in seccomp_bpf::LOADER_CAPS {
                if !caps.iter().any(|c| c == extra) {
                    init_caps.push(extra.to_string());
                    executor
                        .drop_caps
                        .extend(defaults::capability_number(extra));
                }
            }
            executor.keep_caps = seccomp_bpf::cap_mask(caps);
            executor.filter = Some(Rc::new(bpf));
            None
        }
        other => other,
    };
    let config = oci::build(spec, user, &init_caps, section, &HostFacts::probe())?;
    let config_path = bundle.join("config.json");
    std::fs::write(&config_path, serde_json::to_vec(&config).expect("json"))
        .map_err(|e| RuntimeError::io(&config_path, e))?;
    phase("config written");
    let state_root = bundle.join("lc");
    std::fs::create_dir_all(&state_root).map_err(|e| RuntimeError::io(&state_root, e))?;
    // A leftover state directory (a shim that died mid-way) makes build() fail.
    let _ = std::fs::remove_dir_all(state_root.join(&spec.id));
    let (exec_r, exec_w) = pipe()?;
    executor.exec_status_fd = Some(exec_w.as_raw_fd());
    let start_error = |e: &dyn std::error::Error| RuntimeError::Start(error_chain(e));
    let mut container = ContainerBuilder::new(spec.id.clone(), SyscallType::Linux)
        .with_root_path(&state_root)
        .map_err(|e| start_error(&e))?
        .with_executor(executor)
        .with_stdin(stdio.stdin)
        .with_stdout(stdio.stdout)
        .with_stderr(stdio.stderr)
        .as_init(bundle)
        .with_systemd(false)
        .build()
        .map_err(|e| start_error(&e))?;
    phase("built");
    test_hang();
    // The init holds its own copy now; ours must go so that EOF means "exec'd".
    drop(exec_w);
    let pid = container
        .pid()
        .ok_or_else(|| RuntimeError::Start("container has no pid after create".to_string()))?;
    if let Err(e) = prepare_and_start(&mut container, pid, spec, bundle, exec_r) {
        // Never leave a created container behind: kill it, remove its cgroups and state.
        let _ = container.delete(true);
        return Err(e);
    }
    Ok((Held::Reference(Box::new(container)), pid))
}

/// The steps between create and a running workload: oom_score_adj, the pid file, start.
fn prepare_and_start(
    container: &mut Container,
    pid: Pid,
    spec: &ContainerSpec,
    bundle: &Path,
    exec_status: OwnedFd,
) -> Result<(), RuntimeError> {
    // oom_score_adj is set on the waiting init rather than through the spec: libcontainer
    // would write it to the shim itself first, and the shim cannot lower it back (that needs
    // CAP_SYS_RESOURCE), making the shim as likely an OOM victim as the container.
    if let Some(adj) = spec.process.oom_score_adj {
        let path = format!("/proc/{pid}/oom_score_adj");
        std::fs::write(&path, adj.to_string()).map_err(|e| RuntimeError::io(&path, e))?;
    }
    let pid_path = bundle.join("pid");
    crate::replace(&pid_path, pid.as_raw().to_string().as_bytes())
        .map_err(|e| RuntimeError::io(&pid_path, e))?;
    container
        .start()
        .map_err(|e| RuntimeError::Start(error_chain(&e)))?;
    // Wait for the workload's execve: EOF means it happened, text is why it did not.
    let mut message = String::new();
    let _ = File::from(exec_status).read_to_string(&mut message);
    if message.is_empty() {
        Ok(())
    } else if message.starts_with("exec: ")
        && (message.ends_with("no such file or directory")
            || message.ends_with("permission denied"))
    {
        Err(RuntimeError::Exec(message))
    } else {
        Err(RuntimeError::Start(message))
    }
}

/// Joins an error and its sources with ": " (libcontainer nests the useful part).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

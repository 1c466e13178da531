//! Seccomp profiles (Docker's default or `seccomp=FILE`) compiled to BPF once per (profile,
//! capability set, architecture, libseccomp version) and cached on disk; the container init
//! only loads the program.
//!
//! Why: libcontainer compiles the filter with libseccomp inside every container's init, about
//! 13 ms per container (reference/crates.md §1b); loading a cached program costs 0.2 ms. The
//! program is libseccomp's binary tree of syscall numbers (`SCMP_FLTATR_CTL_OPTIMIZE` 2): at
//! load the kernel runs the filter once per syscall number and architecture to fill its action
//! cache, 0.54 ms for the default linear chain of Docker's profile and 0.21 ms for the tree.
//! The verdicts are libseccomp's either way; tests/differential.rs compares them with
//! libcontainer compiling the same profiles itself.
//!
//! berth's own runtime loads the program while the init still holds CAP_SYS_ADMIN (runc's
//! order; after the capability drop with `no_new_privs`). The libcontainer reference loads
//! Docker's default profile from a workload executor that runs after libcontainer dropped
//! capabilities, so its shim gives the init CAP_SYS_ADMIN (and CAP_SETPCAP) as *temporary*
//! extras ([`LOADER_CAPS`]); the executor loads the filter, drops the extras from the bounding,
//! effective and permitted sets, and only then execs. Any failure there aborts the init (fail
//! closed: the workload never runs with the extras). `BERTH_SECCOMP_LIBCONTAINER=1` makes it
//! compile the profile itself instead.
//!
//! The cache lives in `$BERTH_SECCOMP_CACHE` or `/run/berth/seccomp` (0700, root-owned; files
//! are only trusted when root-owned and not group/world-writable). The key is a hash of the
//! exact OCI filter section, libseccomp's version and the program layout, so a stale entry
//! cannot be picked up.

use std::collections::hash_map::DefaultHasher;
use std::fs::{DirBuilder, File};
use std::hash::{Hash, Hasher};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::FromRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use serde::Deserialize;
use serde_json::Value;

use crate::error::RuntimeError;

/// Capabilities the init needs to load a filter and drop the extras afterwards.
pub(crate) const LOADER_CAPS: [&str; 2] = ["CAP_SYS_ADMIN", "CAP_SETPCAP"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Section {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    names: Vec<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<Arg>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

fn err(msg: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Seccomp(msg.to_string())
}

/// True when the section can be compiled ahead (no notify actions, no flags).
pub(crate) fn precompilable(section: &Value) -> bool {
    let text = section.to_string();
    !text.contains("SCMP_ACT_NOTIFY") && section.get("flags").is_none()
}

/// The BPF program for `section`, from the cache or freshly compiled (and then cached).
pub(crate) fn filter_for(section: &Value) -> Result<Vec<u8>, RuntimeError> {
    Ok(cached_or_compiled(section)?.0)
}

/// libseccomp's layout of the program: 2 is a binary tree of syscall numbers per architecture.
const OPTIMIZE: u32 = 2;

/// The revision of [`compile`]: part of the cache key, so that a berth whose compiler
/// changed never loads a program an older berth left in the cache (it lives until reboot).
/// 2: syscalls libseccomp cannot name are added by number.
const COMPILER_REVISION: u32 = 2;

/// The cache key of `section`: its exact text, libseccomp's version and the compiler's.
fn key_of(section: &Value) -> String {
    let text = section.to_string();
    let version = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    version.hash(&mut hasher);
    OPTIMIZE.hash(&mut hasher);
    COMPILER_REVISION.hash(&mut hasher);
    format!("{:016x}.bpf", hasher.finish())
}

/// The program and, when it is in the cache, its file there.
fn cached_or_compiled(section: &Value) -> Result<(Vec<u8>, Option<PathBuf>), RuntimeError> {
    let key = key_of(section);
    let dir = cache_dir();
    let path = dir.join(&key);
    if let Some(bpf) = read_cached(&path) {
        return Ok((bpf, Some(path)));
    }
    let bpf = compile(section)?;
    // The cache is an optimisation: failing to write it is not an error.
    // Parents get the default mode (the engine shares /run/berth); only the leaf is 0700.
    if let Some(parent) = dir.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = DirBuilder::new().mode(0o700).create(&dir);
    if trusted_dir(&dir) {
        // A tmp name of our own: shims starting at once may compile the same key.
        let tmp = dir.join(format!("{key}.{}.tmp", std::process::id()));
        if crate::write_atomic(&tmp, &bpf).is_ok() && std::fs::rename(&tmp, &path).is_ok() {
            return Ok((bpf, Some(path)));
        }
        let _ = std::fs::remove_file(&tmp);
    }
    Ok((bpf, None))
}

/// A file holding the BPF program of `section` for a shim to load: the cache entry, or
/// `<bundle>/seccomp.bpf` when the cache cannot be written. Compiled at most once per
/// (profile, capability set, architecture, libseccomp version) and per process: the files
/// found are remembered in memory, so berthd converts and hashes a profile only the first
/// time it sees a (setting, capability set).
pub(crate) fn filter_file(
    memo_key: &str,
    section: impl FnOnce() -> Result<Value, RuntimeError>,
    bundle: &std::path::Path,
) -> Result<PathBuf, RuntimeError> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static MEMO: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let memo = MEMO.get_or_init(Default::default);
    if let Some(path) = memo.lock().expect("memo lock").get(memo_key) {
        // Still there (the shim reads and checks the program itself; reading it here too
        // would be the same I/O twice on every start).
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
            return Ok(path.clone());
        }
    }
    let section = section()?;
    if !precompilable(&section) {
        return Err(err("notify actions and filter flags are not supported"));
    }
    match cached_or_compiled(&section)? {
        (_, Some(path)) => {
            memo.lock()
                .expect("memo lock")
                .insert(memo_key.to_string(), path.clone());
            Ok(path)
        }
        (bpf, None) => {
            let path = bundle.join("seccomp.bpf");
            crate::replace(&path, &bpf).map_err(|e| RuntimeError::io(&path, e))?;
            Ok(path)
        }
    }
}

/// Reads a program written by [`filter_file`]: a root-owned file, not writable by others, in a
/// directory of the same kind, holding a whole program.
pub(crate) fn read_filter(path: &std::path::Path) -> Result<Vec<u8>, RuntimeError> {
    read_cached(path).ok_or_else(|| {
        err(format!(
            "the compiled filter {} is missing or not trusted",
            path.display()
        ))
    })
}

fn cache_dir() -> PathBuf {
    std::env::var_os("BERTH_SECCOMP_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/berth/seccomp"))
}

fn trusted_dir(dir: &std::path::Path) -> bool {
    std::fs::symlink_metadata(dir)
        .map(|m| m.is_dir() && m.uid() == 0 && m.mode() & 0o022 == 0)
        .unwrap_or(false)
}

fn read_cached(path: &std::path::Path) -> Option<Vec<u8>> {
    if !trusted_dir(path.parent()?) {
        return None;
    }
    let mut f = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let meta = f.metadata().ok()?;
    if meta.uid() != 0 || meta.mode() & 0o022 != 0 || meta.len() == 0 || meta.len() % 8 != 0 {
        return None;
    }
    let mut bpf = Vec::with_capacity(meta.len() as usize);
    f.read_to_end(&mut bpf).ok()?;
    complete_program(&bpf).then_some(bpf)
}

/// A whole classic-BPF program: 8-byte instructions, the last one a `ret` (BPF_RET = 0x06).
fn complete_program(bpf: &[u8]) -> bool {
    !bpf.is_empty()
        && bpf.len() & 7 == 0
        && bpf.len() / 8 <= u16::MAX as usize
        && bpf[bpf.len() - 8] & 0x07 == 0x06
}

fn action(name: &str, errno: Option<u32>) -> Result<ScmpAction, RuntimeError> {
    let errno = errno.map(|e| e as i32).unwrap_or(libc::EPERM);
    Ok(match name {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        "SCMP_ACT_TRAP" => ScmpAction::Trap,
        "SCMP_ACT_ERRNO" => ScmpAction::Errno(errno),
        "SCMP_ACT_TRACE" => ScmpAction::Trace(errno as u16),
        "SCMP_ACT_LOG" => ScmpAction::Log,
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        other => return Err(err(format!("unsupported action {other}"))),
    })
}

/// Compiles the OCI section with libseccomp, rule for rule as libcontainer 0.7 does (unknown
/// syscall names skipped, rules equal to the default action skipped, repeated argument
/// indexes split into separate rules).
/// Syscalls of Docker's profile that libseccomp releases before 2.6 cannot name, with their
/// numbers: Linux numbers every syscall from 424 on alike on all architectures but alpha and
/// mips (x32 adds its bit), and `uretprobe` is x86_64's alone. A name libseccomp knows is
/// always resolved by libseccomp; this table only fills in for an older one, so Docker's
/// current profile allows them (mseal, statmount, ...) instead of denying them by default.
const LATE_SYSCALLS: [(&str, i32); 16] = [
    ("cachestat", 451),
    ("fchmodat2", 452),
    ("map_shadow_stack", 453),
    ("futex_wake", 454),
    ("futex_wait", 455),
    ("futex_requeue", 456),
    ("statmount", 457),
    ("listmount", 458),
    ("lsm_get_self_attr", 459),
    ("lsm_set_self_attr", 460),
    ("lsm_list_modules", 461),
    ("mseal", 462),
    ("setxattrat", 463),
    ("getxattrat", 464),
    ("listxattrat", 465),
    ("removexattrat", 466),
];

/// The native architecture's number of a syscall libseccomp cannot name (see
/// [`LATE_SYSCALLS`]).
fn late_syscall(name: &str, arch: ScmpArch) -> Option<i32> {
    let unified = matches!(
        arch,
        ScmpArch::X8664
            | ScmpArch::X86
            | ScmpArch::Aarch64
            | ScmpArch::Arm
            | ScmpArch::Riscv64
            | ScmpArch::S390X
            | ScmpArch::S390
            | ScmpArch::Ppc64Le
            | ScmpArch::Ppc64
            | ScmpArch::Ppc
    );
    if name == "uretprobe" {
        return (arch == ScmpArch::X8664).then_some(335);
    }
    unified
        .then(|| {
            LATE_SYSCALLS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, nr)| *nr)
        })
        .flatten()
}

/// A filter context for `arches` alone (the native one when empty).
fn context(default: ScmpAction, arches: &[ScmpArch]) -> Result<ScmpFilterContext, RuntimeError> {
    let native = ScmpArch::native();
    let mut ctx = ScmpFilterContext::new(default).map_err(err)?;
    for arch in arches {
        ctx.add_arch(*arch).map_err(err)?;
    }
    if !arches.is_empty() && !arches.contains(&native) {
        ctx.remove_arch(native).map_err(err)?;
    }
    ctx.set_ctl_nnp(false).map_err(err)?;
    ctx.set_ctl_optimize(OPTIMIZE).map_err(err)?;
    Ok(ctx)
}

/// Adds the section's rules to `ctx`. `exact_arch`: the context holds this one (native)
/// architecture alone, so a syscall libseccomp cannot name is added by its number.
fn add_rules(
    ctx: &mut ScmpFilterContext,
    s: &Section,
    default: ScmpAction,
    exact_arch: Option<ScmpArch>,
) -> Result<(), RuntimeError> {
    for rule in &s.syscalls {
        let act = action(&rule.action, rule.errno_ret)?;
        if act == default {
            continue;
        }
        let comparators: Vec<ScmpArgCompare> = rule
            .args
            .iter()
            .map(|a| {
                let op = match a.op.as_str() {
                    "SCMP_CMP_MASKED_EQ" => ScmpCompareOp::MaskedEqual(a.value_two),
                    other => ScmpCompareOp::from_str(other).map_err(err)?,
                };
                Ok(ScmpArgCompare::new(a.index, op, a.value))
            })
            .collect::<Result<_, RuntimeError>>()?;
        let mut indexes: Vec<u32> = rule.args.iter().map(|a| a.index).collect();
        indexes.sort_unstable();
        indexes.dedup();
        // Two conditions on one argument are alternatives: a rule each.
        let groups: Vec<&[ScmpArgCompare]> = if comparators.is_empty() {
            vec![&[]]
        } else if indexes.len() != rule.args.len() {
            comparators.iter().map(std::slice::from_ref).collect()
        } else {
            vec![&comparators]
        };
        for name in &rule.names {
            let (sc, exact) = match ScmpSyscall::from_name(name) {
                Ok(sc) => (sc, false),
                Err(_) => match exact_arch.and_then(|arch| late_syscall(name, arch)) {
                    Some(nr) => (ScmpSyscall::from(nr), true),
                    // A syscall this libseccomp cannot name on an architecture without a
                    // known number: it stays at the default action (denied).
                    None => continue,
                },
            };
            for conditions in &groups {
                match (exact, conditions.is_empty()) {
                    (false, true) => ctx.add_rule(act, sc),
                    (false, false) => ctx.add_rule_conditional(act, sc, conditions),
                    (true, true) => ctx.add_rule_exact(act, sc),
                    (true, false) => ctx.add_rule_conditional_exact(act, sc, conditions),
                }
                .map_err(err)?;
            }
        }
    }
    Ok(())
}

fn compile(section: &Value) -> Result<Vec<u8>, RuntimeError> {
    let s: Section = serde_json::from_value(section.clone()).map_err(err)?;
    if !s.flags.is_empty() {
        return Err(err("filter flags are not supported ahead of time"));
    }
    let default = action(&s.default_action, s.default_errno_ret)?;
    let arches = s
        .architectures
        .iter()
        .map(|a| ScmpArch::from_str(a).map_err(err))
        .collect::<Result<Vec<_>, _>>()?;
    let native = ScmpArch::native();
    // The native architecture in a context of its own (where a syscall can be added by
    // number), the others in a second one, merged: libseccomp adds rules by number only to
    // a context of one architecture.
    let ctx = if arches.is_empty() || arches.contains(&native) {
        let mut ctx = context(default, &[])?;
        add_rules(&mut ctx, &s, default, Some(native))?;
        let others: Vec<ScmpArch> = arches.iter().copied().filter(|a| *a != native).collect();
        if !others.is_empty() {
            let mut rest = context(default, &others)?;
            add_rules(&mut rest, &s, default, None)?;
            ctx.merge(rest).map_err(err)?;
        }
        ctx
    } else {
        let mut ctx = context(default, &arches)?;
        add_rules(&mut ctx, &s, default, None)?;
        ctx
    };
    // SAFETY: memfd_create with a static NUL-terminated name; the fd is owned by the File.
    let fd = unsafe { libc::memfd_create(c"berth-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned only here.
    let mut file = unsafe { File::from_raw_fd(fd) };
    ctx.export_bpf(&file).map_err(err)?;
    file.seek(SeekFrom::Start(0)).map_err(err)?;
    let mut bpf = Vec::new();
    file.read_to_end(&mut bpf).map_err(err)?;
    if !complete_program(&bpf) {
        return Err(err("libseccomp exported an invalid program"));
    }
    Ok(bpf)
}

/// Bit mask of capability names (unknown names are ignored; they were validated earlier).
pub(crate) fn cap_mask(caps: &[String]) -> u64 {
    caps.iter()
        .filter_map(|c| crate::defaults::capability_number(c))
        .fold(0, |m, bit| m | (1u64 << bit))
}

/// In the container init, right before execve: load `bpf`, drop `extras` from the bounding
/// set, and set effective = permitted = `keep`, inheritable = 0.
pub(crate) fn load_and_drop(bpf: &[u8], extras: &[u32], keep: u64) -> Result<(), String> {
    use crate::linux::sys;
    sys::seccomp_load(bpf).map_err(|e| format!("load seccomp filter: {e}"))?;
    for cap in extras {
        sys::prctl(libc::PR_CAPBSET_DROP, *cap as libc::c_ulong)
            .map_err(|e| format!("drop capability {cap}: {e}"))?;
    }
    sys::capset(keep, keep).map_err(|e| format!("set capabilities: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_profile_compiles_to_a_program() {
        let caps: Vec<String> = crate::defaults::capabilities()
            .into_iter()
            .map(String::from)
            .collect();
        let section = crate::defaults::default_seccomp(&caps).unwrap();
        assert!(precompilable(&section));
        let bpf = compile(&section).unwrap();
        assert!(bpf.len() > 8 * 100, "{} bytes", bpf.len());
    }

    #[test]
    fn syscalls_libseccomp_cannot_name_are_compiled_by_number() {
        let section = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["mseal", "statmount", "read"], "action": "SCMP_ACT_ALLOW"}],
        });
        let bpf = compile(&section).unwrap();
        // BPF_JMP|BPF_JEQ|BPF_K instructions and their constants.
        let compared: Vec<u32> = bpf
            .chunks_exact(8)
            .filter(|i| u16::from_ne_bytes([i[0], i[1]]) == 0x15)
            .map(|i| u32::from_ne_bytes([i[4], i[5], i[6], i[7]]))
            .collect();
        if ScmpArch::native() == ScmpArch::X8664 {
            for nr in [462u32, 457, 0] {
                assert!(
                    compared.contains(&nr),
                    "no test of syscall {nr}: {compared:?}"
                );
            }
        }
    }

    #[test]
    fn cache_round_trip_requires_a_trusted_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bpf");
        let mut prog = [0u8; 16];
        prog[8] = 0x06;
        std::fs::write(&path, prog).unwrap();
        // tempdir is 0700 and owned by the test's user
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert_eq!(read_cached(&path).is_some(), root);
        std::fs::write(&path, [0u8; 7]).unwrap();
        assert!(read_cached(&path).is_none());
    }

    #[test]
    fn cap_mask_of_defaults() {
        let caps: Vec<String> = crate::defaults::capabilities()
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(cap_mask(&caps), 0xa80425fb);
    }
}

//! Docker's runtime defaults: capabilities, masked and read-only paths, device rules, and the
//! conversion of a Docker-format seccomp profile into an OCI `linux.seccomp` section.
//!
//! Sources: moby `oci/defaults.go`, `oci/caps/{defaults,utils}.go`,
//! `profiles/seccomp/seccomp_linux.go` (see `reference/docker-runtime-defaults.md`).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::RuntimeError;

/// Docker's default profile, as Docker ships it (`profiles/seccomp/default.json`).
pub const DEFAULT_SECCOMP_PROFILE: &str = include_str!("docker-seccomp-default.json");

/// Every capability Linux knows, indexed by its number (`include/uapi/linux/capability.h`).
const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's 14 default capabilities (`oci/caps/defaults.go`), in Docker's order.
pub fn capabilities() -> Vec<&'static str> {
    vec![
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]
}

/// Docker's masked paths. Paths missing on the running kernel are skipped when the spec is
/// built.
pub fn masked_paths() -> Vec<&'static str> {
    vec![
        "/proc/asound",
        "/proc/acpi",
        "/proc/interrupts",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ]
}

/// Docker's read-only paths (bind-mounted onto themselves, read-only).
pub fn readonly_paths() -> Vec<&'static str> {
    vec![
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]
}

/// Docker's device cgroup rules: deny everything, then allow `mknod` of any device and use of
/// null, zero, full, random, urandom, tty, console, ptmx and the pts devices. Always emitted:
/// libcontainer treats an empty list as "allow all" on cgroup v1.
pub(crate) fn device_rules(privileged: bool) -> Value {
    if privileged {
        return json!([{ "allow": true, "access": "rwm" }]);
    }
    let dev = |typ: &str, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut rule = json!({ "allow": true, "type": typ, "access": access });
        if let Some(major) = major {
            rule["major"] = json!(major);
        }
        if let Some(minor) = minor {
            rule["minor"] = json!(minor);
        }
        rule
    };
    json!([
        { "allow": false, "access": "rwm" },
        dev("c", None, None, "m"),
        dev("b", None, None, "m"),
        dev("c", Some(1), Some(3), "rwm"),
        dev("c", Some(1), Some(5), "rwm"),
        dev("c", Some(1), Some(7), "rwm"),
        dev("c", Some(1), Some(8), "rwm"),
        dev("c", Some(1), Some(9), "rwm"),
        dev("c", Some(5), Some(0), "rwm"),
        dev("c", Some(5), Some(1), "rwm"),
        dev("c", Some(5), Some(2), "rwm"),
        dev("c", Some(136), None, "rwm"),
    ])
}

/// The capabilities in the calling process's bounding set (`CapBnd` of `/proc/self/status`):
/// what `--privileged` and `--cap-add ALL` grant. Read once per process.
pub fn host_capabilities() -> Vec<&'static str> {
    static HOST: OnceLock<Vec<&'static str>> = OnceLock::new();
    HOST.get_or_init(|| {
        let mask = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("CapBnd:"))
                    .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            })
            .unwrap_or(0);
        caps_from_mask(mask)
    })
    .clone()
}

/// The number of a capability (`CAP_SYS_ADMIN` -> 21).
pub(crate) fn capability_number(name: &str) -> Option<u32> {
    ALL_CAPABILITIES
        .iter()
        .position(|c| *c == name)
        .map(|i| i as u32)
}

fn caps_from_mask(mask: u64) -> Vec<&'static str> {
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1u64 << bit) != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// Normalises a capability name Docker's way: upper case, `CAP_` prefix, `ALL` kept.
fn normalize_capability(name: &str) -> Result<String, RuntimeError> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if !ALL_CAPABILITIES.contains(&full.as_str()) {
        return Err(RuntimeError::UnknownCapability(full));
    }
    Ok(full)
}

/// Checks one `--cap-add`/`--cap-drop` entry as Docker does at create time
/// (`NormalizeLegacyCapabilities`): any case, with or without `CAP_`, or `ALL`; an unknown
/// name is [`RuntimeError::UnknownCapability`], one missing from this host's bounding set
/// [`RuntimeError::UnavailableCapability`].
pub fn validate_capability(name: &str) -> Result<(), RuntimeError> {
    validate_capability_with(name, &host_capabilities())
}

fn validate_capability_with(name: &str, host: &[&str]) -> Result<(), RuntimeError> {
    let full = normalize_capability(name)?;
    if full != "ALL" && !host.contains(&full.as_str()) {
        return Err(RuntimeError::UnavailableCapability(full));
    }
    Ok(())
}

/// The final capability set for a container (Docker's `TweakCapabilities`): privileged gets
/// every capability the shim holds; `--cap-add ALL` gets those minus `--cap-drop`;
/// `--cap-drop ALL` keeps only `--cap-add`; otherwise the 14 defaults minus drops plus adds.
pub fn resolve_capabilities(
    add: &[String],
    drop: &[String],
    privileged: bool,
) -> Result<Vec<String>, RuntimeError> {
    resolve_capabilities_with(add, drop, privileged, &host_capabilities())
}

fn resolve_capabilities_with(
    add: &[String],
    drop: &[String],
    privileged: bool,
    host: &[&str],
) -> Result<Vec<String>, RuntimeError> {
    let owned = |caps: &[&str]| caps.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    if privileged {
        return Ok(owned(host));
    }
    let drop = drop
        .iter()
        .map(|c| normalize_capability(c))
        .collect::<Result<Vec<_>, _>>()?;
    let add = add
        .iter()
        .map(|c| normalize_capability(c))
        .collect::<Result<Vec<_>, _>>()?;
    let all = |v: &[String]| v.iter().any(|c| c == "ALL");
    let mut caps: Vec<String> = if all(&add) {
        owned(host)
            .into_iter()
            .filter(|c| !drop.contains(c))
            .collect()
    } else if all(&drop) {
        add
    } else {
        let mut caps: Vec<String> = capabilities()
            .into_iter()
            .map(str::to_string)
            .filter(|c| !drop.contains(c))
            .collect();
        caps.extend(add);
        caps
    };
    let mut seen = BTreeSet::new();
    caps.retain(|c| seen.insert(c.clone()));
    if let Some(missing) = caps.iter().find(|c| !host.contains(&c.as_str())) {
        return Err(RuntimeError::UnavailableCapability(missing.clone()));
    }
    Ok(caps)
}

/// A profile in Docker's seccomp JSON format (the fields berth uses).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerProfile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    arch_map: Vec<DockerArchMap>,
    #[serde(default)]
    syscalls: Vec<DockerSyscall>,
    #[serde(default)]
    flags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerSyscall {
    #[serde(default)]
    name: String,
    #[serde(default)]
    names: Vec<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<DockerArg>>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerArg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// The host facts a profile is filtered against.
#[derive(Debug, Clone)]
pub(crate) struct SeccompHost {
    /// Go's name of the architecture (`amd64`, `arm64`, ...), as used in `arches` filters.
    pub go_arch: &'static str,
    /// libseccomp's name of the native architecture (`SCMP_ARCH_X86_64`).
    pub scmp_arch: &'static str,
    /// Running kernel (major, minor).
    pub kernel: (u32, u32),
}

impl SeccompHost {
    pub(crate) fn current() -> Self {
        let (go_arch, scmp_arch) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", "SCMP_ARCH_X86_64"),
            "aarch64" => ("arm64", "SCMP_ARCH_AARCH64"),
            "x86" => ("386", "SCMP_ARCH_X86"),
            "arm" => ("arm", "SCMP_ARCH_ARM"),
            "s390x" => ("s390x", "SCMP_ARCH_S390X"),
            "riscv64" => ("riscv64", "SCMP_ARCH_RISCV64"),
            "powerpc64" => ("ppc64le", "SCMP_ARCH_PPC64LE"),
            other => (other, "SCMP_ARCH_NATIVE"),
        };
        SeccompHost {
            go_arch,
            scmp_arch,
            kernel: kernel_version(),
        }
    }
}

fn kernel_version() -> (u32, u32) {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    parse_kernel_version(&release).unwrap_or((0, 0))
}

fn parse_kernel_version(s: &str) -> Option<(u32, u32)> {
    let mut parts = s.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// Converts a Docker-format seccomp profile into an OCI `linux.seccomp` section for a container
/// holding `capabilities`, on the running host. Rules whose `includes` do not match (a missing
/// capability, another architecture, an older kernel) or whose `excludes` match are dropped.
pub fn seccomp_to_oci(profile: &str, capabilities: &[String]) -> Result<Value, RuntimeError> {
    let profile: DockerProfile =
        serde_json::from_str(profile).map_err(|e| RuntimeError::Seccomp(e.to_string()))?;
    convert_profile(&profile, capabilities, &SeccompHost::current())
}

/// Checks a Docker-format seccomp profile as `--security-opt seccomp=FILE` sends it: it must
/// parse and convert (the message is the decoder's, for "decoding seccomp profile failed: ").
pub fn validate_seccomp_profile(profile: &str) -> Result<(), String> {
    let parsed: DockerProfile = serde_json::from_str(profile).map_err(|e| e.to_string())?;
    let all: Vec<String> = capabilities().iter().map(|c| c.to_string()).collect();
    convert_profile(&parsed, &all, &SeccompHost::current())
        .map(drop)
        .map_err(|e| match e {
            RuntimeError::Seccomp(m) => m,
            other => other.to_string(),
        })
}

/// The rlimits `--ulimit` can name (Docker's names, without `RLIMIT_`), with their numbers.
pub(crate) const RLIMITS: [(&str, u32); 16] = [
    ("as", libc::RLIMIT_AS),
    ("core", libc::RLIMIT_CORE),
    ("cpu", libc::RLIMIT_CPU),
    ("data", libc::RLIMIT_DATA),
    ("fsize", libc::RLIMIT_FSIZE),
    ("locks", libc::RLIMIT_LOCKS),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("msgqueue", libc::RLIMIT_MSGQUEUE),
    ("nice", libc::RLIMIT_NICE),
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("rss", libc::RLIMIT_RSS),
    ("rtprio", libc::RLIMIT_RTPRIO),
    ("rttime", libc::RLIMIT_RTTIME),
    ("sigpending", libc::RLIMIT_SIGPENDING),
    ("stack", libc::RLIMIT_STACK),
];

/// The resource number of a `--ulimit` name (`nofile`, `RLIMIT_NOFILE`, any case).
pub(crate) fn rlimit_resource(name: &str) -> Option<u32> {
    let name = name.to_ascii_lowercase();
    let name = name.strip_prefix("rlimit_").unwrap_or(&name);
    RLIMITS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

/// Docker's message for a `--ulimit` name that is not an rlimit.
pub fn validate_rlimit_name(name: &str) -> Result<(), String> {
    rlimit_resource(name)
        .map(drop)
        .ok_or_else(|| format!("invalid ulimit type: {name}"))
}

/// The OCI section for Docker's default profile; the parsed profile is cached per process.
pub(crate) fn default_seccomp(capabilities: &[String]) -> Result<Value, RuntimeError> {
    static PROFILE: OnceLock<DockerProfile> = OnceLock::new();
    let profile = PROFILE.get_or_init(|| {
        serde_json::from_str(DEFAULT_SECCOMP_PROFILE).expect("embedded default profile parses")
    });
    convert_profile(profile, capabilities, &SeccompHost::current())
}

fn convert_profile(
    profile: &DockerProfile,
    capabilities: &[String],
    host: &SeccompHost,
) -> Result<Value, RuntimeError> {
    if !profile.architectures.is_empty() && !profile.arch_map.is_empty() {
        return Err(RuntimeError::Seccomp(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'".into(),
        ));
    }
    let mut arches: Vec<String> = profile.architectures.clone();
    for map in &profile.arch_map {
        if map.architecture == host.scmp_arch {
            arches.push(map.architecture.clone());
            arches.extend(map.sub_architectures.iter().flatten().cloned());
        }
    }
    let has_cap = |c: &String| capabilities.iter().any(|have| have == c);
    let kernel_at_least = |v: &str| {
        parse_kernel_version(v)
            .map(|min| host.kernel >= min)
            .unwrap_or(false)
    };
    let mut syscalls = Vec::new();
    for call in &profile.syscalls {
        if !call.name.is_empty() && !call.names.is_empty() {
            return Err(RuntimeError::Seccomp(
                "use either 'name' or 'names', not both".into(),
            ));
        }
        let ex = &call.excludes;
        if ex.arches.iter().any(|a| a == host.go_arch)
            || ex.caps.iter().any(has_cap)
            || ex.min_kernel.as_deref().is_some_and(kernel_at_least)
        {
            continue;
        }
        let inc = &call.includes;
        if (!inc.arches.is_empty() && !inc.arches.iter().any(|a| a == host.go_arch))
            || !inc.caps.iter().all(has_cap)
            || inc
                .min_kernel
                .as_deref()
                .is_some_and(|v| !kernel_at_least(v))
        {
            continue;
        }
        let names: Vec<&String> = if call.name.is_empty() {
            call.names.iter().collect()
        } else {
            vec![&call.name]
        };
        let mut rule = json!({ "names": names, "action": call.action });
        if let Some(errno) = call.errno_ret {
            rule["errnoRet"] = json!(errno);
        }
        if let Some(args) = &call.args {
            rule["args"] = args
                .iter()
                .map(|a| json!({ "index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op }))
                .collect();
        }
        syscalls.push(rule);
    }
    let mut section = json!({
        "defaultAction": profile.default_action,
        "architectures": arches,
        "syscalls": syscalls,
    });
    if let Some(errno) = profile.default_errno_ret {
        section["defaultErrnoRet"] = json!(errno);
    }
    if !profile.flags.is_empty() {
        section["flags"] = json!(profile.flags);
    }
    Ok(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|c| c.to_string()).collect()
    }

    const HOST: &[&str] = &ALL_CAPABILITIES;

    #[test]
    fn default_capabilities_are_dockers_fourteen() {
        let caps = resolve_capabilities_with(&[], &[], false, HOST).unwrap();
        assert_eq!(caps.len(), 14);
        let mask: u64 = caps
            .iter()
            .map(|c| 1u64 << ALL_CAPABILITIES.iter().position(|a| a == c).unwrap())
            .sum();
        assert_eq!(mask, 0xa80425fb);
    }

    #[test]
    fn cap_add_accepts_any_case_and_missing_prefix() {
        let caps = resolve_capabilities_with(&s(&["sys_admin", "CAP_NET_ADMIN"]), &[], false, HOST)
            .unwrap();
        assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert_eq!(caps.len(), 16);
    }

    #[test]
    fn unknown_capability_is_rejected_with_dockers_text() {
        let err = resolve_capabilities_with(&s(&["foo"]), &[], false, HOST).unwrap_err();
        assert_eq!(err.to_string(), r#"unknown capability: "CAP_FOO""#);
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        let err = resolve_capabilities_with(&[], &s(&["CAP_FOO"]), false, HOST).unwrap_err();
        assert_eq!(err.to_string(), r#"unknown capability: "CAP_FOO""#);
    }

    #[test]
    fn single_capabilities_are_validated_like_dockers_create() {
        for ok in ["ALL", "all", "chown", "CAP_NET_ADMIN", "Sys_Admin"] {
            validate_capability_with(ok, HOST).unwrap();
        }
        let err = validate_capability_with("NOPE", HOST).unwrap_err();
        assert_eq!(err.to_string(), r#"unknown capability: "CAP_NOPE""#);
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        let host = caps_from_mask(0x1fffeffffff);
        let err = validate_capability_with("sys_resource", &host).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"capability not supported by your kernel or not available in the current environment: "CAP_SYS_RESOURCE""#
        );
    }

    #[test]
    fn cap_drop_all_keeps_only_added() {
        let caps = resolve_capabilities_with(&s(&["chown"]), &s(&["all"]), false, HOST).unwrap();
        assert_eq!(caps, s(&["CAP_CHOWN"]));
    }

    #[test]
    fn cap_add_all_is_the_host_set_minus_drops() {
        let host = caps_from_mask(0x1fffeffffff);
        let caps = resolve_capabilities_with(&s(&["ALL"]), &s(&["kill"]), false, &host).unwrap();
        assert!(!caps.contains(&"CAP_KILL".to_string()));
        assert!(!caps.contains(&"CAP_SYS_RESOURCE".to_string()));
        assert_eq!(caps.len(), host.len() - 1);
    }

    #[test]
    fn privileged_is_the_host_set_not_a_fixed_list() {
        let host = caps_from_mask(0x1fffeffffff);
        let caps = resolve_capabilities_with(&[], &[], true, &host).unwrap();
        assert_eq!(caps.len(), 40);
        assert!(!caps.contains(&"CAP_SYS_RESOURCE".to_string()));
    }

    #[test]
    fn cap_add_of_capability_missing_on_host_is_rejected() {
        let host = caps_from_mask(0x1fffeffffff);
        let err = resolve_capabilities_with(&s(&["SYS_RESOURCE"]), &[], false, &host).unwrap_err();
        assert!(err.to_string().contains("CAP_SYS_RESOURCE"), "{err}");
    }

    fn amd64() -> SeccompHost {
        SeccompHost {
            go_arch: "amd64",
            scmp_arch: "SCMP_ARCH_X86_64",
            kernel: (6, 1),
        }
    }

    fn default_profile() -> DockerProfile {
        serde_json::from_str(DEFAULT_SECCOMP_PROFILE).unwrap()
    }

    fn rules_for<'a>(section: &'a Value, name: &str) -> Vec<&'a Value> {
        section["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == name))
            .collect()
    }

    #[test]
    fn default_profile_without_sys_admin_makes_clone3_enosys() {
        let caps = s(&capabilities());
        let section = convert_profile(&default_profile(), &caps, &amd64()).unwrap();
        assert_eq!(section["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(section["defaultErrnoRet"], 1);
        assert_eq!(
            section["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let clone3 = rules_for(&section, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0]["action"], "SCMP_ACT_ERRNO");
        assert_eq!(clone3[0]["errnoRet"], 38);
        assert!(rules_for(&section, "mount").is_empty());
        assert!(rules_for(&section, "unshare").is_empty());
        // the masked clone rule (no new namespaces) is kept, the s390 one is not
        let clone = rules_for(&section, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone[0]["args"][0]["index"], 0);
        // arch filters: arch_prctl (amd64) kept, arm-only calls dropped
        assert_eq!(rules_for(&section, "arch_prctl").len(), 1);
        assert!(rules_for(&section, "arm_fadvise64_64").is_empty());
        // minKernel 4.8 satisfied on 6.1
        assert_eq!(rules_for(&section, "ptrace").len(), 1);
    }

    #[test]
    fn default_profile_with_sys_admin_allows_mount_and_clone3() {
        let mut caps = s(&capabilities());
        caps.push("CAP_SYS_ADMIN".into());
        let section = convert_profile(&default_profile(), &caps, &amd64()).unwrap();
        assert_eq!(rules_for(&section, "mount").len(), 1);
        let clone3 = rules_for(&section, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0]["action"], "SCMP_ACT_ALLOW");
        let clone = rules_for(&section, "clone");
        assert_eq!(clone.len(), 1);
        assert!(clone[0].get("args").is_none());
    }

    #[test]
    fn min_kernel_excludes_rules_on_old_kernels() {
        let host = SeccompHost {
            kernel: (4, 4),
            ..amd64()
        };
        let section = convert_profile(&default_profile(), &s(&capabilities()), &host).unwrap();
        assert!(rules_for(&section, "ptrace").is_empty());
    }

    #[test]
    fn custom_profile_with_name_and_architectures() {
        let text = r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
            "syscalls":[{"name":"mkdir","action":"SCMP_ACT_ERRNO"},
                        {"names":["chmod"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#;
        let p: DockerProfile = serde_json::from_str(text).unwrap();
        let section = convert_profile(&p, &[], &amd64()).unwrap();
        assert_eq!(section["architectures"], json!(["SCMP_ARCH_X86_64"]));
        assert_eq!(rules_for(&section, "mkdir").len(), 1);
        assert_eq!(rules_for(&section, "chmod")[0]["errnoRet"], 13);
        assert!(section.get("defaultErrnoRet").is_none());
    }

    #[test]
    fn profile_with_both_architectures_and_arch_map_is_rejected() {
        let text = r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
            "archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":null}]}"#;
        let p: DockerProfile = serde_json::from_str(text).unwrap();
        assert!(convert_profile(&p, &[], &amd64()).is_err());
    }

    #[test]
    fn invalid_profile_json_is_an_invalid_argument() {
        let err = seccomp_to_oci("{", &[]).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        assert!(err.to_string().starts_with("invalid seccomp profile: "));
    }

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(parse_kernel_version("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(parse_kernel_version("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel_version("5"), Some((5, 0)));
    }
}

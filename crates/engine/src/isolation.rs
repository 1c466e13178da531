//! Docker's isolation knobs of `HostConfig` — `PidMode`, `IpcMode`, `UTSMode`, `ShmSize`,
//! `Sysctls`, `Devices`, `DeviceCgroupRules` — checked at create in Docker's words
//! ([`validate`]) and mapped onto the runtime's spec at start ([`apply`]), with the
//! containers named by `container:X` resolved by the engine ([`Engine::isolation_peers`]).
//!
//! Docker's rules followed here: moby `verifyPlatformContainerSettings` (the modes, the shm
//! size), runc's sysctl validation (what is namespaced, and not in the host's namespaces),
//! `oci.DevicesFromPath` (a device, or a directory of them, read from the host at start) and
//! `AppendDevicePermissionsFromCgroupRules` (the rule syntax), `getIPCContainer` /
//! `getPIDContainer` (the container joined must run, and share its IPC).

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use berth_api::container::{Config, DeviceMapping, HostConfig};
use berth_runtime::{ContainerSpec, DeviceNode, DeviceRule, NamespaceMode, Shm, DEFAULT_SHM_SIZE};

use crate::error::{EngineError, Result};
use crate::record::Status;
use crate::Engine;

/// The init pids of the containers a `container:X` mode joins, resolved at start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peers {
    /// `--pid container:X`: X's init.
    pub pid: Option<i32>,
    /// `--ipc container:X`: X's init.
    pub ipc: Option<i32>,
}

/// Fills what Docker records at create for an absent value: `IpcMode` `private` (the
/// daemon's default mode) and `ShmSize` 64 MiB, as inspect shows them.
pub fn fill_defaults(hc: &mut HostConfig) {
    if hc.ipc_mode.is_empty() {
        hc.ipc_mode = "private".into();
    }
    if hc.shm_size == 0 {
        hc.shm_size = DEFAULT_SHM_SIZE as i64;
    }
}

fn container_of(mode: &str) -> Option<&str> {
    mode.strip_prefix("container:")
}

/// Docker's create-time checks of these fields, in its order and words.
pub fn validate(hc: &HostConfig) -> Result<()> {
    let invalid = |m: String| Err(EngineError::Invalid(m));
    let ipc_valid = match hc.ipc_mode.as_str() {
        "" | "private" | "shareable" | "none" | "host" => true,
        m => container_of(m).is_some_and(|c| !c.is_empty()),
    };
    if !ipc_valid {
        return invalid(format!("invalid IPC mode: {}", hc.ipc_mode));
    }
    let pid_valid = match hc.pid_mode.as_str() {
        "" | "host" => true,
        m => container_of(m).is_some_and(|c| !c.is_empty()),
    };
    if !pid_valid {
        return invalid(format!("invalid PID mode: {}", hc.pid_mode));
    }
    if hc.shm_size < 0 {
        return invalid("SHM size can not be less than 0".into());
    }
    if !matches!(hc.uts_mode.as_str(), "" | "host") {
        return invalid(format!("invalid UTS mode: {}", hc.uts_mode));
    }
    for (key, value) in sorted_sysctls(hc) {
        check_sysctl(hc, key, value)?;
    }
    for d in hc.devices.iter().flatten() {
        device_paths(d)?;
    }
    for rule in hc.device_cgroup_rules.iter().flatten() {
        parse_device_cgroup_rule(rule)?;
    }
    Ok(())
}

/// Docker's check of the container config against these fields (moby `validateNetMode`): a
/// hostname cannot be set in the host's UTS namespace.
pub fn validate_config(config: &Config, hc: &HostConfig) -> Result<()> {
    if hc.uts_mode == "host" && !config.hostname.is_empty() {
        return Err(EngineError::Invalid(
            "conflicting options: hostname and the UTS mode".into(),
        ));
    }
    Ok(())
}

fn sorted_sysctls(hc: &HostConfig) -> BTreeMap<&str, &str> {
    hc.sysctls
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// The IPC sysctls Docker allows (in a private IPC namespace), besides `fs.mqueue.*`.
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

fn is_ipc_sysctl(key: &str) -> bool {
    IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.")
}

/// Docker's allow-list (docker/cli `ValidateSysctl`: namespaced sysctls only) and runc's
/// refusal of a namespaced one in a namespace shared with the host.
fn check_sysctl(hc: &HostConfig, key: &str, value: &str) -> Result<()> {
    let plain = key.split('.').all(|part| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    let not_allowed = || EngineError::Invalid(format!("sysctl '{key}={value}' is not allowed"));
    if !plain {
        return Err(not_allowed());
    }
    if is_ipc_sysctl(key) {
        if hc.ipc_mode == "host" {
            return Err(EngineError::Invalid(format!(
                "sysctl \"{key}\" is not allowed in the hosts ipc namespace"
            )));
        }
        return Ok(());
    }
    if key.starts_with("net.") {
        if hc.network_mode == "host" {
            return Err(EngineError::Invalid(format!(
                "sysctl \"{key}\" is not allowed in the hosts network namespace"
            )));
        }
        return Ok(());
    }
    Err(not_allowed())
}

/// A `--device` entry's host path, path in the container and permissions, checked as the
/// docker CLI does (an absolute path in the container, permissions of `rwm`; empty ones
/// are `rwm`, an empty path in the container is the host's).
fn device_paths(d: &DeviceMapping) -> Result<(String, String, String)> {
    let permissions = if d.cgroup_permissions.is_empty() {
        "rwm".to_string()
    } else {
        d.cgroup_permissions.clone()
    };
    if !permissions.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(EngineError::Invalid(format!(
            "invalid device mode: {}",
            d.cgroup_permissions
        )));
    }
    let in_container = if d.path_in_container.is_empty() {
        d.path_on_host.clone()
    } else {
        d.path_in_container.clone()
    };
    if !in_container.starts_with('/') {
        return Err(EngineError::Invalid(format!(
            "bad format for path: {in_container}"
        )));
    }
    let cleaned = berth_volume::mountspec::clean(&in_container);
    if cleaned == "/" {
        return Err(EngineError::Invalid(format!(
            "bad format for path: {in_container}"
        )));
    }
    Ok((d.path_on_host.clone(), cleaned, permissions))
}

/// moby's `AppendDevicePermissionsFromCgroupRules`: `a` alone, or
/// `^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$`.
pub(crate) fn parse_device_cgroup_rule(rule: &str) -> Result<DeviceRule> {
    let bad = || EngineError::Invalid(format!("invalid device cgroup rule format: '{rule}'"));
    let expanded = if rule == "a" { "a *:* rwm" } else { rule };
    let mut parts = expanded.split(' ');
    let (Some(kind), Some(numbers), Some(access), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let kind = match kind {
        "a" | "b" | "c" => kind.chars().next().expect("one letter"),
        _ => return Err(bad()),
    };
    let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
    let number = |n: &str, what: &str| -> Result<Option<i64>> {
        if n == "*" {
            return Ok(None);
        }
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        // The kernel's device numbers are 32-bit (v1 parses them so; the v2 program
        // compares 32 bits): a larger one must not wrap onto another device.
        n.parse::<u32>().map(|n| Some(i64::from(n))).map_err(|_| {
            EngineError::Invalid(format!(
                "invalid {what} value in device cgroup rule format: '{rule}'"
            ))
        })
    };
    let (major, minor) = (number(major, "major")?, number(minor, "minor")?);
    if access.is_empty() || access.len() > 3 || !access.chars().all(|c| "rwm".contains(c)) {
        return Err(bad());
    }
    Ok(DeviceRule {
        kind,
        major,
        minor,
        access: access.to_string(),
    })
}

/// At most this many device nodes from one `--device` directory, and entries looked at:
/// `--device /` must not walk the whole host.
const MAX_DIR_DEVICES: usize = 4096;
const MAX_DIR_ENTRIES: usize = 65536;

/// moby `DevicesFromPath`: the device at `host` (a symlink is followed), or every device
/// below the directory `host`, as nodes at `in_container` with the host's numbers, mode
/// and owner, each allowed `permissions` in the device cgroup.
fn devices_from_path(
    host: &str,
    in_container: &str,
    permissions: &str,
) -> Result<Vec<(DeviceNode, DeviceRule)>> {
    let gathering = |e: String| {
        EngineError::Invalid(format!(
            "error gathering device information while adding custom device \"{host}\": {e}"
        ))
    };
    let resolved = std::fs::canonicalize(host).unwrap_or_else(|_| PathBuf::from(host));
    let meta = std::fs::metadata(&resolved).map_err(|e| gathering(io_text(&e)))?;
    let entry = |meta: &std::fs::Metadata, in_container: String| {
        let ft = meta.file_type();
        let kind = if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else {
            return None;
        };
        let rdev = meta.rdev();
        let (major, minor) = (libc::major(rdev) as u64, libc::minor(rdev) as u64);
        Some((
            DeviceNode {
                path: in_container,
                kind,
                major,
                minor,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
            },
            DeviceRule {
                kind,
                major: Some(major as i64),
                minor: Some(minor as i64),
                access: permissions.to_string(),
            },
        ))
    };
    if let Some(one) = entry(&meta, in_container.to_string()) {
        return Ok(vec![one]);
    }
    if !meta.is_dir() {
        return Err(gathering("not a device node".into()));
    }
    let mut found = Vec::new();
    let mut seen = 0usize;
    let mut dirs = vec![resolved.clone()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            seen += 1;
            if seen > MAX_DIR_ENTRIES || found.len() > MAX_DIR_DEVICES {
                return Err(gathering(format!(
                    "more than {MAX_DIR_DEVICES} devices or {MAX_DIR_ENTRIES} entries below it"
                )));
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                dirs.push(path);
                continue;
            }
            let Ok(rel) = path.strip_prefix(&resolved) else {
                continue;
            };
            let target = format!("{}/{}", in_container.trim_end_matches('/'), rel.display());
            if let Some(one) = entry(&meta, target) {
                found.push(one);
            }
        }
    }
    if found.is_empty() {
        return Err(gathering("not a device node".into()));
    }
    found.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    Ok(found)
}

/// An I/O error as Go prints it: lowercase, without Rust's `(os error N)`.
fn io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) => &text[..i],
        None => &text,
    };
    text.to_lowercase()
}

/// Maps the fields onto the runtime's spec (at start: devices are read from the host now,
/// as Docker does).
pub fn apply(hc: &HostConfig, peers: &Peers, spec: &mut ContainerSpec) -> Result<()> {
    let joined = |pid: Option<i32>, what: &str| {
        pid.ok_or_else(|| {
            EngineError::Internal(format!(
                "the container whose {what} is joined was not resolved"
            ))
        })
    };
    spec.namespaces.pid = match hc.pid_mode.as_str() {
        "host" => NamespaceMode::Host,
        m if container_of(m).is_some() => {
            NamespaceMode::Process(joined(peers.pid, "PID namespace")?)
        }
        _ => NamespaceMode::Private,
    };
    spec.namespaces.uts = match hc.uts_mode.as_str() {
        "host" => NamespaceMode::Host,
        _ => NamespaceMode::Private,
    };
    let size = if hc.shm_size > 0 {
        hc.shm_size as u64
    } else {
        DEFAULT_SHM_SIZE
    };
    (spec.namespaces.ipc, spec.shm) = match hc.ipc_mode.as_str() {
        "host" => (NamespaceMode::Host, Shm::Host),
        "none" => (NamespaceMode::Private, Shm::None),
        m if container_of(m).is_some() => {
            let pid = joined(peers.ipc, "IPC namespace")?;
            (NamespaceMode::Process(pid), Shm::Process(pid))
        }
        _ => (NamespaceMode::Private, Shm::Tmpfs(size)),
    };
    spec.sysctls = sorted_sysctls(hc)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for d in hc.devices.iter().flatten() {
        let (host, in_container, permissions) = device_paths(d)?;
        // Docker: a privileged container has the host's devices already at the same paths.
        if hc.privileged && host == in_container {
            continue;
        }
        for (node, rule) in devices_from_path(&host, &in_container, &permissions)? {
            spec.devices.push(node);
            spec.resources.devices.push(rule);
        }
    }
    for rule in hc.device_cgroup_rules.iter().flatten() {
        spec.resources.devices.push(parse_device_cgroup_rule(rule)?);
    }
    Ok(())
}

impl Engine {
    /// The init pids of the containers that `--pid container:X` and `--ipc container:X`
    /// join, checked as Docker does: X exists, runs, is not restarting, and (for IPC)
    /// shares its IPC (`shareable` or `host`, or joined itself).
    pub(crate) fn isolation_peers(&self, hc: &HostConfig) -> Result<Peers> {
        let running = |name: &str| -> Result<(i32, String)> {
            let c = self
                .get(name)
                .map_err(|_| EngineError::Invalid(format!("No such container: {name}")))?;
            let state = c.state();
            match state.status {
                Status::Running | Status::Paused if state.pid > 0 => {}
                Status::Restarting => return Err(crate::container::misc::restarting(name)),
                _ => return Err(EngineError::NotRunning(name.to_string())),
            }
            let mode = c.record().host_config.ipc_mode.clone();
            Ok((state.pid as i32, mode))
        };
        let mut peers = Peers::default();
        if let Some(name) = container_of(&hc.pid_mode) {
            peers.pid = Some(running(name)?.0);
        }
        if let Some(name) = container_of(&hc.ipc_mode) {
            let (pid, mode) = running(name)?;
            if !(mode == "shareable" || mode == "host" || mode.starts_with("container:")) {
                return Err(EngineError::Invalid(format!(
                    "container {name}: non-shareable IPC (hint: use IpcMode:shareable for the \
                     donor container)"
                )));
            }
            // A donor in the host's IPC namespace (`--ipc host`, or joined to one that is)
            // makes this container's IPC sysctls the host's: refused as for `--ipc host`.
            if let Some(key) = sorted_sysctls(hc).into_keys().find(|k| is_ipc_sysctl(k)) {
                let ns = |p: String| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
                let theirs = ns(format!("/proc/{pid}/ns/ipc"));
                if theirs.is_none() || theirs == ns("/proc/self/ns/ipc".into()) {
                    return Err(EngineError::Invalid(format!(
                        "sysctl \"{key}\" is not allowed in the hosts ipc namespace (container \
                         {name} shares it)"
                    )));
                }
            }
            peers.ipc = Some(pid);
        }
        Ok(peers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc() -> HostConfig {
        HostConfig {
            network_mode: "default".into(),
            ..Default::default()
        }
    }

    fn refused(h: &HostConfig) -> String {
        validate(h).unwrap_err().to_string()
    }

    #[test]
    fn modes_are_checked_with_dockers_messages() {
        let mut h = hc();
        for ok in ["", "private", "shareable", "none", "host", "container:x"] {
            h.ipc_mode = ok.into();
            validate(&h).unwrap();
        }
        h.ipc_mode = "container:".into();
        assert_eq!(refused(&h), "invalid IPC mode: container:");
        h.ipc_mode = "bogus".into();
        assert_eq!(refused(&h), "invalid IPC mode: bogus");
        let mut h = hc();
        h.pid_mode = "private".into();
        assert_eq!(refused(&h), "invalid PID mode: private");
        h.pid_mode = "container:web".into();
        validate(&h).unwrap();
        let mut h = hc();
        h.uts_mode = "container:x".into();
        assert_eq!(refused(&h), "invalid UTS mode: container:x");
        let mut h = hc();
        h.shm_size = -1;
        assert_eq!(refused(&h), "SHM size can not be less than 0");
    }

    fn with_sysctl(key: &str) -> HostConfig {
        HostConfig {
            sysctls: Some([(key.to_string(), "1".to_string())].into()),
            ..hc()
        }
    }

    #[test]
    fn sysctls_follow_dockers_allow_list_and_namespaces() {
        for ok in [
            "net.ipv4.ip_forward",
            "kernel.shmmax",
            "kernel.sem",
            "fs.mqueue.msg_max",
        ] {
            validate(&with_sysctl(ok)).unwrap();
        }
        for bad in [
            "kernel.domainname",
            "vm.swappiness",
            "net",
            "net..x",
            "net.ipv4/../../kernel/core_pattern",
        ] {
            assert_eq!(
                refused(&with_sysctl(bad)),
                format!("sysctl '{bad}=1' is not allowed")
            );
        }
        let mut h = with_sysctl("net.ipv4.ip_forward");
        h.network_mode = "host".into();
        assert_eq!(
            refused(&h),
            "sysctl \"net.ipv4.ip_forward\" is not allowed in the hosts network namespace"
        );
        let mut h = with_sysctl("kernel.shmmax");
        h.ipc_mode = "host".into();
        assert_eq!(
            refused(&h),
            "sysctl \"kernel.shmmax\" is not allowed in the hosts ipc namespace"
        );
    }

    #[test]
    fn device_numbers_beyond_32_bits_are_refused_not_wrapped() {
        // 4294967550 is 254 (a virtio disk) modulo 2^32.
        let e = parse_device_cgroup_rule("b 4294967550:0 r").unwrap_err();
        assert!(e.to_string().contains("invalid major value"), "{e}");
        let e = parse_device_cgroup_rule("b 254:4294967296 r").unwrap_err();
        assert!(e.to_string().contains("invalid minor value"), "{e}");
        parse_device_cgroup_rule("b 254:4294967295 r").unwrap();
    }

    #[test]
    fn device_cgroup_rules_parse_as_docker() {
        let r = parse_device_cgroup_rule("c 1:3 mr").unwrap();
        assert_eq!(
            r,
            DeviceRule {
                kind: 'c',
                major: Some(1),
                minor: Some(3),
                access: "mr".into()
            }
        );
        let all = parse_device_cgroup_rule("a").unwrap();
        assert_eq!((all.kind, all.major, all.minor), ('a', None, None));
        assert_eq!(all.access, "rwm");
        let any = parse_device_cgroup_rule("b *:* rwm").unwrap();
        assert_eq!((any.major, any.minor), (None, None));
        for bad in [
            "x 1:3 r",
            "c 1:3",
            "c 1-3 r",
            "c 1:3 rx",
            "c 1:3 rwmr",
            "c  1:3 r",
            "",
        ] {
            assert_eq!(
                parse_device_cgroup_rule(bad).unwrap_err().to_string(),
                format!("invalid device cgroup rule format: '{bad}'")
            );
        }
        assert_eq!(
            parse_device_cgroup_rule("c 99999999999999999999:1 r")
                .unwrap_err()
                .to_string(),
            "invalid major value in device cgroup rule format: 'c 99999999999999999999:1 r'"
        );
    }

    #[test]
    fn device_mappings_are_checked_and_read_from_the_host() {
        let d = |host: &str, ctr: &str, perms: &str| DeviceMapping {
            path_on_host: host.into(),
            path_in_container: ctr.into(),
            cgroup_permissions: perms.into(),
        };
        let (_, path, perms) = device_paths(&d("/dev/null", "", "")).unwrap();
        assert_eq!((path.as_str(), perms.as_str()), ("/dev/null", "rwm"));
        let (_, path, _) = device_paths(&d("/dev/null", "/dev/../dev/x/./y", "r")).unwrap();
        assert_eq!(path, "/dev/x/y");
        assert_eq!(
            device_paths(&d("/dev/null", "/dev/x", "rwx"))
                .unwrap_err()
                .to_string(),
            "invalid device mode: rwx"
        );
        assert_eq!(
            device_paths(&d("/dev/null", "dev/x", "r"))
                .unwrap_err()
                .to_string(),
            "bad format for path: dev/x"
        );
        let found = devices_from_path("/dev/null", "/dev/mynull", "rw").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.path, "/dev/mynull");
        assert_eq!(
            (found[0].0.kind, found[0].0.major, found[0].0.minor),
            ('c', 1, 3)
        );
        assert_eq!(found[0].1.access, "rw");
        assert_eq!(
            devices_from_path("/dev/nope", "/dev/nope", "rwm")
                .unwrap_err()
                .to_string(),
            "error gathering device information while adding custom device \"/dev/nope\": \
             no such file or directory"
        );
        assert_eq!(
            devices_from_path("/etc/hostname", "/x", "rwm")
                .unwrap_err()
                .to_string(),
            "error gathering device information while adding custom device \"/etc/hostname\": \
             not a device node"
        );
    }

    #[test]
    fn a_directory_adds_every_device_below_it() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        for (name, dir) in [("a", dir.path()), ("b", sub.as_path())] {
            let status = std::process::Command::new("mknod")
                .args(["-m", "640"])
                .arg(dir.join(name))
                .args(["c", "1", "5"])
                .status()
                .unwrap();
            assert!(status.success(), "mknod (needs root)");
        }
        std::fs::write(dir.path().join("plain"), "x").unwrap();
        let found = devices_from_path(dir.path().to_str().unwrap(), "/dev/d", "r").unwrap();
        let paths: Vec<&str> = found.iter().map(|(n, _)| n.path.as_str()).collect();
        assert_eq!(paths, ["/dev/d/a", "/dev/d/sub/b"]);
        assert!(found.iter().all(|(n, _)| n.mode == 0o640 && n.minor == 5));
    }

    #[test]
    fn a_hostname_in_the_hosts_uts_namespace_is_refused() {
        let mut h = hc();
        h.uts_mode = "host".into();
        let mut config = Config::default();
        validate_config(&config, &h).unwrap();
        config.hostname = "web".into();
        assert_eq!(
            validate_config(&config, &h).unwrap_err().to_string(),
            "conflicting options: hostname and the UTS mode"
        );
        h.uts_mode = String::new();
        validate_config(&config, &h).unwrap();
    }

    #[test]
    fn apply_maps_modes_shm_sysctls_and_devices() {
        let mut h = hc();
        fill_defaults(&mut h);
        let mut spec = ContainerSpec::default();
        apply(&h, &Peers::default(), &mut spec).unwrap();
        assert_eq!(spec.shm, Shm::Tmpfs(64 << 20));
        assert_eq!(spec.namespaces, Default::default());
        h.shm_size = 128 << 20;
        h.pid_mode = "host".into();
        h.uts_mode = "host".into();
        h.sysctls = Some([("net.ipv4.ip_forward".to_string(), "1".to_string())].into());
        h.devices = Some(vec![DeviceMapping {
            path_on_host: "/dev/null".into(),
            path_in_container: "/dev/mynull".into(),
            cgroup_permissions: "rw".into(),
        }]);
        h.device_cgroup_rules = Some(vec!["c 1:5 r".into()]);
        let mut spec = ContainerSpec::default();
        apply(&h, &Peers::default(), &mut spec).unwrap();
        assert_eq!(spec.shm, Shm::Tmpfs(128 << 20));
        assert_eq!(spec.namespaces.pid, NamespaceMode::Host);
        assert_eq!(spec.namespaces.uts, NamespaceMode::Host);
        assert_eq!(spec.namespaces.ipc, NamespaceMode::Private);
        assert_eq!(spec.sysctls["net.ipv4.ip_forward"], "1");
        assert_eq!(spec.devices.len(), 1);
        assert_eq!(spec.resources.devices.len(), 2);
        h.ipc_mode = "container:x".into();
        h.pid_mode = "container:x".into();
        let peers = Peers {
            pid: Some(42),
            ipc: Some(42),
        };
        let mut spec = ContainerSpec::default();
        apply(&h, &peers, &mut spec).unwrap();
        assert_eq!(spec.namespaces.pid, NamespaceMode::Process(42));
        assert_eq!(spec.namespaces.ipc, NamespaceMode::Process(42));
        assert_eq!(spec.shm, Shm::Process(42));
        h.ipc_mode = "none".into();
        h.pid_mode = String::new();
        let mut spec = ContainerSpec::default();
        apply(&h, &Peers::default(), &mut spec).unwrap();
        assert_eq!(spec.shm, Shm::None);
        h.ipc_mode = "host".into();
        apply(&h, &Peers::default(), &mut spec).unwrap();
        assert_eq!(
            (spec.namespaces.ipc, spec.shm),
            (NamespaceMode::Host, Shm::Host)
        );
    }
}

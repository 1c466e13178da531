//! Building the OCI runtime spec (`config.json`) from a [`ContainerSpec`] with Docker's
//! defaults. Built as JSON directly: libcontainer loads `config.json` from the bundle anyway, so
//! going through oci-spec's builders would only add a serialisation round.

use serde_json::{json, Value};

use crate::defaults;
use crate::error::RuntimeError;
use crate::rootfs::host_path_exists;
use crate::spec::{ContainerSpec, NamespaceMode, Network, Propagation, Seccomp, Shm};
use crate::user::ExecUser;

/// Docker's default `PATH` (used when the environment has none).
pub(crate) const DEFAULT_PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where `--init` binds the init binary.
pub(crate) const INIT_PATH: &str = "/sbin/docker-init";

/// Host facts the spec depends on, looked up once per shim.
pub(crate) struct HostFacts {
    /// cgroup v1 memory controller has `memory.memsw.*` (swap accounting).
    pub swap_accounting: bool,
    /// The host is on cgroup v2 only (cgroup namespace private, like Docker).
    pub unified: bool,
}

impl HostFacts {
    pub(crate) fn probe() -> HostFacts {
        let unified = host_path_exists("/sys/fs/cgroup/cgroup.controllers");
        HostFacts {
            swap_accounting: unified
                || host_path_exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
            unified,
        }
    }
}

/// The process arguments, with the init prepended when `--init` is set.
pub(crate) fn process_args(spec: &ContainerSpec) -> Vec<String> {
    let mut args = Vec::with_capacity(spec.process.args.len() + 2);
    if spec.init.is_some() {
        args.push(INIT_PATH.to_string());
        args.push("--".to_string());
    }
    args.extend(spec.process.args.iter().cloned());
    args
}

/// The environment: the spec's, plus `PATH`, `HOSTNAME` and `HOME` when absent.
pub(crate) fn process_env(spec: &ContainerSpec, home: &str) -> Vec<String> {
    let mut env = spec.process.env.clone();
    let has = |env: &[String], key: &str| {
        env.iter()
            .any(|e| e.split_once('=').map(|(k, _)| k) == Some(key))
    };
    if !has(&env, "PATH") {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    if !has(&env, "HOSTNAME") && !spec.hostname.is_empty() {
        env.insert(1, format!("HOSTNAME={}", spec.hostname));
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={home}"));
    }
    env
}

/// Builds `config.json` for the container.
/// The OCI `linux.seccomp` section the spec asks for (`None`: no filter).
pub(crate) fn seccomp_section(
    spec: &ContainerSpec,
    caps: &[String],
) -> Result<Option<Value>, RuntimeError> {
    if spec.privileged {
        return Ok(None);
    }
    match &spec.seccomp {
        Seccomp::Default => defaults::default_seccomp(caps).map(Some),
        Seccomp::Unconfined => Ok(None),
        Seccomp::Profile(text) => defaults::seccomp_to_oci(text, caps).map(Some),
    }
}

/// Builds `config.json`. `caps` are the capabilities the init gets from libcontainer;
/// `seccomp` is the section libcontainer should load (`None` when there is no filter or the
/// shim loads a precompiled one itself).
pub(crate) fn build(
    spec: &ContainerSpec,
    user: &ExecUser,
    caps: &[String],
    seccomp: Option<Value>,
    host: &HostFacts,
) -> Result<Value, RuntimeError> {
    let args = process_args(spec);
    if spec.process.args.is_empty() {
        return Err(RuntimeError::InvalidSpec(
            "no command specified".to_string(),
        ));
    }
    let mut process = json!({
        "terminal": false,
        "user": {
            "uid": user.uid,
            "gid": user.gid,
            "additionalGids": user.additional_gids,
        },
        "args": args,
        "env": process_env(spec, &user.home),
        "cwd": if spec.process.cwd.is_empty() { "/" } else { spec.process.cwd.as_str() },
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
            "inheritable": [],
            "ambient": [],
        },
        "rlimits": rlimits(spec)?,
    });
    // Leave the field out unless true: libcontainer 0.7 checks presence, not value, and with
    // the field present loads seccomp after dropping capabilities (reference/crates.md §1b).
    if spec.process.no_new_privileges {
        process["noNewPrivileges"] = json!(true);
    }

    let mut linux = json!({
        "namespaces": namespaces(spec, host),
        "sysctl": sysctls(spec)?,
        "cgroupsPath": spec.cgroup_path,
        "resources": resources(spec, host),
    });
    if !spec.privileged {
        linux["maskedPaths"] = existing(defaults::masked_paths());
        linux["readonlyPaths"] = existing(defaults::readonly_paths());
    }
    if let Some(section) = seccomp {
        linux["seccomp"] = section;
    }
    let mut devices = if spec.privileged {
        // Docker (runc's HostDevices): every device node of the host appears in /dev.
        host_devices()
    } else {
        Vec::new()
    };
    devices.extend(spec.devices.iter().map(|d| {
        json!({
            "path": d.path,
            "type": d.kind.to_string(),
            "major": d.major,
            "minor": d.minor,
            "fileMode": d.mode & 0o7777,
            "uid": d.uid,
            "gid": d.gid,
        })
    }));
    if !devices.is_empty() {
        linux["devices"] = json!(devices);
    }

    let mut config = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": { "path": "rootfs", "readonly": spec.readonly_rootfs },
        "mounts": mounts(spec)?,
        "linux": linux,
    });
    // Only in a UTS namespace of its own (libcontainer refuses it otherwise).
    if !spec.hostname.is_empty() && spec.namespaces.uts == NamespaceMode::Private {
        config["hostname"] = json!(spec.hostname);
    }
    Ok(config)
}

/// The host's device nodes (`--privileged`), as OCI `linux.devices` entries.
fn host_devices() -> Vec<Value> {
    crate::linux::host_devices()
        .into_iter()
        .map(|d| {
            json!({
                "path": d.path,
                "type": if d.kind == libc::S_IFBLK { "b" } else { "c" },
                "major": d.major,
                "minor": d.minor,
                "fileMode": d.mode,
                "uid": d.uid,
                "gid": d.gid,
            })
        })
        .collect()
}

fn existing(paths: Vec<&'static str>) -> Value {
    json!(paths
        .into_iter()
        .filter(|p| host_path_exists(p))
        .collect::<Vec<_>>())
}

/// The `--ulimit` entries as `(RLIMIT_ name, resource number, soft, hard)`, checked: a known
/// name, soft not above hard.
pub(crate) fn checked_rlimits(
    spec: &ContainerSpec,
) -> Result<Vec<(String, u32, u64, u64)>, RuntimeError> {
    spec.process
        .rlimits
        .iter()
        .map(|r| {
            let name = r.name.to_ascii_lowercase();
            let name = name.strip_prefix("rlimit_").unwrap_or(&name);
            let Some(resource) = defaults::rlimit_resource(name) else {
                return Err(RuntimeError::InvalidSpec(format!(
                    "invalid ulimit type: {}",
                    r.name
                )));
            };
            if r.soft > r.hard {
                return Err(RuntimeError::InvalidSpec(format!(
                    "ulimit soft limit must be less than or equal to hard limit: {} > {} ({})",
                    r.soft, r.hard, r.name
                )));
            }
            Ok((
                format!("RLIMIT_{}", name.to_ascii_uppercase()),
                resource,
                r.soft,
                r.hard,
            ))
        })
        .collect()
}

fn rlimits(spec: &ContainerSpec) -> Result<Value, RuntimeError> {
    Ok(json!(checked_rlimits(spec)?
        .into_iter()
        .map(|(name, _, soft, hard)| json!({ "type": name, "soft": soft, "hard": hard }))
        .collect::<Vec<_>>()))
}

/// `linux.sysctl`: Docker's for a network namespace of the container's own (as berth's
/// runtime sets them, [`crate::linux::netns_defaults`]), then the spec's, which win.
fn sysctls(spec: &ContainerSpec) -> Result<Value, RuntimeError> {
    crate::linux::sysctl_writes(&spec.sysctls)?;
    let mut map = serde_json::Map::new();
    if spec.network == Network::None {
        map.insert("net.ipv4.ping_group_range".into(), json!("0 2147483647"));
        map.insert("net.ipv4.ip_unprivileged_port_start".into(), json!("0"));
    }
    for (k, v) in &spec.sysctls {
        map.insert(k.clone(), json!(v));
    }
    Ok(Value::Object(map))
}

fn namespaces(spec: &ContainerSpec, host: &HostFacts) -> Value {
    let mut ns = Vec::new();
    for (mode, kind, proc_name) in [
        (spec.namespaces.pid, "pid", "pid"),
        (spec.namespaces.ipc, "ipc", "ipc"),
        (spec.namespaces.uts, "uts", "uts"),
    ] {
        match mode {
            NamespaceMode::Private => ns.push(json!({ "type": kind })),
            NamespaceMode::Host => {}
            NamespaceMode::Process(pid) => {
                ns.push(json!({ "type": kind, "path": format!("/proc/{pid}/ns/{proc_name}") }))
            }
        }
    }
    ns.push(json!({ "type": "mount" }));
    match &spec.network {
        Network::None => ns.push(json!({ "type": "network" })),
        Network::Host => {}
        Network::Path(p) => ns.push(json!({ "type": "network", "path": p })),
    }
    // Docker: private cgroup namespace on cgroup v2, the host's on v1 and hybrid hosts.
    if host.unified {
        ns.push(json!({ "type": "cgroup" }));
    }
    json!(ns)
}

fn resources(spec: &ContainerSpec, host: &HostFacts) -> Value {
    let r = &spec.resources;
    let mut rules = defaults::device_rules(spec.privileged);
    if !spec.privileged {
        if let Some(list) = rules.as_array_mut() {
            list.extend(r.devices.iter().map(|d| {
                let mut rule =
                    json!({ "allow": true, "type": d.kind.to_string(), "access": d.access });
                if let Some(major) = d.major {
                    rule["major"] = json!(major);
                }
                if let Some(minor) = d.minor {
                    rule["minor"] = json!(minor);
                }
                rule
            }));
        }
    }
    let mut res = json!({ "devices": rules });
    let mut memory = serde_json::Map::new();
    if let Some(limit) = r.memory {
        memory.insert("limit".into(), json!(limit));
    }
    if let (Some(swap), true) = (r.memory_swap, host.swap_accounting) {
        memory.insert("swap".into(), json!(swap));
    }
    if !memory.is_empty() {
        res["memory"] = Value::Object(memory);
    }
    let mut cpu = serde_json::Map::new();
    if let Some(v) = r.cpu_shares {
        cpu.insert("shares".into(), json!(v));
    }
    if let Some(v) = r.cpu_quota {
        cpu.insert("quota".into(), json!(v));
    }
    if let Some(v) = r.cpu_period {
        cpu.insert("period".into(), json!(v));
    }
    if let Some(v) = &r.cpuset_cpus {
        cpu.insert("cpus".into(), json!(v));
    }
    if let Some(v) = &r.cpuset_mems {
        cpu.insert("mems".into(), json!(v));
    }
    if !cpu.is_empty() {
        res["cpu"] = Value::Object(cpu);
    }
    if let Some(limit) = r.pids_limit {
        res["pids"] = json!({ "limit": limit });
    }
    res
}

/// The tmpfs flags an OCI mount's options name, for libcontainer.
const TMPFS_FLAG_NAMES: &[(u64, &str)] = &[
    (libc::MS_NOEXEC, "noexec"),
    (libc::MS_NOSUID, "nosuid"),
    (libc::MS_NODEV, "nodev"),
    (libc::MS_RDONLY, "ro"),
    (libc::MS_SYNCHRONOUS, "sync"),
    (libc::MS_DIRSYNC, "dirsync"),
    (libc::MS_NOATIME, "noatime"),
    (libc::MS_NODIRATIME, "nodiratime"),
    (libc::MS_RELATIME, "relatime"),
    (libc::MS_STRICTATIME, "strictatime"),
];

fn mounts(spec: &ContainerSpec) -> Result<Value, RuntimeError> {
    let sys_options: &[&str] = if spec.privileged {
        &["nosuid", "noexec", "nodev"]
    } else {
        &["nosuid", "noexec", "nodev", "ro"]
    };
    let cgroup_options: &[&str] = if spec.privileged {
        &["nosuid", "noexec", "nodev"]
    } else {
        &["ro", "nosuid", "noexec", "nodev"]
    };
    let mut mounts = vec![
        json!({ "destination": "/proc", "type": "proc", "source": "proc",
                "options": ["nosuid", "noexec", "nodev"] }),
        json!({ "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] }),
        json!({ "destination": "/dev/pts", "type": "devpts", "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] }),
        json!({ "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_options }),
        json!({ "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": cgroup_options }),
        json!({ "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"] }),
    ];
    match spec.shm {
        Shm::Tmpfs(size) => mounts.push(json!({
            "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={size}")] })),
        Shm::None => {}
        Shm::Host => mounts.push(json!({
            "destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
            "options": ["rbind", "rprivate"] })),
        Shm::Process(_) => {
            // Its /dev/shm lives only in the other container's mount namespace, and a bind
            // across mount namespaces is refused; berth's runtime copies it with open_tree.
            return Err(RuntimeError::InvalidSpec(
                "--ipc container:X is not supported by the libcontainer runtime (its /dev/shm \
                 cannot be shared); use berth's runtime"
                    .into(),
            ));
        }
    }
    for b in &spec.mounts {
        if matches!(b.propagation, Propagation::Shared | Propagation::RShared) {
            // The shim's mount namespace is a slave of the host's: libcontainer's bind could
            // not join the source's peer group. berth's runtime takes it from the host's.
            return Err(RuntimeError::InvalidSpec(format!(
                "bind propagation {} (on {}) is not supported by the libcontainer runtime; \
                 use berth's runtime",
                b.propagation.as_str(),
                b.destination
            )));
        }
        if b.kind == crate::spec::MountKind::Tmpfs {
            let opts = crate::spec::TmpfsOptions::parse(&b.options).map_err(|e| {
                RuntimeError::InvalidSpec(format!("tmpfs on {}: {e}", b.destination))
            })?;
            let mut options: Vec<String> = TMPFS_FLAG_NAMES
                .iter()
                .filter(|(flag, _)| opts.flags & flag != 0)
                .map(|(_, name)| name.to_string())
                .collect();
            if b.readonly {
                options.push("ro".into());
            }
            options.extend(
                opts.data
                    .split(',')
                    .filter(|d| !d.is_empty())
                    .map(String::from),
            );
            mounts.push(json!({
                "destination": b.destination,
                "type": "tmpfs",
                "source": "tmpfs",
                "options": options,
            }));
            continue;
        }
        let mut options = vec![
            if b.nonrecursive { "bind" } else { "rbind" },
            b.propagation.as_str(),
        ];
        if b.readonly {
            // `rro`: the mounts below the source read-only too (Docker since v25).
            match b.readonly_depth {
                crate::spec::ReadOnlyDepth::NonRecursive => options.push("ro"),
                _ => options.extend(["ro", "rro"]),
            }
        }
        mounts.push(json!({
            "destination": b.destination,
            "type": "bind",
            "source": b.source,
            "options": options,
        }));
    }
    if let Some(init) = &spec.init {
        mounts.push(json!({
            "destination": INIT_PATH,
            "type": "bind",
            "source": init,
            "options": ["bind", "ro"],
        }));
    }
    Ok(json!(mounts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ContainerMount, Process, Resources};

    fn user() -> ExecUser {
        ExecUser {
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            home: "/root".into(),
        }
    }

    fn facts() -> HostFacts {
        HostFacts {
            swap_accounting: true,
            unified: false,
        }
    }

    fn spec() -> ContainerSpec {
        ContainerSpec {
            id: "c1".into(),
            hostname: "box".into(),
            cgroup_path: "/berth/c1".into(),
            process: Process {
                args: vec!["echo".into(), "hi".into()],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// The OCI config for `s` with the test user, Docker's caps and this host's facts.
    fn build_default(s: &ContainerSpec) -> Value {
        build(
            s,
            &user(),
            &caps(),
            seccomp_section(s, &caps()).unwrap(),
            &facts(),
        )
        .unwrap()
    }

    fn caps() -> Vec<String> {
        defaults::capabilities()
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn default_spec_has_dockers_shape_and_no_no_new_privileges() {
        let v = build(
            &spec(),
            &user(),
            &caps(),
            seccomp_section(&spec(), &caps()).unwrap(),
            &facts(),
        )
        .unwrap();
        assert!(v["process"].get("noNewPrivileges").is_none());
        assert_eq!(v["process"]["capabilities"]["inheritable"], json!([]));
        assert_eq!(v["process"]["env"][0], DEFAULT_PATH);
        assert_eq!(v["process"]["env"][1], "HOSTNAME=box");
        assert_eq!(v["process"]["env"][2], "HOME=/root");
        assert_eq!(v["process"]["cwd"], "/");
        let devices = v["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(devices[0], json!({ "allow": false, "access": "rwm" }));
        assert_eq!(devices.len(), 12);
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "ipc", "uts", "mount", "network"]);
        let masked = v["linux"]["maskedPaths"].as_array().unwrap();
        assert!(masked.iter().all(|p| host_path_exists(p.as_str().unwrap())));
        // the result must be loadable by oci-spec (what libcontainer does)
        let _: oci_spec::runtime::Spec = serde_json::from_value(v).unwrap();
    }

    #[test]
    fn shared_namespaces_shm_sysctls_and_devices() {
        let v = build_default(&spec());
        assert_eq!(
            v["linux"]["sysctl"],
            json!({ "net.ipv4.ping_group_range": "0 2147483647",
                    "net.ipv4.ip_unprivileged_port_start": "0" })
        );
        assert_eq!(v["mounts"][6]["options"][4], "size=67108864");
        let mut s = spec();
        s.namespaces.pid = NamespaceMode::Host;
        s.namespaces.ipc = NamespaceMode::Process(42);
        s.namespaces.uts = NamespaceMode::Host;
        s.shm = Shm::Host;
        s.network = Network::Host;
        s.sysctls = [("kernel.shmmax".to_string(), "1000".to_string())].into();
        s.devices = vec![crate::spec::DeviceNode {
            path: "/dev/mynull".into(),
            kind: 'c',
            major: 1,
            minor: 3,
            mode: 0o666,
            uid: 0,
            gid: 0,
        }];
        s.resources.devices = vec![crate::spec::DeviceRule {
            kind: 'c',
            major: Some(1),
            minor: Some(3),
            access: "rw".into(),
        }];
        let v = build_default(&s);
        assert_eq!(
            v["linux"]["namespaces"],
            json!([{ "type": "ipc", "path": "/proc/42/ns/ipc" }, { "type": "mount" }])
        );
        assert!(
            v.get("hostname").is_none(),
            "no hostname without a UTS namespace"
        );
        assert_eq!(v["linux"]["sysctl"], json!({ "kernel.shmmax": "1000" }));
        assert_eq!(v["mounts"][6]["source"], "/dev/shm");
        assert_eq!(v["mounts"][6]["type"], "bind");
        assert_eq!(v["linux"]["devices"][0]["path"], "/dev/mynull");
        let rules = v["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(
            rules.last().unwrap(),
            &json!({ "allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw" })
        );
        let _: oci_spec::runtime::Spec = serde_json::from_value(v).unwrap();
        // A user's ping range wins over Docker's.
        let mut s = spec();
        s.sysctls = [("net.ipv4.ping_group_range".to_string(), "1 1".to_string())].into();
        assert_eq!(
            build_default(&s)["linux"]["sysctl"]["net.ipv4.ping_group_range"],
            "1 1"
        );
        s.shm = Shm::Process(42);
        let err = build(&s, &user(), &caps(), None, &facts()).unwrap_err();
        assert!(err.to_string().contains("libcontainer"), "{err}");
        s.shm = Shm::None;
        let v = build_default(&s);
        assert!(v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["destination"] != "/dev/shm"));
    }

    #[test]
    fn privileged_drops_seccomp_masks_and_device_rules() {
        let s = ContainerSpec {
            privileged: true,
            ..spec()
        };
        let v = build_default(&s);
        assert!(v["linux"].get("seccomp").is_none());
        assert!(v["linux"].get("maskedPaths").is_none());
        assert_eq!(
            v["linux"]["resources"]["devices"],
            json!([{ "allow": true, "access": "rwm" }])
        );
        let sys = &v["mounts"][3];
        assert_eq!(sys["destination"], "/sys");
        assert!(!sys["options"].as_array().unwrap().contains(&json!("ro")));
    }

    #[test]
    fn init_binds_and_prefixes_args() {
        let s = ContainerSpec {
            init: Some("/usr/bin/tini".into()),
            mounts: vec![ContainerMount {
                source: "/tmp/h".into(),
                destination: "/etc/hosts".into(),
                readonly: true,
                ..Default::default()
            }],
            ..spec()
        };
        let v = build_default(&s);
        assert_eq!(v["process"]["args"], json!([INIT_PATH, "--", "echo", "hi"]));
        let mounts = v["mounts"].as_array().unwrap();
        assert_eq!(
            mounts[7]["options"],
            json!(["rbind", "rprivate", "ro", "rro"])
        );
        assert_eq!(mounts[8]["destination"], INIT_PATH);
    }

    #[test]
    fn resources_and_rlimits() {
        let mut s = spec();
        s.resources = Resources {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            cpu_shares: Some(512),
            cpuset_cpus: Some("0-1".into()),
            cpuset_mems: Some("0".into()),
            pids_limit: Some(32),
            ..Default::default()
        };
        s.process.rlimits = vec![crate::spec::Rlimit {
            name: "nofile".into(),
            soft: 100,
            hard: 200,
        }];
        s.process.no_new_privileges = true;
        let v = build_default(&s);
        let r = &v["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["memory"]["swap"], 128 << 20);
        assert_eq!(r["cpu"]["shares"], 512);
        assert_eq!(r["cpu"]["cpus"], "0-1");
        assert_eq!(r["cpu"]["mems"], "0");
        assert_eq!(r["pids"]["limit"], 32);
        assert_eq!(
            v["process"]["rlimits"],
            json!([{ "type": "RLIMIT_NOFILE", "soft": 100, "hard": 200 }])
        );
        assert_eq!(v["process"]["noNewPrivileges"], true);
        let no_swap = HostFacts {
            swap_accounting: false,
            unified: false,
        };
        let v = build(&s, &user(), &caps(), None, &no_swap).unwrap();
        assert!(v["linux"]["resources"]["memory"].get("swap").is_none());
        s.process.rlimits[0].name = "bogus".into();
        assert!(build(
            &s,
            &user(),
            &caps(),
            seccomp_section(&s, &caps()).unwrap(),
            &facts()
        )
        .is_err());
    }
}

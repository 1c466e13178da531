//! The container's mounts: planned by the shim from the [`ContainerSpec`], carried out by the
//! init inside its own mount namespace.
//!
//! Every target is resolved inside the root with `openat2(RESOLVE_IN_ROOT)` (a symlink in the
//! image, absolute or relative, or a `..`, stays inside the root) and mounted through the
//! descriptor's `/proc/self/fd/N` path, so nothing can swap the path between the check and
//! the mount. `/proc` and `/sys` must be real directories (no symlink anywhere on the way).
//! A bind's flags (read-only, propagation) are applied through a fresh descriptor of the new
//! mount: the old one names the directory underneath it.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::mount::{mount, MsFlags};

use super::{sys, CgroupViews, Device};
use crate::oci::INIT_PATH;
use crate::rootfs::Root;
use crate::spec::{ContainerSpec, MountKind, Propagation, ReadOnlyDepth, Shm, TmpfsOptions};

/// One step of the container's mount plan, in order.
#[derive(Debug, Clone)]
pub(crate) enum MountStep {
    /// A new filesystem instance (proc, sysfs, tmpfs, devpts, mqueue).
    Fs {
        dest: &'static str,
        fstype: &'static str,
        source: &'static str,
        flags: MsFlags,
        data: String,
        /// `/proc` and `/sys`: refuse a symlink anywhere in the target.
        real_dir: bool,
    },
    /// The container's `/sys/fs/cgroup`: on v1 a tmpfs with one bind of each hierarchy's
    /// container cgroup, on v2 a cgroup2 mount (in the container's cgroup namespace).
    Cgroup { readonly: bool, v2: bool },
    /// `/dev/shm` of another container (`--ipc container:X`): a copy of the mount at
    /// `/dev/shm` in the mount namespace of this process (X's init), taken there with
    /// `open_tree` (a bind across mount namespaces is refused) and attached here.
    ShmOf { pid: i32 },
    /// A bind mount from the host.
    Bind {
        source: PathBuf,
        dest: String,
        /// Read-only, and how far.
        readonly: Option<ReadOnlyDepth>,
        propagation: Propagation,
        nonrecursive: bool,
        /// A `shared` bind: the copy of the source's mount taken in the host's namespace
        /// ([`shared_sources`]), attached instead of a bind of `source`.
        tree: Option<Rc<OwnedFd>>,
    },
    /// A new tmpfs with the spec's options ([`TmpfsOptions`]).
    Tmpfs { dest: String, options: Vec<String> },
}

/// The detached copies of the sources of the spec's `shared` and `rshared` binds (in the
/// spec's order, `None` for the other mounts), taken in the caller's mount namespace: the
/// shim calls this before it leaves the host's. Each copy is a peer of the source's mount,
/// which must be shared (Docker's message otherwise).
pub(crate) fn shared_sources(spec: &ContainerSpec) -> Result<Vec<Option<OwnedFd>>, String> {
    let mut out = Vec::with_capacity(spec.mounts.len());
    let mut mountinfo = None;
    for m in &spec.mounts {
        if m.kind != MountKind::Bind
            || !matches!(m.propagation, Propagation::Shared | Propagation::RShared)
        {
            out.push(None);
            continue;
        }
        let src = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
            .open(&m.source)
            .map_err(ctx(m.source.display()))?;
        let id = sys::mount_id(src.as_fd()).map_err(ctx(m.source.display()))?;
        if mountinfo.is_none() {
            mountinfo = Some(
                std::fs::read_to_string("/proc/self/mountinfo")
                    .map_err(ctx("/proc/self/mountinfo"))?,
            );
        }
        let (mount_point, shared) = mount_sharing(mountinfo.as_deref().unwrap_or(""), id)
            .ok_or_else(|| format!("{}: its mount is not listed", m.source.display()))?;
        if !shared {
            return Err(format!(
                "path {} is mounted on {mount_point} but it is not a shared mount",
                m.source.display()
            ));
        }
        let tree = sys::open_tree_clone_fd(src.as_fd(), !m.nonrecursive)
            .map_err(ctx(format!("copy the mount of {}", m.source.display())))?;
        out.push(Some(tree));
    }
    Ok(out)
}

/// The mount point of mount `id` in `mountinfo` and whether it is shared.
fn mount_sharing(mountinfo: &str, id: u64) -> Option<(String, bool)> {
    mountinfo.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.first()?.parse::<u64>().ok()? != id {
            return None;
        }
        let shared = fields
            .get(6..)?
            .iter()
            .take_while(|f| **f != "-")
            .any(|f| f.starts_with("shared:"));
        Some((crate::cgroups::unescape_mountinfo(fields.get(4)?), shared))
    })
}

/// Docker's mounts, then the spec's bind mounts and the `--init` binary, in runc's order.
/// `trees` are the copies of the `shared` binds' sources ([`shared_sources`]), by mount.
pub(crate) fn plan_mounts(
    spec: &ContainerSpec,
    v2: bool,
    mut trees: Vec<Option<OwnedFd>>,
) -> Vec<MountStep> {
    let nosuid_noexec_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    let ro = |privileged: bool| {
        if privileged {
            MsFlags::empty()
        } else {
            MsFlags::MS_RDONLY
        }
    };
    let fs = |dest, fstype, source, flags, data: &str, real_dir| MountStep::Fs {
        dest,
        fstype,
        source,
        flags,
        data: data.to_string(),
        real_dir,
    };
    let mut steps = vec![
        fs("/proc", "proc", "proc", nosuid_noexec_nodev, "", true),
        fs(
            "/dev",
            "tmpfs",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
            "mode=755,size=65536k",
            false,
        ),
        fs(
            "/dev/pts",
            "devpts",
            "devpts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5",
            false,
        ),
        fs(
            "/sys",
            "sysfs",
            "sysfs",
            nosuid_noexec_nodev | ro(spec.privileged),
            "",
            true,
        ),
        MountStep::Cgroup {
            readonly: !spec.privileged,
            v2,
        },
        fs(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            nosuid_noexec_nodev,
            "",
            false,
        ),
    ];
    match spec.shm {
        Shm::Tmpfs(size) => steps.push(MountStep::Fs {
            dest: "/dev/shm",
            fstype: "tmpfs",
            source: "shm",
            flags: nosuid_noexec_nodev,
            data: format!("mode=1777,size={size}"),
            real_dir: false,
        }),
        Shm::None => {}
        Shm::Host => steps.push(MountStep::Bind {
            source: PathBuf::from("/dev/shm"),
            dest: "/dev/shm".to_string(),
            readonly: None,
            propagation: Propagation::RPrivate,
            nonrecursive: false,
            tree: None,
        }),
        Shm::Process(pid) => steps.push(MountStep::ShmOf { pid }),
    }
    trees.resize_with(spec.mounts.len(), || None);
    for (m, tree) in spec.mounts.iter().zip(trees) {
        steps.push(match m.kind {
            MountKind::Bind => MountStep::Bind {
                source: m.source.clone(),
                dest: m.destination.clone(),
                readonly: m.readonly.then_some(m.readonly_depth),
                propagation: m.propagation,
                nonrecursive: m.nonrecursive,
                tree: tree.map(Rc::new),
            },
            MountKind::Tmpfs => MountStep::Tmpfs {
                dest: m.destination.clone(),
                options: m
                    .options
                    .iter()
                    .cloned()
                    .chain(m.readonly.then(|| "ro".to_string()))
                    .collect(),
            },
        });
    }
    if let Some(init) = &spec.init {
        steps.push(MountStep::Bind {
            source: init.clone(),
            dest: INIT_PATH.to_string(),
            readonly: Some(ReadOnlyDepth::Recursive),
            propagation: Propagation::RPrivate,
            nonrecursive: false,
            tree: None,
        });
    }
    steps
}

fn fd_path(fd: RawFd) -> String {
    format!("/proc/self/fd/{fd}")
}

fn ctx(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> String {
    move |e| format!("{what}: {e}")
}

fn errno_ctx(what: impl std::fmt::Display) -> impl FnOnce(nix::errno::Errno) -> String {
    move |e| format!("{what}: {}", e.desc().to_lowercase())
}

/// Set in the container's init once a `shared` bind is attached: from then on every mount
/// target is checked not to be on a shared mount (see [`refuse_on_shared`]).
static SHARED_ATTACHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Refuses a mount on `fd` (a target, `dest` in the container) when the mount it is on is
/// shared, once a `shared` bind is in the container: a mount there would join the host's
/// peer group and stay on the host, writable whatever berth makes of it next (an `--init`
/// binary redirected into a shared bind by a symlink, a read-only bind nested in one, a
/// masked path's tmpfs hiding the host's files). Costs nothing without a shared bind.
fn refuse_on_shared(fd: &File, dest: &str) -> Result<(), String> {
    if !SHARED_ATTACHED.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(());
    }
    let id = sys::mount_id(fd.as_fd()).map_err(ctx(format!("mount destination {dest}")))?;
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(ctx("/proc/self/mountinfo"))?;
    match mount_sharing(&info, id) {
        Some((_, false)) => Ok(()),
        // The mount point as this namespace names it is under berth's own directories:
        // the destination says enough.
        Some((_, true)) => Err(format!(
            "mount destination {dest} is on a shared mount (inside a shared or rshared bind): \
             a mount there would reach the host, so berth refuses it (mount it outside the \
             shared bind)"
        )),
        None => Err(format!("mount destination {dest}: its mount is not listed")),
    }
}

/// Opens `dest` inside the root, creating it (a directory, or an empty file when `file`)
/// if it is missing; refused on a shared mount ([`refuse_on_shared`]).
fn target(root: &Root, dest: &str, file: bool) -> Result<File, String> {
    if SHARED_ATTACHED.load(std::sync::atomic::Ordering::Relaxed) {
        // The deepest part that exists, before anything is made: not even an empty mount
        // point goes into a shared mount.
        let mut probe = dest.trim_end_matches('/');
        loop {
            match root.open_at(if probe.is_empty() { "/" } else { probe }, libc::O_PATH) {
                Ok(f) => {
                    refuse_on_shared(&f, dest)?;
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && !probe.is_empty() => {
                    probe = probe.rsplit_once('/').map_or("", |(p, _)| p);
                }
                Err(_) => break,
            }
        }
    }
    let t = target_unchecked(root, dest, file)?;
    refuse_on_shared(&t, dest)?;
    Ok(t)
}

fn target_unchecked(root: &Root, dest: &str, file: bool) -> Result<File, String> {
    match root.open_at(dest, libc::O_PATH) {
        Ok(f) => return Ok(f),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(format!("mount destination {dest}: {e}")),
    }
    let (parent, name) = dest
        .trim_end_matches('/')
        .rsplit_once('/')
        .unwrap_or(("", dest));
    root.mkdir_all(parent)
        .map_err(ctx(format!("mount destination {dest}")))?;
    let dir = root
        .open_at(parent, libc::O_PATH | libc::O_DIRECTORY)
        .map_err(ctx(format!("mount destination {dest}")))?;
    let cname = CString::new(name).map_err(|_| format!("invalid mount destination {dest:?}"))?;
    // SAFETY: the *at calls read a NUL-terminated single component relative to a live
    // directory descriptor; a created file's descriptor is closed at once.
    let rc = unsafe {
        if file {
            let fd = libc::openat(
                dir.as_raw_fd(),
                cname.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o644,
            );
            if fd >= 0 {
                libc::close(fd);
            }
            fd.min(0)
        } else {
            libc::mkdirat(dir.as_raw_fd(), cname.as_ptr(), 0o755)
        }
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(format!("mount destination {dest}: {e}"));
        }
    }
    root.open_at(dest, libc::O_PATH)
        .map_err(ctx(format!("mount destination {dest}")))
}

/// Sets up every step below `rootfs` (bound onto itself first so that it is a mount point
/// for `pivot_root`), then the devices and the `/dev` links. `cgroup_ready` runs once, right
/// before the cgroup step (or at the end without one): it returns when the container's cgroup
/// exists and this process is in it, which the cgroup views need, and the mounts before it
/// run meanwhile.
pub(crate) fn setup(
    rootfs: &Path,
    steps: &[MountStep],
    cgroup_views: &CgroupViews,
    devices: &[Device],
    cgroup_ready: &mut dyn FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let mut ready = Some(cgroup_ready);
    // Nothing mounted here may propagate back to the shim's namespace (or the host's).
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(errno_ctx("make / a slave"))?;
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(errno_ctx("bind the root filesystem"))?;
    // Opened after the bind: a descriptor from before would name the directory underneath.
    let root = Root::open(rootfs).map_err(ctx(rootfs.display()))?;
    for step in steps {
        match step {
            MountStep::Fs {
                dest,
                fstype,
                source,
                flags,
                data,
                real_dir,
            } => {
                let t = if *real_dir {
                    root.mkdir_all(dest).map_err(ctx(format!("mkdir {dest}")))?;
                    let t = root
                        .open_no_symlinks(dest, libc::O_PATH | libc::O_DIRECTORY)
                        .map_err(|e| match e.raw_os_error() {
                            Some(libc::ELOOP) | Some(libc::ENOTDIR) => format!(
                                "mount destination {dest} must be a real directory, not a \
                                 symlink or a file"
                            ),
                            _ => format!("mount destination {dest}: {e}"),
                        })?;
                    refuse_on_shared(&t, dest)?;
                    t
                } else {
                    target(&root, dest, false)?
                };
                new_fs(&root, &t, dest, source, fstype, *flags, data)?;
            }
            MountStep::Cgroup { readonly, v2 } => {
                if let Some(ready) = ready.take() {
                    ready()?;
                }
                mount_cgroup(&root, *readonly, *v2, cgroup_views)?;
            }
            MountStep::ShmOf { pid } => {
                let t = target(&root, "/dev/shm", false)?;
                let tree = shm_of(*pid)?;
                sys::move_mount_onto(tree.as_raw_fd(), t.as_raw_fd())
                    .map_err(ctx("attach the shared /dev/shm"))?;
                // A copy of the other container's mount keeps its peer group: this one
                // never asked to share mount events with anybody.
                let t = root
                    .open_at("/dev/shm", libc::O_PATH)
                    .map_err(ctx("the shared /dev/shm"))?;
                mount(
                    None::<&str>,
                    fd_path(t.as_raw_fd()).as_str(),
                    None::<&str>,
                    MsFlags::MS_PRIVATE | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(errno_ctx("make the shared /dev/shm private"))?;
            }
            MountStep::Bind {
                source,
                dest,
                readonly,
                propagation,
                nonrecursive,
                tree,
            } => bind(
                &root,
                source,
                tree.as_deref(),
                dest,
                *readonly,
                *propagation,
                !*nonrecursive,
            )?,
            MountStep::Tmpfs { dest, options } => tmpfs(&root, dest, options)?,
        }
    }
    if let Some(ready) = ready.take() {
        ready()?;
    }
    let dev = root
        .open_at("/dev", libc::O_PATH | libc::O_DIRECTORY)
        .map_err(ctx("/dev"))?;
    make_devices(&root, dev.as_raw_fd(), devices)?;
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ]
    .into_iter()
    // runc links /dev/core when the kernel has /proc/kcore (CONFIG_PROC_KCORE); the
    // container's /proc masks kcore, so the link leads nowhere readable.
    .chain(
        std::path::Path::new("/proc/kcore")
            .exists()
            .then_some(("core", "/proc/kcore")),
    ) {
        match nix::unistd::symlinkat(to, Some(dev.as_raw_fd()), link) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(format!("symlink /dev/{link}: {}", e.desc())),
        }
    }
    Ok(())
}

/// A new tmpfs on `dest` inside the root (created when missing) with `options` merged as
/// Docker merges them; read-only through a remount of the new mount, as the other file
/// systems.
fn tmpfs(root: &Root, dest: &str, options: &[String]) -> Result<(), String> {
    let opts = TmpfsOptions::parse(options).map_err(|e| format!("tmpfs on {dest}: {e}"))?;
    let flags = MsFlags::from_bits_truncate(opts.flags as _);
    let t = target(root, dest, false)?;
    new_fs(root, &t, dest, "tmpfs", "tmpfs", flags, &opts.data)
}

/// Mounts a new `fstype` on the open target `t` (`dest` inside the root), then, for
/// `MS_RDONLY`, makes the new mount read-only through a fresh descriptor of it. Read-only
/// per mount, never on the superblock: sysfs of the host's network namespace (`--network
/// host`) is the host's own superblock.
fn new_fs(
    root: &Root,
    t: &File,
    dest: &str,
    source: &str,
    fstype: &str,
    flags: MsFlags,
    data: &str,
) -> Result<(), String> {
    let data = (!data.is_empty()).then_some(data);
    mount(
        Some(source),
        fd_path(t.as_raw_fd()).as_str(),
        Some(fstype),
        flags - MsFlags::MS_RDONLY,
        data,
    )
    .map_err(errno_ctx(format!("mount {fstype} on {dest}")))?;
    if flags.contains(MsFlags::MS_RDONLY) {
        let t = root
            .open_at(dest, libc::O_PATH)
            .map_err(ctx(format!("mount destination {dest}")))?;
        remount_readonly(&fd_path(t.as_raw_fd()), &t)
            .map_err(ctx(format!("remount {dest} read-only")))?;
    }
    Ok(())
}

/// Binds `source` (from the caller's mount namespace) on `dest` inside the root, creating
/// the target (a directory, or an empty file for a file source) when it is missing; then
/// applies the propagation and, for `readonly`, makes it (and, as deep as asked, every mount
/// below it) read-only. `recursive`: the mounts below the source come along (`rbind`, Docker's
/// default). The source is opened once and bound through that descriptor: what was
/// checked is what is mounted, whatever a path component is swapped for meanwhile. With a
/// `tree` (a `shared` bind's copy of the source, [`shared_sources`]) that copy is attached
/// instead: it stays a peer of the host's mount.
pub(crate) fn bind(
    root: &Root,
    source: &Path,
    tree: Option<&OwnedFd>,
    dest: &str,
    readonly: Option<ReadOnlyDepth>,
    propagation: Propagation,
    recursive: bool,
) -> Result<(), String> {
    if let Some(tree) = tree {
        let meta = File::from(tree.try_clone().map_err(ctx(source.display()))?)
            .metadata()
            .map_err(ctx(source.display()))?;
        let t = target(root, dest, !meta.is_dir())?;
        sys::move_mount_onto(tree.as_raw_fd(), t.as_raw_fd())
            .map_err(ctx(format!("attach {} on {dest}", source.display())))?;
        SHARED_ATTACHED.store(true, std::sync::atomic::Ordering::Relaxed);
    } else {
        let src = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
            .open(source)
            .map_err(ctx(source.display()))?;
        let meta = src.metadata().map_err(ctx(source.display()))?;
        let t = target(root, dest, !meta.is_dir())?;
        let rec = if recursive {
            MsFlags::MS_REC
        } else {
            MsFlags::empty()
        };
        mount(
            Some(fd_path(src.as_raw_fd()).as_str()),
            fd_path(t.as_raw_fd()).as_str(),
            None::<&str>,
            MsFlags::MS_BIND | rec,
            None::<&str>,
        )
        .map_err(errno_ctx(format!("bind {} on {dest}", source.display())))?;
    }
    // The new mount, not the directory it covers.
    let t = root
        .open_at(dest, libc::O_PATH)
        .map_err(ctx(format!("mount destination {dest}")))?;
    let p = fd_path(t.as_raw_fd());
    let flags = match propagation {
        Propagation::Private => MsFlags::MS_PRIVATE,
        Propagation::RPrivate => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        // A bind of a slave is a slave of the same master: the container's
        // tree was made a slave of the shim's, which is a slave of the host's.
        Propagation::Slave => MsFlags::MS_SLAVE,
        Propagation::RSlave => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        // Already a peer of the source's mount; `rshared` makes the mounts below it shared
        // too (those that were not shared on the host get groups of their own).
        Propagation::Shared => MsFlags::MS_SHARED,
        Propagation::RShared => MsFlags::MS_SHARED | MsFlags::MS_REC,
    };
    mount(None::<&str>, p.as_str(), None::<&str>, flags, None::<&str>)
        .map_err(errno_ctx(format!("make {dest} {}", propagation.as_str())))?;
    // Recursively by default, as Docker does since v25 (kernel 5.12+): a mount below the
    // source (`-v /:/host:ro` and the host's /proc, /run, ...) must not stay writable.
    // Kernels without mount_setattr get Docker's fallback, the top mount only, unless the
    // depth is forced.
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    let top_only = |p: &str, t: &File| {
        remount_readonly(p, t).map_err(ctx(format!("remount {dest} read-only")))
    };
    match readonly {
        None => {}
        Some(ReadOnlyDepth::NonRecursive) => top_only(&p, &t)?,
        Some(depth) => match sys::mount_setattr_recursive(t.as_raw_fd(), MOUNT_ATTR_RDONLY) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) && depth != ReadOnlyDepth::Force => {
                top_only(&p, &t)?
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                return Err(format!(
                    "make {dest} read-only recursively: rro is not supported: {e} (kernel is \
                     older than 5.12?)"
                ))
            }
            r => r.map_err(ctx(format!("make {dest} read-only")))?,
        },
    }
    Ok(())
}

/// A detached copy of the `/dev/shm` mount of process `pid` (another container's init):
/// taken inside its mount namespace, where this process goes for the one call and comes
/// back (its root is its namespace's root then, as before; the mounts run before
/// `pivot_root`).
fn shm_of(pid: i32) -> Result<std::os::fd::OwnedFd, String> {
    use nix::sched::{setns, CloneFlags};
    let own = File::open("/proc/self/ns/mnt").map_err(ctx("own mount namespace"))?;
    let theirs = File::open(format!("/proc/{pid}/ns/mnt")).map_err(ctx(
        "the mount namespace of the container whose IPC is joined",
    ))?;
    setns(&theirs, CloneFlags::CLONE_NEWNS).map_err(errno_ctx(
        "enter the mount namespace of the container whose IPC is joined",
    ))?;
    let tree = sys::open_tree_clone(c"/dev/shm");
    if let Err(e) = setns(&own, CloneFlags::CLONE_NEWNS) {
        // Never go on in the other container's mount namespace.
        return Err(format!("return to the own mount namespace: {}", e.desc()));
    }
    tree.map_err(ctx("copy /dev/shm of the container whose IPC is joined"))
}

/// A bind remount read-only that keeps the mount's other flags (nosuid, nodev, noexec and
/// the atime mode): a plain `MS_RDONLY` remount would clear them.
fn remount_readonly(path: &str, fd: &File) -> io::Result<()> {
    let flags = preserved_flags(fd)?;
    mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

fn preserved_flags(fd: &File) -> io::Result<MsFlags> {
    let st = nix::sys::statvfs::fstatvfs(fd)?;
    let f = st.flags();
    use nix::sys::statvfs::FsFlags;
    let mut flags = MsFlags::empty();
    for (from, to) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(from) {
            flags |= to;
        }
    }
    Ok(flags)
}

fn mount_cgroup(root: &Root, readonly: bool, v2: bool, views: &CgroupViews) -> Result<(), String> {
    let dest = "/sys/fs/cgroup";
    let t = root
        .open_no_symlinks(dest, libc::O_PATH | libc::O_DIRECTORY)
        .map_err(ctx(format!("mount destination {dest}")))?;
    let base = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    if v2 {
        // The cgroup2 superblock is the host's: read-only per mount only.
        mount(
            Some("cgroup"),
            fd_path(t.as_raw_fd()).as_str(),
            Some("cgroup2"),
            base,
            None::<&str>,
        )
        .map_err(errno_ctx("mount cgroup2 on /sys/fs/cgroup"))?;
        if readonly {
            let t = root.open_at(dest, libc::O_PATH).map_err(ctx(dest))?;
            remount_readonly(&fd_path(t.as_raw_fd()), &t)
                .map_err(ctx("remount /sys/fs/cgroup read-only"))?;
        }
        return Ok(());
    }
    mount(
        Some("tmpfs"),
        fd_path(t.as_raw_fd()).as_str(),
        Some("tmpfs"),
        base,
        Some("mode=755"),
    )
    .map_err(errno_ctx("mount tmpfs on /sys/fs/cgroup"))?;
    drop(t);
    let dir = root
        .open_at(dest, libc::O_PATH | libc::O_DIRECTORY)
        .map_err(ctx(dest))?;
    for (name, host) in &views.0 {
        let cname = CString::new(name.as_str()).map_err(|_| format!("cgroup name {name:?}"))?;
        // SAFETY: mkdirat with a live directory fd and a NUL-terminated single component.
        if unsafe { libc::mkdirat(dir.as_raw_fd(), cname.as_ptr(), 0o755) } != 0 {
            return Err(format!(
                "mkdir /sys/fs/cgroup/{name}: {}",
                io::Error::last_os_error()
            ));
        }
        let sub = openat_path(dir.as_raw_fd(), &cname).map_err(ctx(format!("{dest}/{name}")))?;
        let p = fd_path(sub.as_raw_fd());
        mount(
            Some(host.as_path()),
            p.as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(errno_ctx(format!("bind cgroup {name}")))?;
    }
    for (link, to) in &views.1 {
        nix::unistd::symlinkat(to.as_str(), Some(dir.as_raw_fd()), link.as_str())
            .map_err(errno_ctx(format!("symlink /sys/fs/cgroup/{link}")))?;
    }
    // nosuid, nodev, noexec (and read-only unless privileged) on the tmpfs and every
    // hierarchy below it in one call, instead of a remount each.
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const MOUNT_ATTR_NOSUID: u64 = 0x2;
    const MOUNT_ATTR_NODEV: u64 = 0x4;
    const MOUNT_ATTR_NOEXEC: u64 = 0x8;
    let mut attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    if readonly {
        attrs |= MOUNT_ATTR_RDONLY;
    }
    sys::mount_setattr_recursive(dir.as_raw_fd(), attrs)
        .map_err(ctx("make /sys/fs/cgroup read-only"))?;
    Ok(())
}

/// An `O_PATH` descriptor of a single component below `dir`, not following a symlink.
fn openat_path(dir: RawFd, name: &CStr) -> io::Result<File> {
    // SAFETY: openat reads a NUL-terminated name relative to a live directory descriptor;
    // the new descriptor is owned by the returned File.
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned only here.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Makes each device node: below `/dev` relative to the container's `/dev` (a tmpfs made
/// here), elsewhere (`--device /dev/x:/opt/x`) with its directory resolved inside the root.
fn make_devices(root: &Root, dev: RawFd, devices: &[Device]) -> Result<(), String> {
    for d in devices {
        let mut owned = None;
        let (mut dir, rel) = match d.path.strip_prefix("/dev/") {
            Some(rel) => (dev, rel),
            None => {
                let (parent, name) = d.path.rsplit_once('/').unwrap_or(("", &d.path));
                root.mkdir_all(parent).map_err(ctx(&d.path))?;
                let f = root
                    .open_at(parent, libc::O_PATH | libc::O_DIRECTORY)
                    .map_err(ctx(&d.path))?;
                let fd = f.as_raw_fd();
                owned = Some(f);
                (fd, name)
            }
        };
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        for comp in parent.split('/').filter(|c| !c.is_empty()) {
            let c = CString::new(comp).map_err(|_| format!("device path {:?}", d.path))?;
            // SAFETY: mkdirat with a live directory fd and a NUL-terminated component.
            unsafe { libc::mkdirat(dir, c.as_ptr(), 0o755) };
            let f = openat_path(dir, &c).map_err(ctx(&d.path))?;
            dir = f.as_raw_fd();
            owned = Some(f);
        }
        let cname = CString::new(name).map_err(|_| format!("device path {:?}", d.path))?;
        let rdev = libc::makedev(d.major as u32, d.minor as u32);
        match sys::mknod_at(dir, &cname, d.kind, rdev, d.mode, d.uid, d.gid) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(format!("mknod {}: {e}", d.path)),
        }
        drop(owned);
    }
    Ok(())
}

/// After `pivot_root`, in runc's order: Docker's read-only paths (bound onto themselves,
/// read-only) and masked paths (a directory gets an empty read-only tmpfs, a file
/// `/dev/null`); paths this kernel lacks are skipped. Then the read-only root, when asked.
pub(crate) fn finish_root(
    masked: &[CString],
    readonly: &[CString],
    readonly_root: bool,
) -> Result<(), String> {
    let check = |p: &str| match File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(p)
    {
        Ok(f) => refuse_on_shared(&f, p),
        Err(_) => Ok(()),
    };
    for path in readonly {
        let p = path.to_string_lossy();
        check(&p)?;
        match mount(
            Some(p.as_ref()),
            p.as_ref(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => {}
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(format!("read-only {p}: {}", e.desc())),
        }
        let f = File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
            .open(p.as_ref())
            .map_err(ctx(format!("read-only {p}")))?;
        let flags = preserved_flags(&f).map_err(ctx(format!("read-only {p}")))?;
        mount(
            None::<&str>,
            p.as_ref(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC | flags,
            None::<&str>,
        )
        .map_err(errno_ctx(format!("remount {p} read-only")))?;
    }
    for path in masked {
        let p = path.to_string_lossy();
        check(&p)?;
        let meta = match std::fs::symlink_metadata(p.as_ref()) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("mask {p}: {e}")),
        };
        let result = if meta.is_dir() {
            mount(
                Some("tmpfs"),
                p.as_ref(),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
        } else {
            mount(
                Some("/dev/null"),
                p.as_ref(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        result.map_err(errno_ctx(format!("mask {p}")))?;
    }
    if readonly_root {
        let f = File::open("/").map_err(ctx("/"))?;
        remount_readonly("/", &f).map_err(ctx("remount / read-only"))?;
    }
    Ok(())
}

/// Binds the pty slave of `master` (in the container's devpts) at `/dev/console`, as runc does
/// for a container with a terminal. Runs after `pivot_root`.
pub(crate) fn bind_console(master: &std::os::fd::OwnedFd) -> Result<(), String> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes the pty number into a valid c_uint.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) } != 0 {
        return Err(format!("pty number: {}", io::Error::last_os_error()));
    }
    let console = "/dev/console";
    match File::options()
        .write(true)
        .create(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(console)
    {
        Ok(f) => refuse_on_shared(&f, console)?,
        Err(e) => return Err(format!("create {console}: {e}")),
    }
    mount(
        Some(format!("/dev/pts/{n}").as_str()),
        console,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(errno_ctx(format!("bind the terminal at {console}")))
}

//! A container's filesystem as berthd sees it for `docker cp`: one directory descriptor, the
//! container's root, below which every lookup is made with `openat2(RESOLVE_IN_ROOT)`.
//!
//! - A running (or paused) container: the root of its init, `/proc/<init>/root`, which is
//!   the container's own mount namespace (its bind mounts included). The pid comes from the
//!   shim, and the shim is asked again after `/proc/<pid>` is open: only then is the
//!   directory known to be the init's and not a recycled pid's.
//! - A stopped container: its overlay (the image's layers and its rw layer) and its bind
//!   mounts, mounted by a short-lived thread in a private mount namespace of its own (a
//!   copy of berthd's with every mount made private first, so that nothing propagates to the
//!   host). The thread hands back the root and its namespace's descriptor and ends; the
//!   descriptor keeps the namespace, and so the bind mounts below the root, alive until the
//!   view is dropped, and then the kernel takes all of it down. berthd's own mount namespace
//!   is never changed.
//!
//! [`openat2`] is the safe wrapper the engine resolves paths with.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::RuntimeError;
use crate::rootfs::{self, Root};
use crate::shim::{self, ShimClient};
use crate::spec::{ContainerMount, Mount, MountKind, Propagation};

/// openat2(2)'s `RESOLVE_*` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolve(u64);

impl Resolve {
    /// Treat the directory as the root: absolute paths, absolute symlinks and `..` stay
    /// below it.
    pub const IN_ROOT: Resolve = Resolve(libc::RESOLVE_IN_ROOT);
    /// Refuse (EXDEV) any path that would leave the directory.
    pub const BENEATH: Resolve = Resolve(libc::RESOLVE_BENEATH);
    /// Refuse (ELOOP) any symlink on the way.
    pub const NO_SYMLINKS: Resolve = Resolve(libc::RESOLVE_NO_SYMLINKS);
    /// Refuse (ELOOP) `/proc/<pid>/{root,cwd,fd/N,exe}` style links on the way.
    pub const NO_MAGICLINKS: Resolve = Resolve(libc::RESOLVE_NO_MAGICLINKS);
}

impl std::ops::BitOr for Resolve {
    type Output = Resolve;
    fn bitor(self, other: Resolve) -> Resolve {
        Resolve(self.0 | other.0)
    }
}

/// openat2(2): opens `path` relative to `dir` with `flags` (close-on-exec always), `mode` for
/// a created file, resolved as `resolve` says. An empty path opens `dir` itself. A lookup the
/// kernel refused with `EAGAIN` (a `..` raced by a rename) is tried again.
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &OsStr,
    flags: i32,
    mode: u32,
    resolve: Resolve,
) -> io::Result<OwnedFd> {
    rootfs::openat2_raw(dir.as_raw_fd(), path.as_bytes(), flags, mode, resolve.0)
}

/// A container's root directory, open (see the module's comment).
#[derive(Debug)]
pub struct ContainerFs {
    root: OwnedFd,
    /// The private mount namespace of a stopped container's view: its bind mounts hang
    /// below the root only while the namespace lives.
    _namespace: Option<OwnedFd>,
}

impl ContainerFs {
    /// The root directory (an `O_PATH` descriptor).
    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// A plain directory as a root (tests, tools).
    pub fn of_directory(dir: &Path) -> io::Result<ContainerFs> {
        Ok(ContainerFs {
            root: open_path(dir)?,
            _namespace: None,
        })
    }

    /// The filesystem of the running (or paused) container whose shim serves `bundle`, as
    /// its init sees it.
    pub fn of_running(bundle: &Path) -> Result<ContainerFs, RuntimeError> {
        let id = bundle
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let live_pid = || -> Result<i32, RuntimeError> {
            let state = ShimClient::connect(bundle)
                .and_then(|mut c| c.state())
                .map_err(|e| shim::runtime_error(e, &id))?;
            match state.status.as_str() {
                "running" | "paused" if state.pid > 0 => Ok(state.pid),
                _ => Err(RuntimeError::Conflict(format!(
                    "container {id} is not running"
                ))),
            }
        };
        let pid = live_pid()?;
        let proc_dir = open_path(Path::new(&format!("/proc/{pid}")))
            .map_err(|e| RuntimeError::io(format!("/proc/{pid}"), e))?;
        // The shim reaps its init: while it still calls it running, the pid is the init's,
        // so the directory opened before this answer is the init's.
        if live_pid()? != pid {
            return Err(RuntimeError::Conflict(format!(
                "container {id} is not running"
            )));
        }
        let root = nix::fcntl::openat(
            Some(proc_dir.as_raw_fd()),
            "root",
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| match e {
            nix::errno::Errno::ENOENT | nix::errno::Errno::ESRCH => {
                RuntimeError::Conflict(format!("container {id} is not running"))
            }
            e => RuntimeError::io(format!("/proc/{pid}/root"), e.into()),
        })?;
        Ok(ContainerFs {
            root: owned(root),
            _namespace: None,
        })
    }

    /// The filesystem of a stopped container: `rootfs` (its overlay) mounted on
    /// `mountpoint` and `binds` below it, in a private mount namespace (see the module's
    /// comment). Missing bind targets are created in the container's rw layer, as Docker
    /// and a start do.
    pub fn of_stopped(
        rootfs: &[Mount],
        binds: &[ContainerMount],
        mountpoint: &Path,
    ) -> Result<ContainerFs, RuntimeError> {
        let rootfs = rootfs.to_vec();
        let binds = binds.to_vec();
        let mountpoint = mountpoint.to_path_buf();
        // A thread of its own: it leaves berthd's mount namespace and never comes back, so it
        // must not be one of tokio's pool threads; it ends right after.
        std::thread::Builder::new()
            .name("berth-cp-mount".into())
            .spawn(move || mount_view(&rootfs, &binds, &mountpoint))
            .map_err(|e| RuntimeError::io(PathBuf::from("/proc/thread-self"), e))?
            .join()
            .unwrap_or_else(|_| Err(RuntimeError::Start("the mounting thread panicked".into())))
    }

    /// `user[:group]` (Docker's `-u`, resolved with the container's `/etc/passwd` and
    /// `/etc/group`, read inside the root) as uid and gid.
    pub fn user_ids(&self, spec: &str) -> Result<(u32, u32), RuntimeError> {
        let root = Root::from_fd(
            self.root
                .try_clone()
                .map_err(|e| RuntimeError::io(PathBuf::from("/"), e))?,
        );
        let read = |p: &str| {
            root.read_to_string(p)
                .map_err(|e| RuntimeError::io(PathBuf::from(p), e))
        };
        let user = crate::user::resolve(
            spec,
            read("/etc/passwd")?.as_deref(),
            read("/etc/group")?.as_deref(),
            &[],
        )?;
        Ok((user.uid, user.gid))
    }
}

fn owned(fd: std::os::fd::RawFd) -> OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` was just returned by the kernel (through nix) and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn open_path(path: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    Ok(std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(path)?
        .into())
}

/// The stopped container's view, built on the calling thread (which leaves berthd's mount
/// namespace for a private one and must end afterwards).
fn mount_view(
    rootfs: &[Mount],
    binds: &[ContainerMount],
    mountpoint: &Path,
) -> Result<ContainerFs, RuntimeError> {
    use nix::mount::{mount, MsFlags};
    use nix::sched::{unshare, CloneFlags};
    let fail = |what: &str, e: String| RuntimeError::Start(format!("{what}: {e}"));
    unshare(CloneFlags::CLONE_FS | CloneFlags::CLONE_NEWNS)
        .map_err(|e| fail("a private mount namespace", e.desc().to_lowercase()))?;
    // Before anything is mounted: nothing may propagate back to berthd's (the host's)
    // namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| fail("make the mounts private", e.desc().to_lowercase()))?;
    rootfs::mount_rootfs(rootfs, mountpoint)?;
    // Opened after the mount: it names the overlay's root, not the directory below.
    let root = Root::open(mountpoint).map_err(|e| RuntimeError::io(mountpoint, e))?;
    // A tmpfs of a stopped container holds nothing: its mount point shows the layer below,
    // as Docker's view of a stopped container does.
    for b in binds.iter().filter(|b| b.kind == MountKind::Bind) {
        crate::linux::mounts::bind(
            &root,
            &b.source,
            None,
            &b.destination,
            b.readonly.then_some(b.readonly_depth),
            Propagation::RPrivate,
            !b.nonrecursive,
        )
        .map_err(|e| fail("bind mount", e))?;
    }
    let namespace: OwnedFd = File::open("/proc/thread-self/ns/mnt")
        .map_err(|e| RuntimeError::io(PathBuf::from("/proc/thread-self/ns/mnt"), e))?
        .into();
    Ok(ContainerFs {
        root: root.into_fd(),
        _namespace: Some(namespace),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn require_root() {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(euid, 0, "this test needs root (it mounts)");
    }

    fn read(fs: &ContainerFs, path: &str) -> io::Result<String> {
        let fd = openat2(
            fs.root(),
            OsStr::new(path),
            libc::O_RDONLY,
            0,
            Resolve::IN_ROOT | Resolve::NO_MAGICLINKS,
        )?;
        io::read_to_string(File::from(fd))
    }

    /// A stopped container's view: its layers merged, its binds below, an escaping symlink
    /// kept inside, and nothing of it mounted in berthd's own namespace.
    #[test]
    fn a_stopped_containers_view_has_its_layers_and_binds_and_leaves_no_mount() {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["lower/etc", "upper", "work", "mnt", "host"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("lower/etc/from-lower"), "lower").unwrap();
        std::fs::write(d.join("upper/from-upper"), "upper").unwrap();
        std::os::unix::fs::symlink("/", d.join("upper/escape")).unwrap();
        std::fs::write(d.join("host/on-host"), "bound").unwrap();
        let rootfs = [Mount {
            fstype: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                format!("lowerdir={}", d.join("lower").display()),
                format!("upperdir={}", d.join("upper").display()),
                format!("workdir={}", d.join("work").display()),
            ],
        }];
        let binds = [ContainerMount {
            source: d.join("host"),
            destination: "/data/vol".into(),
            readonly: true,
            ..Default::default()
        }];
        let fs = ContainerFs::of_stopped(&rootfs, &binds, &d.join("mnt")).unwrap();
        assert_eq!(read(&fs, "/etc/from-lower").unwrap(), "lower");
        assert_eq!(read(&fs, "/from-upper").unwrap(), "upper");
        assert_eq!(read(&fs, "/data/vol/on-host").unwrap(), "bound");
        assert_eq!(read(&fs, "/escape/from-upper").unwrap(), "upper");
        let mnt = d.join("mnt").display().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(&mnt),
            "the view leaked into berthd's namespace"
        );
        assert_eq!(std::fs::read_dir(d.join("mnt")).unwrap().count(), 0);
        drop(fs);
        // The bind target was made in the rw layer, as a start makes it.
        assert!(d.join("upper/data/vol").is_dir());
    }
}

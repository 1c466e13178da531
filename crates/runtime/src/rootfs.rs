//! The container's root filesystem on the host side: mounting and unmounting it at
//! `<bundle>/rootfs`, and reading files inside it without ever leaving it (a symlinked
//! `/etc/passwd` pointing at `/etc/shadow` resolves inside the root, never on the host).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::RuntimeError;
use crate::spec::{ContainerMount, Mount};

/// `struct open_how` of openat2(2) (libc's is non-exhaustive, so it cannot be built here).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// How often an `openat2` that the kernel answered with `EAGAIN` is tried again: with
/// `RESOLVE_IN_ROOT` it says so when a rename or a mount elsewhere raced the lookup of a `..`
/// (a container renaming its directories in a loop makes that common).
const OPENAT2_RETRIES: usize = 128;

/// openat2(2) relative to `dir` (an empty `path` is the directory itself), close-on-exec.
pub(crate) fn openat2_raw(
    dir: RawFd,
    path: &[u8],
    flags: i32,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let rel = if path.is_empty() {
        CString::new(".").expect("no nul")
    } else {
        CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?
    };
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: u64::from(mode),
        resolve,
    };
    let mut tries = 0;
    loop {
        // SAFETY: openat2 reads `rel` (a valid NUL-terminated string) and `how` (a valid
        // open_how of the size passed); the returned fd, if any, is owned by nobody else.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                rel.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: `fd` is a fresh descriptor returned by the kernel and owned only here.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let e = io::Error::last_os_error();
        tries += 1;
        if e.raw_os_error() != Some(libc::EAGAIN) || tries >= OPENAT2_RETRIES {
            return Err(e);
        }
    }
}

/// The most [`Root::read_to_string`] reads (`/etc/passwd`, `/etc/group` of an image).
pub(crate) const MAX_READ: u64 = 4 << 20;

/// An `InvalidData` error unless `meta` is a regular file.
fn check_regular(meta: &std::fs::Metadata) -> io::Result<()> {
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok(());
    }
    let what = if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a fifo"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "of an unknown type"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{what}, not a regular file"),
    ))
}

/// An open root directory; every lookup below it is resolved with `RESOLVE_IN_ROOT`.
pub(crate) struct Root {
    dir: OwnedFd,
}

impl Root {
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        let dir = File::open(path)?;
        Ok(Root { dir: dir.into() })
    }

    /// Opens `path` (absolute or relative, inside the root) with `flags`.
    pub(crate) fn open_at(&self, path: &str, flags: i32) -> io::Result<File> {
        self.open_resolve(
            path,
            flags,
            libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
        )
    }

    /// Opens `path` inside the root with `flags`, refusing any symlink on the way (`ELOOP`).
    pub(crate) fn open_no_symlinks(&self, path: &str, flags: i32) -> io::Result<File> {
        self.open_resolve(
            path,
            flags,
            libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS,
        )
    }

    fn open_resolve(&self, path: &str, flags: i32, resolve: u64) -> io::Result<File> {
        let rel = path.trim_start_matches('/');
        openat2_raw(self.dir.as_raw_fd(), rel.as_bytes(), flags, 0, resolve).map(File::from)
    }

    /// A root on an open directory descriptor (a container's root seen from berthd).
    pub(crate) fn from_fd(dir: OwnedFd) -> Root {
        Root { dir }
    }

    /// The directory's descriptor.
    pub(crate) fn into_fd(self) -> OwnedFd {
        self.dir
    }

    /// Reads a whole file inside the root; `Ok(None)` when it does not exist.
    ///
    /// The file is image content, so it is not trusted: it must be a regular file (a FIFO
    /// would block the shim forever; a device node would be opened by its host driver, outside
    /// the container's device cgroup, and `/dev/zero` read until the host runs out of memory)
    /// of at most [`MAX_READ`] bytes. Anything else is an `InvalidData` error that says what
    /// the file is. The type is checked on an `O_PATH` descriptor (which never opens the
    /// device or the FIFO), and the very same inode is then reopened through
    /// `/proc/self/fd`, non-blocking, for reading.
    pub(crate) fn read_to_string(&self, path: &str) -> io::Result<Option<String>> {
        let pathfd = match self.open_at(path, libc::O_PATH) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = pathfd.metadata()?;
        check_regular(&meta)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(format!("/proc/self/fd/{}", pathfd.as_raw_fd()))?;
        let reopened = file.metadata()?;
        if (reopened.dev(), reopened.ino()) != (meta.dev(), meta.ino()) {
            return Err(io::Error::other("file changed while being opened"));
        }
        check_regular(&reopened)?;
        let mut data = Vec::new();
        io::Read::read_to_end(&mut io::Read::take(&mut file, MAX_READ + 1), &mut data)?;
        if data.len() as u64 > MAX_READ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("file is larger than {} MiB", MAX_READ >> 20),
            ));
        }
        String::from_utf8(data)
            .map(Some)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file is not valid utf-8"))
    }

    /// `mkdir -p` inside the root (mode 0755, owned by root, like runc does for the cwd).
    pub(crate) fn mkdir_all(&self, path: &str) -> io::Result<()> {
        let mut prefix = String::new();
        for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
            let parent = if prefix.is_empty() {
                "/".to_string()
            } else {
                prefix.clone()
            };
            prefix.push('/');
            prefix.push_str(comp);
            match self.open_at(&prefix, libc::O_PATH | libc::O_DIRECTORY) {
                Ok(_) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
            let dir = self.open_at(&parent, libc::O_PATH | libc::O_DIRECTORY)?;
            let name =
                CString::new(comp).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            // SAFETY: mkdirat with a valid directory fd and a NUL-terminated single component.
            if unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755) } != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// `stat` of a path inside the root (following symlinks inside it).
    pub(crate) fn metadata(&self, path: &str) -> io::Result<std::fs::Metadata> {
        self.open_at(path, libc::O_PATH)?.metadata()
    }
}

/// Mounts the rootfs mounts in order at `target`.
pub(crate) fn mount_rootfs(mounts: &[Mount], target: &Path) -> Result<(), RuntimeError> {
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = mount_one(m, target) {
            // Leave nothing behind: undo what was mounted so far.
            for _ in 0..i {
                let _ = umount2(target, MntFlags::MNT_DETACH);
            }
            return Err(e);
        }
    }
    Ok(())
}

fn mount_one(m: &Mount, target: &Path) -> Result<(), RuntimeError> {
    let (mut flags, data) = parse_mount_options(&m.options);
    let is_bind = m.fstype == "bind" || flags.contains(MsFlags::MS_BIND);
    if is_bind {
        flags |= MsFlags::MS_BIND;
    }
    if m.fstype == "overlay" && !is_bind {
        if mount_overlay_by_parameters(m, flags, &data, target)? {
            return Ok(());
        }
        // mount(2) copies its options into one page: say so instead of the kernel's EINVAL.
        if data.len() >= PAGE_SIZE {
            let layers = data
                .split(',')
                .find_map(|o| o.strip_prefix("lowerdir="))
                .map_or(0, |l| l.split(':').count());
            return Err(RuntimeError::InvalidSpec(format!(
                "the image has {layers} layers: their overlay mount options ({} bytes) do not fit the {PAGE_SIZE}-byte page of mount(2), and this kernel has no lowerdir+ (Linux 6.8)",
                data.len()
            )));
        }
    }
    let fstype = (!is_bind).then_some(m.fstype.as_str());
    let data = (!data.is_empty()).then_some(data.as_str());
    let mount_flags = if is_bind {
        flags & (MsFlags::MS_BIND | MsFlags::MS_REC)
    } else {
        flags
    };
    mount(Some(m.source.as_str()), target, fstype, mount_flags, data).map_err(|e| {
        RuntimeError::Io {
            path: target.to_path_buf(),
            message: format!("mount {} ({}): {}", m.source, m.fstype, e.desc()),
        }
    })?;
    // A bind mount takes its other flags (ro, nosuid...) only on a remount.
    let rest = flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
    if is_bind && !rest.is_empty() {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | rest,
            None::<&str>,
        )
        .map_err(|e| RuntimeError::Io {
            path: target.to_path_buf(),
            message: format!("remount: {}", e.desc()),
        })?;
    }
    Ok(())
}

/// mount(2) copies its option string into one page.
const PAGE_SIZE: usize = 4096;

// The new mount API's constants (include/uapi/linux/mount.h).
const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// The mount attributes of `fsmount` for these flags; `None` when a flag has none.
fn mount_attributes(flags: MsFlags) -> Option<libc::c_uint> {
    let table = [
        (MsFlags::MS_RDONLY, 0x1),
        (MsFlags::MS_NOSUID, 0x2),
        (MsFlags::MS_NODEV, 0x4),
        (MsFlags::MS_NOEXEC, 0x8),
        (MsFlags::MS_NOATIME, 0x10),
        (MsFlags::MS_STRICTATIME, 0x20),
        (MsFlags::MS_NODIRATIME, 0x80),
        (MsFlags::MS_RELATIME, 0),
    ];
    let mut attrs = 0;
    let mut rest = flags;
    for (flag, attr) in table {
        if flags.contains(flag) {
            attrs |= attr;
            rest.remove(flag);
        }
    }
    rest.is_empty().then_some(attrs)
}

/// The overlay's parameters for `fsconfig`: each lower layer its own `lowerdir+` (Linux
/// 6.8), so the layers need not fit one page; the other options as they are.
fn overlay_parameters(data: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for option in data.split(',').filter(|o| !o.is_empty()) {
        match option.split_once('=') {
            Some(("lowerdir", lowers)) => out.extend(
                lowers
                    .split(':')
                    .map(|l| ("lowerdir+".to_string(), Some(l.to_string()))),
            ),
            Some((key, value)) => out.push((key.to_string(), Some(value.to_string()))),
            None => out.push((option.to_string(), None)),
        }
    }
    out
}

fn cstring(s: &str) -> Result<CString, RuntimeError> {
    CString::new(s).map_err(|_| RuntimeError::InvalidSpec(format!("NUL in mount option {s:?}")))
}

/// Mounts an overlay with the new mount API (fsopen, fsconfig with one `lowerdir+` per
/// layer, fsmount, move_mount). `Ok(false)` when this kernel cannot (no fsopen, or no
/// `lowerdir+`: before 6.8): the caller falls back to mount(2).
fn mount_overlay_by_parameters(
    m: &Mount,
    flags: MsFlags,
    data: &str,
    target: &Path,
) -> Result<bool, RuntimeError> {
    let Some(attrs) = mount_attributes(flags) else {
        return Ok(false);
    };
    let fail = |what: &str, e: io::Error| RuntimeError::Io {
        path: target.to_path_buf(),
        message: format!("mount {} ({}): {what}: {e}", m.source, m.fstype),
    };
    let fstype = cstring(&m.fstype)?;
    // SAFETY: fsopen reads a NUL-terminated name; the result is a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOSYS) | Some(libc::EPERM) => Ok(false),
            _ => Err(fail("fsopen", e)),
        };
    }
    // SAFETY: `fd` is a fresh descriptor from fsopen, owned only here.
    let fs = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut parameters = vec![("source".to_string(), Some(m.source.clone()))];
    parameters.extend(overlay_parameters(data));
    for (key, value) in &parameters {
        let k = cstring(key)?;
        let v = value.as_deref().map(cstring).transpose()?;
        let (cmd, vptr) = match &v {
            Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
            None => (FSCONFIG_SET_FLAG, std::ptr::null()),
        };
        // SAFETY: fsconfig on our fs context fd with NUL-terminated key and value (or a null
        // value for a flag), both alive for the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                cmd,
                k.as_ptr(),
                vptr,
                0 as libc::c_int,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                // A kernel before 6.8, whose overlay refuses `lowerdir+` (or, before 6.5,
                // takes the parameters as one legacy page that may overflow).
                return Ok(false);
            }
            return Err(fail(&format!("fsconfig {key}"), e));
        }
    }
    // SAFETY: fsconfig's create command on our fs context fd; no pointers are passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0 as libc::c_int,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINVAL) {
            // Before 6.5 overlay has no parameters of its own: a legacy context takes any key
            // and the kernel's parser refuses `lowerdir+` only here. mount(2) says the rest.
            return Ok(false);
        }
        return Err(fail("create", e));
    }
    // SAFETY: fsmount of our created fs context; the result is a new fd or -1.
    let mfd = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) };
    if mfd < 0 {
        return Err(fail("fsmount", io::Error::last_os_error()));
    }
    // SAFETY: `mfd` is a fresh descriptor from fsmount, owned only here.
    let mnt = unsafe { OwnedFd::from_raw_fd(mfd as i32) };
    let to = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| RuntimeError::InvalidSpec("NUL in the rootfs path".into()))?;
    let empty = CString::default();
    // SAFETY: move_mount of our detached mount (by fd, empty path) onto `to`, a
    // NUL-terminated path; both strings are alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(fail("move_mount", io::Error::last_os_error()));
    }
    Ok(true)
}

fn parse_mount_options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags &= !MsFlags::MS_RDONLY,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "nodiratime" => flags |= MsFlags::MS_NODIRATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "suid" | "dev" | "exec" | "async" | "defaults" => {}
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

/// Unmounts everything at `target` (stacked mounts too). Not mounted is not an error.
pub(crate) fn unmount_rootfs(target: &Path) -> Result<(), RuntimeError> {
    for _ in 0..16 {
        match umount2(target, MntFlags::empty()) {
            Ok(()) => continue,
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => return Ok(()),
            Err(nix::errno::Errno::EBUSY) => {
                umount2(target, MntFlags::MNT_DETACH).map_err(|e| RuntimeError::Io {
                    path: target.to_path_buf(),
                    message: format!("unmount: {}", e.desc()),
                })?;
            }
            Err(e) => {
                return Err(RuntimeError::Io {
                    path: target.to_path_buf(),
                    message: format!("unmount: {}", e.desc()),
                })
            }
        }
    }
    Ok(())
}

/// Checks, before the container is created, that `arg0` can be executed inside the root, and
/// fails with the text runc/Docker give (the docker CLI maps these substrings to 127 / 126):
/// `exec: "x": executable file not found in $PATH`, `exec: "/x": stat /x: no such file or
/// directory`, `exec: "/x": permission denied`. Paths under a bind mount are not checked (the
/// bind is not visible from the host side of the root).
pub(crate) fn check_executable(
    root: &Root,
    arg0: &str,
    path_env: &str,
    cwd: &str,
    binds: &[ContainerMount],
) -> Result<(), RuntimeError> {
    let under_bind = |p: &str| under_bind(p, binds);
    if arg0.contains('/') {
        let abs = if arg0.starts_with('/') {
            arg0.to_string()
        } else {
            format!("{}/{arg0}", cwd.trim_end_matches('/'))
        };
        if under_bind(&abs) {
            return Ok(());
        }
        return match root.metadata(&abs) {
            Ok(meta) if is_executable(&meta) => Ok(()),
            Ok(_) => Err(RuntimeError::Exec(format!(
                "exec: {arg0:?}: permission denied"
            ))),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Err(RuntimeError::Exec(format!(
                "exec: {arg0:?}: stat {arg0}: no such file or directory"
            ))),
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => Err(RuntimeError::Exec(format!(
                "exec: {arg0:?}: permission denied"
            ))),
            // ENOTDIR, ELOOP ...: leave it to execve
            Err(_) => Ok(()),
        };
    }
    for dir in path_env.split(':') {
        let dir = if dir.is_empty() || dir == "." {
            cwd
        } else {
            dir
        };
        let candidate = format!("{}/{arg0}", dir.trim_end_matches('/'));
        if under_bind(&candidate) {
            return Ok(());
        }
        if let Ok(meta) = root.metadata(&candidate) {
            if is_executable(&meta) {
                return Ok(());
            }
        }
    }
    Err(RuntimeError::Exec(format!(
        "exec: {arg0:?}: executable file not found in $PATH"
    )))
}

/// True when `path` (absolute, inside the container) is at or below a bind mount destination.
pub(crate) fn under_bind(path: &str, binds: &[ContainerMount]) -> bool {
    binds.iter().any(|b| {
        let d = b.destination.trim_end_matches('/');
        path == d || path.starts_with(&format!("{d}/"))
    })
}

fn is_executable(meta: &std::fs::Metadata) -> bool {
    let ft = meta.file_type();
    !ft.is_dir()
        && !ft.is_block_device()
        && !ft.is_char_device()
        && meta.permissions().mode() & 0o111 != 0
        && meta.mode() & libc::S_IFMT == libc::S_IFREG
}

/// Creates `<bundle>/rootfs` if needed and returns it.
pub(crate) fn rootfs_dir(bundle: &Path) -> Result<PathBuf, RuntimeError> {
    let dir = bundle.join("rootfs");
    match std::fs::create_dir(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(dir),
        Err(e) => Err(RuntimeError::io(&dir, e)),
    }
}

/// True when `path` exists on the host (used to skip masked paths the kernel lacks).
pub(crate) fn host_path_exists(path: &str) -> bool {
    let Ok(c) = CString::new(Path::new(path).as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path; access only reads it.
    unsafe { libc::access(c.as_ptr(), libc::F_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_lower_layer_becomes_its_own_parameter() {
        assert_eq!(
            overlay_parameters("lowerdir=/a:/b,upperdir=/u,workdir=/w,index"),
            [
                ("lowerdir+".to_string(), Some("/a".to_string())),
                ("lowerdir+".to_string(), Some("/b".to_string())),
                ("upperdir".to_string(), Some("/u".to_string())),
                ("workdir".to_string(), Some("/w".to_string())),
                ("index".to_string(), None),
            ]
        );
        assert_eq!(
            mount_attributes(MsFlags::MS_RDONLY | MsFlags::MS_NODEV),
            Some(0x5)
        );
        assert_eq!(mount_attributes(MsFlags::MS_SYNCHRONOUS), None);
    }

    /// More layers than one page of mount(2) options can name: mounted with `lowerdir+`
    /// on this kernel (6.18); before 6.8 the clear error instead of the kernel's EINVAL.
    #[test]
    fn an_overlay_of_more_layers_than_one_page_names_mounts() {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("a-long-directory-name-to-fill-the-option-page-")
            .tempdir()
            .unwrap();
        let mut lowers = Vec::new();
        for i in 0..150 {
            let l = dir.path().join(format!("layer-{i:04}"));
            std::fs::create_dir(&l).unwrap();
            std::fs::write(l.join(format!("f{i}")), format!("{i}")).unwrap();
            lowers.push(l.display().to_string());
        }
        lowers.reverse(); // top-most first
        for d in ["upper", "work", "rootfs"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        let m = Mount {
            fstype: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                format!("lowerdir={}", lowers.join(":")),
                format!("upperdir={}", dir.path().join("upper").display()),
                format!("workdir={}", dir.path().join("work").display()),
            ],
        };
        assert!(m.options.join(",").len() > PAGE_SIZE);
        let target = dir.path().join("rootfs");
        let result = mount_rootfs(std::slice::from_ref(&m), &target);
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut v = release.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        if (v.next().unwrap(), v.next().unwrap()) >= (6, 8) {
            result.unwrap();
            let seen = (
                std::fs::read_to_string(target.join("f0")),
                std::fs::read_to_string(target.join("f149")),
            );
            unmount_rootfs(&target).unwrap();
            assert_eq!(
                (seen.0.unwrap(), seen.1.unwrap()),
                ("0".into(), "149".into())
            );
        } else {
            let e = result.unwrap_err().to_string();
            assert!(e.contains("150 layers") && e.contains("lowerdir+"), "{e}");
        }
    }

    #[test]
    fn overlay_options_become_data() {
        let (flags, data) =
            parse_mount_options(&["ro".into(), "lowerdir=/a:/b".into(), "upperdir=/u".into()]);
        assert_eq!(flags, MsFlags::MS_RDONLY);
        assert_eq!(data, "lowerdir=/a:/b,upperdir=/u");
    }

    #[test]
    fn reads_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("../../../../../etc/hostname", dir.path().join("etc/group"))
            .unwrap();
        let root = Root::open(dir.path()).unwrap();
        assert_eq!(root.read_to_string("/etc/passwd").unwrap(), None);
        assert_eq!(root.read_to_string("/etc/group").unwrap(), None);
        std::fs::write(dir.path().join("etc/hostname"), "inside").unwrap();
        assert_eq!(
            root.read_to_string("/etc/passwd").unwrap().as_deref(),
            Some("inside")
        );
        assert_eq!(
            root.read_to_string("etc/group").unwrap().as_deref(),
            Some("inside")
        );
    }

    fn require_root() {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(euid, 0, "this test needs root (it creates device nodes)");
    }

    fn mknod(path: &Path, mode: libc::mode_t, dev: libc::dev_t) {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: mknod reads a valid NUL-terminated path.
        let rc = unsafe { libc::mknod(c.as_ptr(), mode, dev) };
        assert_eq!(rc, 0, "mknod {path:?}: {}", io::Error::last_os_error());
    }

    /// Regression: a FIFO as /etc/passwd blocked the shim forever, a device node was opened
    /// by its host driver (and /dev/zero read until memory ran out), a huge file read whole.
    #[test]
    fn reads_refuse_fifos_devices_directories_and_huge_files() {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        mknod(&etc.join("fifo"), libc::S_IFIFO | 0o644, 0);
        mknod(
            &etc.join("null"),
            libc::S_IFCHR | 0o666,
            libc::makedev(1, 3),
        );
        mknod(
            &etc.join("zero"),
            libc::S_IFCHR | 0o666,
            libc::makedev(1, 5),
        );
        mknod(&etc.join("sock"), libc::S_IFSOCK | 0o666, 0);
        std::fs::create_dir(etc.join("dir")).unwrap();
        std::os::unix::fs::symlink("/etc/fifo", etc.join("link")).unwrap();
        let huge = File::create(etc.join("huge")).unwrap();
        huge.set_len(MAX_READ + 1).unwrap();
        let exact = File::create(etc.join("exact")).unwrap();
        exact.set_len(MAX_READ).unwrap();
        let root = Root::open(dir.path()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let read = |p: &str| {
                root.read_to_string(p)
                    .map_err(|e| (e.kind(), e.to_string()))
            };
            let results: Vec<_> = [
                "/etc/fifo",
                "/etc/link",
                "/etc/null",
                "/etc/zero",
                "/etc/sock",
                "/etc/dir",
                "/etc/huge",
            ]
            .iter()
            .map(|p| read(p))
            .collect();
            let exact = read("/etc/exact").map(|s| s.map(|s| s.len()));
            let _ = tx.send((results, exact));
        });
        let (results, exact) = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("read_to_string blocked");
        let want = [
            "a fifo, not a regular file",
            "a fifo, not a regular file",
            "a character device, not a regular file",
            "a character device, not a regular file",
            "a socket, not a regular file",
            "a directory, not a regular file",
            "file is larger than 4 MiB",
        ];
        for (got, want) in results.iter().zip(want) {
            assert_eq!(
                got.as_ref().unwrap_err(),
                &(io::ErrorKind::InvalidData, want.to_string())
            );
        }
        assert_eq!(exact, Ok(Some(MAX_READ as usize)));
    }

    #[test]
    fn mkdir_all_stays_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("escape")).unwrap();
        let root = Root::open(dir.path()).unwrap();
        root.mkdir_all("/a/b/c").unwrap();
        root.mkdir_all("/a/b/c").unwrap();
        assert!(dir.path().join("a/b/c").is_dir());
        let _ = root.mkdir_all("/escape/x");
        assert!(!outside.path().join("x").exists());
    }

    #[test]
    fn executable_lookup_reports_dockers_texts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/tool"), "x").unwrap();
        std::fs::set_permissions(
            dir.path().join("bin/tool"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(dir.path().join("bin/data"), "x").unwrap();
        let root = Root::open(dir.path()).unwrap();
        let path = "/usr/bin:/bin";
        assert!(check_executable(&root, "tool", path, "/", &[]).is_ok());
        assert!(check_executable(&root, "/bin/tool", path, "/", &[]).is_ok());
        let e = check_executable(&root, "nosuch", path, "/", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"exec: "nosuch": executable file not found in $PATH"#
        );
        let e = check_executable(&root, "data", path, "/", &[]).unwrap_err();
        assert!(e.to_string().contains("executable file not found"));
        let e = check_executable(&root, "/bin/data", path, "/", &[]).unwrap_err();
        assert_eq!(e.to_string(), r#"exec: "/bin/data": permission denied"#);
        let e = check_executable(&root, "/bin", path, "/", &[]).unwrap_err();
        assert!(e.to_string().contains("permission denied"));
        let e = check_executable(&root, "/x", path, "/", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"exec: "/x": stat /x: no such file or directory"#
        );
        let binds = [ContainerMount {
            source: "/bin".into(),
            destination: "/opt/tools".into(),
            readonly: true,
            ..Default::default()
        }];
        assert!(check_executable(&root, "/opt/tools/x", path, "/", &binds).is_ok());
        assert!(check_executable(&root, "./tool", path, "/bin", &[]).is_ok());
        assert!(check_executable(&root, "tool", "", "/bin", &[]).is_ok());
    }
}

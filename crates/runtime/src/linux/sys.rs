//! The raw system calls of the own runtime that neither `nix` nor `std` wraps, each behind a
//! safe function.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `struct clone_args` of clone3(2), up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Forks the calling (single-threaded) process into new namespaces: returns the child's pid
/// in the parent and 0 in the child, like fork(2). With `cgroup`, an fd of a cgroup v2
/// directory, the child starts in that cgroup (`CLONE_INTO_CGROUP`).
pub(crate) fn clone_init(namespaces: u64, cgroup: Option<RawFd>) -> io::Result<i32> {
    let mut args = CloneArgs {
        flags: namespaces,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: clone3 with a zero stack behaves like fork(2): the child continues on a copy of
    // this stack. The caller is single-threaded (the shim never starts threads), so no lock
    // held by another thread is copied locked into the child; `args` is a valid clone_args of
    // the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match check(rc) {
        Ok(pid) => Ok(pid as i32),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) && cgroup.is_none() => {
            // SAFETY: as above, with clone(2): flags only, no new stack, no tid pointers.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_clone,
                    namespaces | libc::SIGCHLD as u64,
                    0usize,
                    0usize,
                    0usize,
                    0usize,
                )
            };
            check(rc).map(|pid| pid as i32)
        }
        Err(e) => Err(e),
    }
}

/// Ends the process at once (no destructors, no atexit handlers of the parent's program).
pub(crate) fn exit(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// Writes all of `data` to `fd`, ignoring errors (the reader may be gone).
pub(crate) fn write_fd(fd: RawFd, data: &[u8]) {
    let mut rest = data;
    while !rest.is_empty() {
        // SAFETY: write reads `rest.len()` bytes from a live slice.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        rest = &rest[n as usize..];
    }
}

/// `prctl` with integer arguments.
pub(crate) fn prctl(option: libc::c_int, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the options used here take integer arguments only.
    let rc = unsafe { libc::prctl(option, arg, 0 as libc::c_ulong, 0 as libc::c_ulong, 0) };
    check(rc as libc::c_long).map(drop)
}

/// Resets every signal to its default action and unblocks all: a Rust parent ignores SIGPIPE,
/// and the workload must start as it would under runc.
pub(crate) fn reset_signals() {
    // SAFETY: rt_sigaction with a kernel-layout sigaction (handler, flags, restorer, 64-bit
    // mask) read by the kernel; no handler is installed. Raw because glibc refuses its internal
    // signals 32 and 33. sigprocmask reads a valid, initialised set.
    unsafe {
        let dfl: [usize; 4] = [libc::SIG_DFL, 0, 0, 0];
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(libc::SYS_rt_sigaction, sig, dfl.as_ptr(), 0usize, 8usize);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// Marks every descriptor from `first` on close-on-exec.
pub(crate) fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range with integer arguments; it only sets flags on descriptors.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    check(rc).map(drop)
}

/// Sets the capability sets of the calling thread (v3: 64 bits); inheritable is emptied.
pub(crate) fn capset(effective: u64, permitted: u64) -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [
        Data {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: 0,
        },
        Data {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: 0,
        },
    ];
    // SAFETY: capset reads a valid v3 header and two data structs.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) };
    check(rc).map(drop)
}

/// Loads a classic-BPF seccomp program (`bpf`: 8-byte `sock_filter`s).
pub(crate) fn seccomp_load(bpf: &[u8]) -> io::Result<()> {
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const u8,
    }
    let prog = SockFprog {
        len: (bpf.len() / 8) as u16,
        filter: bpf.as_ptr(),
    };
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    // SAFETY: `prog` points at `bpf`, a live buffer of len*8 bytes in the kernel's sock_filter
    // layout; the kernel copies it during the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            0 as libc::c_ulong,
            &prog as *const SockFprog,
        )
    };
    check(rc).map(drop)
}

/// `setgroups`, `setresgid`, `setresuid` as raw syscalls: glibc's wrappers would broadcast the
/// change to other threads with signals, and only this thread exists.
pub(crate) fn set_ids(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    // SAFETY: setgroups reads `groups.len()` gids from a live slice; the others take integers.
    unsafe {
        check(libc::syscall(
            libc::SYS_setgroups,
            groups.len(),
            groups.as_ptr(),
        ))?;
        check(libc::syscall(libc::SYS_setresgid, gid, gid, gid))?;
        check(libc::syscall(libc::SYS_setresuid, uid, uid, uid))?;
    }
    Ok(())
}

/// `setrlimit` through prlimit64 on the calling process.
pub(crate) fn set_rlimit(resource: u32, soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: prlimit64 reads a valid rlimit64; no old-limit pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_prlimit64,
            0,
            resource,
            &limit as *const libc::rlimit64,
            std::ptr::null_mut::<libc::rlimit64>(),
        )
    };
    check(rc).map(drop)
}

/// The calling process's `(soft, hard)` limit of `resource`.
pub(crate) fn get_rlimit(resource: u32) -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit64 writes one rlimit64 into `limit`; no new limit is passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_prlimit64,
            0,
            resource,
            std::ptr::null::<libc::rlimit64>(),
            &mut limit as *mut libc::rlimit64,
        )
    };
    check(rc).map(|_| (limit.rlim_cur, limit.rlim_max))
}

/// `pivot_root(".", ".")` in the current directory, then the old root is detached and the
/// process moves to the new `/` (runc's way: no directory for the old root is needed).
pub(crate) fn pivot_here() -> io::Result<()> {
    let dot = c".";
    let old_root = std::fs::File::open("/")?;
    // SAFETY: pivot_root reads two valid NUL-terminated paths.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) })?;
    // The old root is stacked on "." now, but "." still names the new root's mount, below
    // it: into the old root (runc's fchdir), whose propagation alone is changed. Made
    // rslave from "." as it was, the new root's mounts lost their own propagation (a
    // `shared` bind turned a slave).
    nix::unistd::fchdir(old_root.as_raw_fd())?;
    drop(old_root);
    // Stop propagation from the old root, then detach it.
    nix::mount::mount(
        None::<&str>,
        ".",
        None::<&str>,
        nix::mount::MsFlags::MS_SLAVE | nix::mount::MsFlags::MS_REC,
        None::<&str>,
    )?;
    nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH)?;
    nix::unistd::chdir("/")?;
    Ok(())
}

/// Sets mount attributes (`MOUNT_ATTR_*`) on the mount at `dir` and every mount below it,
/// in one call (mount_setattr(2) with `AT_RECURSIVE`).
pub(crate) fn mount_setattr_recursive(dir: RawFd, set: u64) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    const AT_RECURSIVE: libc::c_int = 0x8000;
    // SAFETY: mount_setattr reads a valid, fully initialised mount_attr of the size passed and
    // an empty NUL-terminated path relative to a live descriptor.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dir,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(rc).map(drop)
}

/// `open_tree(OPEN_TREE_CLONE)`: a detached copy of the mount at `path` (of the caller's
/// mount namespace), to attach elsewhere with [`move_mount_onto`].
pub(crate) fn open_tree_clone(path: &CStr) -> io::Result<OwnedFd> {
    open_tree(libc::AT_FDCWD, path, 0)
}

/// `open_tree(OPEN_TREE_CLONE)` of what the descriptor `fd` names: a detached bind of it
/// (with the mounts below it when `recursive`). A copy of a shared mount is a peer of it.
pub(crate) fn open_tree_clone_fd(fd: BorrowedFd<'_>, recursive: bool) -> io::Result<OwnedFd> {
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let rec = if recursive { AT_RECURSIVE } else { 0 };
    open_tree(
        fd.as_raw_fd(),
        c"",
        libc::AT_EMPTY_PATH as libc::c_uint | rec,
    )
}

fn open_tree(dir: RawFd, path: &CStr, flags: libc::c_uint) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    // SAFETY: open_tree reads a NUL-terminated path relative to `dir` (AT_FDCWD or a live
    // descriptor); the descriptor it returns is owned here.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dir,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | flags,
        )
    };
    let fd = check(rc)? as RawFd;
    // SAFETY: a fresh descriptor owned only here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The id of the mount that `fd` is on, as `/proc/self/mountinfo`'s first field names it
/// (statx's `STATX_MNT_ID`, Linux 5.8).
pub(crate) fn mount_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    const STATX_MNT_ID: libc::c_uint = 0x1000;
    // SAFETY: `libc::statx` is plain integers: all zeroes is a valid value.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: statx writes one `statx` struct, which lives across the call, for a live
    // descriptor and an empty NUL-terminated path.
    let rc = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            STATX_MNT_ID,
            &mut st,
        )
    };
    check(rc as libc::c_long)?;
    if st.stx_mask & STATX_MNT_ID == 0 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this kernel does not tell mount ids (statx's STATX_MNT_ID needs Linux 5.8)",
        ));
    }
    Ok(st.stx_mnt_id)
}

/// `move_mount`: attaches the detached mount `tree` on the directory `target` (a descriptor).
pub(crate) fn move_mount_onto(tree: RawFd, target: RawFd) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    // SAFETY: move_mount with two live descriptors and empty NUL-terminated paths.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree,
            c"".as_ptr(),
            target,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    check(rc).map(drop)
}

/// `execve`; returns only on failure.
pub(crate) fn execve(path: &CStr, args: &[CString], env: &[CString]) -> io::Error {
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = env
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    // SAFETY: path, argv and envp are valid NUL-terminated strings and NULL-terminated arrays
    // that outlive the call.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

/// `access(path, X_OK)`.
pub(crate) fn executable(path: &CStr) -> bool {
    // SAFETY: access reads a valid NUL-terminated path.
    unsafe { libc::access(path.as_ptr(), libc::X_OK) == 0 }
}

/// `mknodat` relative to a directory descriptor, then the exact mode and owner (the umask
/// does not apply to `fchmodat`).
pub(crate) fn mknod_at(
    dir: RawFd,
    name: &CStr,
    kind: libc::mode_t,
    dev: libc::dev_t,
    mode: libc::mode_t,
    uid: u32,
    gid: u32,
) -> io::Result<()> {
    // SAFETY: the *at calls read a valid NUL-terminated name relative to a live directory fd.
    unsafe {
        check(libc::mknodat(dir, name.as_ptr(), kind | mode, dev) as libc::c_long)?;
        check(libc::fchmodat(dir, name.as_ptr(), mode, 0) as libc::c_long)?;
        check(
            libc::fchownat(dir, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) as libc::c_long,
        )?;
    }
    Ok(())
}

/// `umask`.
pub(crate) fn umask(mask: libc::mode_t) {
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(mask) };
}

/// Unmaps the resident pages of this process's clean, read-only file mappings (program text,
/// read-only data of the binary and libc): they stay in the page cache and fault back in
/// when touched. The shim calls it once the container runs, so that the pages used only while
/// starting it (most of the binary) stop counting against it; the serving loop touches a few.
/// Mappings with private dirty pages (RELRO after relocation) or anonymous pages are left
/// alone: dropping those would lose data.
pub(crate) fn trim_clean_file_mappings() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut current: Option<(usize, usize, bool)> = None;
    let mut candidates = Vec::new();
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((start, end)) = first
            .split_once('-')
            .filter(|(a, _)| a.chars().all(|c| c.is_ascii_hexdigit()))
        {
            if let Some(c) = current.take().filter(|c| c.2) {
                candidates.push((c.0, c.1));
            }
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) else {
                continue;
            };
            let eligible = perms.starts_with('r') && !perms.contains('w') && path.starts_with('/');
            current = Some((start, end, eligible));
        } else if matches!(first, "Private_Dirty:" | "Anonymous:")
            && fields.next().unwrap_or("0") != "0"
        {
            if let Some(c) = current.as_mut() {
                c.2 = false;
            }
        }
    }
    if let Some(c) = current.filter(|c| c.2) {
        candidates.push((c.0, c.1));
    }
    for (start, end) in candidates {
        // SAFETY: the range is a whole mapping of this process that holds only clean file
        // pages (no private dirty, no anonymous pages): MADV_DONTNEED drops the page table
        // entries and the next access reads the same bytes from the page cache again.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// Rewrites this process's command line (what `ps` and `/proc/<pid>/cmdline` show) in the
/// space the kernel gave the original arguments: `words`, NUL-separated, cut to fit, the rest
/// NUL. A warm shim learns its bundle only when it is handed one, and operators (and the
/// tests that look for leftovers) find a container's shim by the bundle in its arguments.
pub(crate) fn set_cmdline(words: &[&[u8]]) -> io::Result<()> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc/self/stat");
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    // Field 3 (state) is index 0 there; arg_start and arg_end are fields 48 and 49.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .ok_or_else(bad)?
        .1
        .split_whitespace()
        .collect();
    let field = |n: usize| -> io::Result<usize> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(bad)
    };
    let (start, end) = (field(48)?, field(49)?);
    if start == 0 || end <= start || end - start > 1 << 20 {
        return Err(bad());
    }
    let mut area = vec![0u8; end - start];
    let mut pos = 0;
    for word in words {
        // Always leave the last byte NUL: the kernel then shows the area as it is.
        let room = area.len().saturating_sub(pos + 1);
        let n = word.len().min(room);
        area[pos..pos + n].copy_from_slice(&word[..n]);
        pos += n + 1;
        if pos >= area.len() {
            break;
        }
    }
    // SAFETY: [start, end) is this process's own argument area, as the kernel reports it: the
    // argument strings on the initial stack, mapped read-write for the life of the process.
    // `area` has exactly its length. The caller is single-threaded (the shim), and std only
    // reads these bytes when asked for the arguments, which the shim did before this.
    unsafe { std::ptr::copy_nonoverlapping(area.as_ptr(), start as *mut u8, area.len()) };
    Ok(())
}

/// Brings up `lo` in the calling thread's network namespace (the kernel then gives it
/// 127.0.0.1/8 and ::1), as Docker does for every namespace it makes, `--network none`
/// included. Needs CAP_NET_ADMIN there.
pub(crate) fn loopback_up() -> io::Result<()> {
    // SAFETY: socket(2) with constant arguments; the descriptor is owned by the OwnedFd.
    let fd = check(
        unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) }
            as libc::c_long,
    )?;
    // SAFETY: `fd` was just returned by socket(2) and is owned only here.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as RawFd) };
    // SAFETY: an all-zero ifreq is a valid value of this plain C struct.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of `req`, a valid ifreq that
    // lives across the call.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } as libc::c_long)?;
    // SAFETY: the flags member of the union is the one SIOCGIFFLAGS filled in.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the name and the flags of `req`, a valid ifreq.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } as libc::c_long)
        .map(drop)
}

//! The raw `bpf(2)` system call: the few commands the socket redirect needs (maps, program load,
//! pins, cgroup links, queries) and a tiny eBPF assembler. No libbpf, no object files: the
//! programs are a few dozen instructions written out in `crate::sockredirect`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

/// `enum bpf_cmd` values used here.
mod cmd {
    pub const MAP_CREATE: i32 = 0;
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    pub const MAP_UPDATE_ELEM: i32 = 2;
    pub const MAP_DELETE_ELEM: i32 = 3;
    pub const MAP_GET_NEXT_KEY: i32 = 4;
    pub const PROG_LOAD: i32 = 5;
    pub const OBJ_PIN: i32 = 6;
    pub const OBJ_GET: i32 = 7;
    pub const PROG_GET_FD_BY_ID: i32 = 13;
    pub const OBJ_GET_INFO_BY_FD: i32 = 15;
    pub const PROG_QUERY: i32 = 16;
    pub const BTF_LOAD: i32 = 18;
    pub const LINK_CREATE: i32 = 28;
    pub const LINK_UPDATE: i32 = 29;
    pub const LINK_DETACH: i32 = 34;
}

/// `union bpf_attr`, as bytes: every command's fields are written at their offsets in the
/// kernel's layout (include/uapi/linux/bpf.h); unused bytes stay zero, as the kernel requires.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }
    fn u32(mut self, offset: usize, value: u32) -> Attr {
        self.0[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
        self
    }
    fn u64(mut self, offset: usize, value: u64) -> Attr {
        self.0[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
        self
    }
    fn ptr<T: ?Sized>(self, offset: usize, value: *const T) -> Attr {
        self.u64(offset, value as *const u8 as usize as u64)
    }
    fn bytes(mut self, offset: usize, value: &[u8]) -> Attr {
        self.0[offset..offset + value.len()].copy_from_slice(value);
        self
    }
    fn get_u32(&self, offset: usize) -> u32 {
        u32::from_ne_bytes(self.0[offset..offset + 4].try_into().expect("4 bytes"))
    }
}

/// Runs one `bpf(2)` command. Every pointer inside `attr` must be valid for what the command
/// reads or writes through it, for the duration of the call.
///
/// # Safety
/// The caller guarantees the pointers written into `attr`.
unsafe fn sys_bpf(command: i32, attr: &mut Attr) -> io::Result<i64> {
    // SAFETY: `attr` is a live, 8-aligned buffer of the size passed; the pointers inside it are
    // the caller's guarantee (this function's contract).
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            attr as *mut Attr,
            std::mem::size_of::<Attr>() as u32,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// A `bpf(2)` command that returns a new descriptor.
///
/// # Safety
/// As [`sys_bpf`].
unsafe fn sys_bpf_fd(command: i32, attr: &mut Attr) -> io::Result<OwnedFd> {
    // SAFETY: forwarded contract.
    let fd = unsafe { sys_bpf(command, attr) }?;
    // SAFETY: on success these commands return a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn name16(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let n = name.len().min(15);
    out[..n].copy_from_slice(&name.as_bytes()[..n]);
    out
}

pub(crate) const MAP_TYPE_HASH: u32 = 1;
pub(crate) const MAP_TYPE_SK_STORAGE: u32 = 24;
pub(crate) const F_NO_PREALLOC: u32 = 1;
pub(crate) const PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
pub(crate) const CGROUP_INET4_CONNECT: u32 = 10;
pub(crate) const CGROUP_INET6_CONNECT: u32 = 11;
pub(crate) const CGROUP_INET4_GETPEERNAME: u32 = 29;
pub(crate) const CGROUP_INET6_GETPEERNAME: u32 = 30;

/// What a map is made of (`bpf_map_info`'s first fields, and the create parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MapSpec {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

/// BPF_MAP_CREATE; `btf` is (BTF fd, key type id, value type id) for maps that need one.
pub(crate) fn map_create(
    spec: MapSpec,
    name: &str,
    btf: Option<(BorrowedFd<'_>, u32, u32)>,
) -> io::Result<OwnedFd> {
    let mut attr = Attr::new()
        .u32(0, spec.map_type)
        .u32(4, spec.key_size)
        .u32(8, spec.value_size)
        .u32(12, spec.max_entries)
        .u32(16, spec.flags)
        .bytes(28, &name16(name));
    if let Some((fd, key, value)) = btf {
        attr = attr
            .u32(48, fd.as_raw_fd() as u32)
            .u32(52, key)
            .u32(56, value);
    }
    // SAFETY: the attribute holds no pointers.
    unsafe { sys_bpf_fd(cmd::MAP_CREATE, &mut attr) }
}

/// BPF_OBJ_GET_INFO_BY_FD of a map: its spec.
pub(crate) fn map_info(map: BorrowedFd<'_>) -> io::Result<MapSpec> {
    let mut info = [0u32; 20];
    let mut attr = Attr::new()
        .u32(0, map.as_raw_fd() as u32)
        .u32(4, std::mem::size_of_val(&info) as u32)
        .ptr(8, info.as_mut_ptr());
    // SAFETY: `info` is writable for the length given and outlives the call.
    unsafe { sys_bpf(cmd::OBJ_GET_INFO_BY_FD, &mut attr) }?;
    Ok(MapSpec {
        map_type: info[0],
        key_size: info[2],
        value_size: info[3],
        max_entries: info[4],
        flags: info[5],
    })
}

/// BPF_MAP_UPDATE_ELEM with BPF_ANY. The slices must have the map's key and value sizes.
pub(crate) fn map_update(map: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = Attr::new()
        .u32(0, map.as_raw_fd() as u32)
        .ptr(8, key.as_ptr())
        .ptr(16, value.as_ptr());
    // SAFETY: the kernel reads key_size and value_size bytes; the callers pass slices of exactly
    // those sizes (checked by the kernel against the map, which is ours), alive for the call.
    unsafe { sys_bpf(cmd::MAP_UPDATE_ELEM, &mut attr) }.map(drop)
}

/// BPF_MAP_LOOKUP_ELEM into `value` (the map's value size); false if absent.
pub(crate) fn map_lookup(map: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    let mut attr = Attr::new()
        .u32(0, map.as_raw_fd() as u32)
        .ptr(8, key.as_ptr())
        .ptr(16, value.as_mut_ptr());
    // SAFETY: key and value are the map's sizes (the caller's, see map_update) and live for the
    // call; the kernel writes value_size bytes into `value`.
    match unsafe { sys_bpf(cmd::MAP_LOOKUP_ELEM, &mut attr) } {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// BPF_MAP_DELETE_ELEM; false if the key was absent.
pub(crate) fn map_delete(map: BorrowedFd<'_>, key: &[u8]) -> io::Result<bool> {
    let mut attr = Attr::new()
        .u32(0, map.as_raw_fd() as u32)
        .ptr(8, key.as_ptr());
    // SAFETY: the kernel reads key_size bytes from `key` (the map's key size), alive for the call.
    match unsafe { sys_bpf(cmd::MAP_DELETE_ELEM, &mut attr) } {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Every key of a hash map whose keys are `key_size` bytes (BPF_MAP_GET_NEXT_KEY), at most
/// `limit` of them.
pub(crate) fn map_keys(
    map: BorrowedFd<'_>,
    key_size: usize,
    limit: usize,
) -> io::Result<Vec<Vec<u8>>> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut next = vec![0u8; key_size];
        let mut attr = Attr::new().u32(0, map.as_raw_fd() as u32);
        if let Some(last) = keys.last() {
            attr = attr.ptr(8, last.as_ptr());
        }
        attr = attr.ptr(16, next.as_mut_ptr());
        // SAFETY: the previous key (if any) has key_size bytes and `next` is key_size writable
        // bytes, both alive for the call; a null key asks for the first key.
        match unsafe { sys_bpf(cmd::MAP_GET_NEXT_KEY, &mut attr) } {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(keys),
            Err(e) => return Err(e),
        }
        keys.push(next);
        if keys.len() >= limit {
            return Ok(keys);
        }
    }
}

/// BPF_BTF_LOAD of a raw BTF blob.
pub(crate) fn btf_load(blob: &[u8]) -> io::Result<OwnedFd> {
    let mut log = vec![0u8; 4096];
    let mut attr = Attr::new()
        .ptr(0, blob.as_ptr())
        .ptr(8, log.as_mut_ptr())
        .u32(16, blob.len() as u32)
        .u32(20, log.len() as u32)
        .u32(24, 1);
    // SAFETY: the blob is readable for its length and the log writable for its length, both
    // alive for the call.
    unsafe { sys_bpf_fd(cmd::BTF_LOAD, &mut attr) }.map_err(|e| with_log(e, &log))
}

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// The instruction's 8 bytes, as the kernel reads them.
    pub fn to_bytes(self) -> [u8; 8] {
        let regs = if cfg!(target_endian = "little") {
            (self.src << 4) | (self.dst & 0xf)
        } else {
            (self.dst << 4) | (self.src & 0xf)
        };
        let mut out = [0u8; 8];
        out[0] = self.code;
        out[1] = regs;
        out[2..4].copy_from_slice(&self.off.to_ne_bytes());
        out[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        out
    }
}

/// BPF_PROG_LOAD of a cgroup sock_addr program; the verifier's log is in the error.
pub(crate) fn prog_load(
    insns: &[Insn],
    name: &str,
    expected_attach_type: u32,
) -> io::Result<OwnedFd> {
    let bytes: Vec<u8> = insns.iter().flat_map(|i| i.to_bytes()).collect();
    let license = c"GPL";
    let attempt = |log: &mut [u8], level: u32| {
        let mut attr = Attr::new()
            .u32(0, PROG_TYPE_CGROUP_SOCK_ADDR)
            .u32(4, insns.len() as u32)
            .ptr(8, bytes.as_ptr())
            .ptr(16, license.as_ptr())
            .u32(24, level)
            .u32(28, log.len() as u32)
            .ptr(32, log.as_mut_ptr())
            .bytes(48, &name16(name))
            .u32(68, expected_attach_type);
        // SAFETY: the instructions (insn_cnt * 8 bytes), the license string and the log buffer
        // (writable, log_size bytes) are alive for the call.
        unsafe { sys_bpf_fd(cmd::PROG_LOAD, &mut attr) }
    };
    match attempt(&mut [], 0) {
        Ok(fd) => Ok(fd),
        Err(_) => {
            // Load again with the verifier's log to say why.
            let mut log = vec![0u8; 64 * 1024];
            attempt(&mut log, 1).map_err(|e| with_log(e, &log))
        }
    }
}

fn with_log(e: io::Error, log: &[u8]) -> io::Error {
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]);
    let text = text.trim();
    if text.is_empty() {
        e
    } else {
        io::Error::new(e.kind(), format!("{e}; verifier log:\n{text}"))
    }
}

/// What BPF_OBJ_GET_INFO_BY_FD says about a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProgInfo {
    pub id: u32,
    pub name: String,
}

/// BPF_OBJ_GET_INFO_BY_FD of a program.
pub(crate) fn prog_info(prog: BorrowedFd<'_>) -> io::Result<ProgInfo> {
    // struct bpf_prog_info: id at 4, name[16] at 64.
    let mut info = [0u64; 12];
    let mut attr = Attr::new()
        .u32(0, prog.as_raw_fd() as u32)
        .u32(4, std::mem::size_of_val(&info) as u32)
        .ptr(8, info.as_mut_ptr());
    // SAFETY: `info` is writable for the length given and outlives the call; its pointer
    // fields (instruction and map id buffers) are zero, so the kernel fills in no arrays.
    unsafe { sys_bpf(cmd::OBJ_GET_INFO_BY_FD, &mut attr) }?;
    let bytes: Vec<u8> = info.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let id = u32::from_ne_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let name = &bytes[64..80];
    let end = name.iter().position(|&b| b == 0).unwrap_or(16);
    Ok(ProgInfo {
        id,
        name: String::from_utf8_lossy(&name[..end]).into_owned(),
    })
}

/// What BPF_OBJ_GET_INFO_BY_FD says about a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LinkInfo {
    pub id: u32,
    pub prog_id: u32,
    pub cgroup_id: u64,
    pub attach_type: u32,
}

/// BPF_OBJ_GET_INFO_BY_FD of a link.
pub(crate) fn link_info(link: BorrowedFd<'_>) -> io::Result<LinkInfo> {
    // struct bpf_link_info: type 0, id 4, prog_id 8, cgroup { cgroup_id 16, attach_type 24 }.
    let mut info = [0u64; 8];
    let mut attr = Attr::new()
        .u32(0, link.as_raw_fd() as u32)
        .u32(4, std::mem::size_of_val(&info) as u32)
        .ptr(8, info.as_mut_ptr());
    // SAFETY: `info` is writable for the length given and outlives the call; the pointer
    // fields of other link kinds' parts are zero.
    unsafe { sys_bpf(cmd::OBJ_GET_INFO_BY_FD, &mut attr) }?;
    let bytes: Vec<u8> = info.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let u32_at = |o: usize| u32::from_ne_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
    Ok(LinkInfo {
        id: u32_at(4),
        prog_id: u32_at(8),
        cgroup_id: info[2],
        attach_type: u32_at(24),
    })
}

/// BPF_PROG_GET_FD_BY_ID.
pub(crate) fn prog_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = Attr::new().u32(0, id);
    // SAFETY: the attribute holds no pointers.
    unsafe { sys_bpf_fd(cmd::PROG_GET_FD_BY_ID, &mut attr) }
}

/// BPF_OBJ_PIN of `fd` at `path` (in a bpf filesystem).
pub(crate) fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let path = cpath(path)?;
    let mut attr = Attr::new()
        .ptr(0, path.as_ptr())
        .u32(8, fd.as_raw_fd() as u32);
    // SAFETY: the path is a NUL-terminated string alive for the call.
    unsafe { sys_bpf(cmd::OBJ_PIN, &mut attr) }.map(drop)
}

/// BPF_OBJ_GET of the object pinned at `path`; `Ok(None)` if nothing is there.
pub(crate) fn obj_get(path: &Path) -> io::Result<Option<OwnedFd>> {
    let cpath = cpath(path)?;
    let mut attr = Attr::new().ptr(0, cpath.as_ptr());
    // SAFETY: the path is a NUL-terminated string alive for the call.
    match unsafe { sys_bpf_fd(cmd::OBJ_GET, &mut attr) } {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// BPF_LINK_CREATE: attaches `prog` to the cgroup `cgroup` (a directory descriptor) as a link
/// (always "multi": other programs on the cgroup keep running).
pub(crate) fn link_create(
    prog: BorrowedFd<'_>,
    cgroup: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<OwnedFd> {
    let mut attr = Attr::new()
        .u32(0, prog.as_raw_fd() as u32)
        .u32(4, cgroup.as_raw_fd() as u32)
        .u32(8, attach_type);
    // SAFETY: the attribute holds no pointers.
    unsafe { sys_bpf_fd(cmd::LINK_CREATE, &mut attr) }
}

/// BPF_LINK_UPDATE: replaces the link's program (atomically for the hook).
pub(crate) fn link_update(link: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = Attr::new()
        .u32(0, link.as_raw_fd() as u32)
        .u32(4, prog.as_raw_fd() as u32);
    // SAFETY: the attribute holds no pointers.
    unsafe { sys_bpf(cmd::LINK_UPDATE, &mut attr) }.map(drop)
}

/// BPF_LINK_DETACH: detaches the link's program now, whoever else holds the link.
pub(crate) fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = Attr::new().u32(0, link.as_raw_fd() as u32);
    // SAFETY: the attribute holds no pointers.
    unsafe { sys_bpf(cmd::LINK_DETACH, &mut attr) }.map(drop)
}

/// BPF_PROG_QUERY: the ids of the programs attached to the cgroup `cgroup` for `attach_type`
/// (directly, not inherited).
pub(crate) fn prog_query(cgroup: BorrowedFd<'_>, attach_type: u32) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 256];
    let mut attr = Attr::new()
        .u32(0, cgroup.as_raw_fd() as u32)
        .u32(4, attach_type)
        .ptr(16, ids.as_mut_ptr())
        .u32(24, ids.len() as u32);
    // SAFETY: `ids` is writable for prog_cnt u32s and outlives the call.
    unsafe { sys_bpf(cmd::PROG_QUERY, &mut attr) }?;
    ids.truncate(attr.get_u32(24) as usize);
    Ok(ids)
}

/// `SO_NETNS_COOKIE` (asm-generic and x86 value; the libc crate lacks it for glibc).
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The network namespace cookie of the socket `fd` (SO_NETNS_COOKIE, Linux >= 5.14).
pub(crate) fn netns_cookie(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cookie`, which is a live u64; the
    // descriptor is borrowed, so it stays open meanwhile.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cookie)
}

/// Mounts a bpf filesystem at `path` (mode 0700), as systemd does at `/sys/fs/bpf`.
pub(crate) fn mount_bpffs(path: &Path) -> io::Result<()> {
    let target = cpath(path)?;
    // SAFETY: all strings are NUL-terminated and alive for the call; mount(2) copies them.
    let r = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

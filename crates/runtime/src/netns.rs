//! Network namespaces made ahead of need, for the containers of `--network none` (and, until
//! berth has networks, of the default network): a new namespace costs 0.47 ms here, most of
//! it in the kernel's per-namespace set-up, and that was on the path of every `docker run`.
//!
//! berthd makes one ([`make_ahead`], from the same refill task as the warm shim), with `lo`
//! up and `net.ipv4.ping_group_range` / `ip_unprivileged_port_start` set as Docker has them; [`crate::start`] hands it to a warm shim with the bundle (SCM_RIGHTS),
//! whose init joins it instead of cloning a new one. A namespace is only ever used once: the
//! descriptor is dropped here when handed over or when it is not needed, and the namespace
//! goes away with the last process in it.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use crate::linux::sys;

/// Namespaces kept ready.
const AHEAD: usize = 1;

static POOL: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());

fn pool() -> std::sync::MutexGuard<'static, Vec<OwnedFd>> {
    POOL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Tops the pool up. Blocking (0.5 ms a namespace): call it off the latency path.
pub fn make_ahead() -> std::io::Result<()> {
    while pool().len() < AHEAD {
        let ns = make()?;
        pool().push(ns);
    }
    Ok(())
}

/// How many namespaces are ready.
pub fn ready() -> usize {
    pool().len()
}

/// A namespace from the pool, if one is ready.
pub(crate) fn take() -> Option<OwnedFd> {
    pool().pop()
}

/// A new network namespace with `lo` up and Docker's sysctls (unprivileged ping): made by a thread of its own, which unshares into
/// it (a namespace of one thread; berthd's other threads are not touched) and exits.
fn make() -> std::io::Result<OwnedFd> {
    std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
            sys::loopback_up()?;
            crate::linux::netns_defaults()?;
            Ok(OwnedFd::from(File::open("/proc/thread-self/ns/net")?))
        })?
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the netns thread panicked")))
}

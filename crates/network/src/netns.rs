//! Network namespaces made ahead of need: a new namespace costs ~0.5 ms here, most of it in
//! the kernel's per-namespace set-up, and every container but `--network host` needs one.
//! A namespace is used once: handed to the runtime (which passes it to the shim by
//! SCM_RIGHTS) and gone with the last process in it.
//!
//! Once a container on a user-defined network has started, some namespaces are made ahead
//! with the embedded DNS's sockets bound in them and its redirect in place too: that
//! redirect is one `nft` run in the namespace (~20 ms, the first nat chain of a namespace
//! included), which a user network's start would otherwise wait for.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::dns;
use crate::netlink::Netlink;

/// A new network namespace with `lo` up and Docker's sysctls, and a netlink socket of its
/// own for the interfaces berth moves in.
pub struct Sandbox {
    ns: OwnedFd,
    pub(crate) netlink: Netlink,
    /// The embedded DNS's sockets, bound in it with their redirect, when made so ahead.
    dns: Option<dns::Sockets>,
}

impl Sandbox {
    /// Made by a thread of its own, which unshares into it (a namespace of one thread;
    /// berthd's other threads are not touched) and ends.
    pub fn new() -> io::Result<Sandbox> {
        std::thread::Builder::new()
            .name("berth-netns".into())
            .spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
                let netlink = Netlink::new()?;
                // `lo` is the first link of every namespace.
                netlink.set_up(1)?;
                // Docker's settings for a container's own namespace (moby
                // `WithCommonOptions`): ICMP echo sockets for every group (`ping` without
                // NET_RAW) and every port bindable without NET_BIND_SERVICE. /proc/sys/net
                // is the opening thread's namespace's.
                std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 2147483647")?;
                std::fs::write("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0")?;
                ra_off()?;
                let ns = OwnedFd::from(File::open("/proc/thread-self/ns/net")?);
                Ok(Sandbox {
                    ns,
                    netlink,
                    dns: None,
                })
            })?
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the netns thread panicked")))
    }

    /// The namespace `ns` of a running container, with a netlink socket of its own (made
    /// by a thread that joins it and ends): for connecting a running container.
    pub fn join(ns: OwnedFd) -> io::Result<Sandbox> {
        std::thread::Builder::new()
            .name("berth-netns".into())
            .spawn(move || {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
                let netlink = Netlink::new()?;
                Ok(Sandbox {
                    ns,
                    netlink,
                    dns: None,
                })
            })?
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the netns thread panicked")))
    }

    /// Whether it has a default route of the family (a running container that is
    /// connected to a network gets one there when it has none).
    pub fn has_default_route(&self, v6: bool) -> io::Result<bool> {
        self.netlink.has_default_route(v6)
    }

    /// The names of its interfaces, for the next free `ethN`.
    pub fn link_names(&self) -> io::Result<Vec<String>> {
        self.netlink.link_names()
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.ns.as_fd()
    }

    /// The embedded DNS's sockets made with the namespace ([`Pool::take_for`]), if any.
    pub fn take_dns(&mut self) -> Option<dns::Sockets> {
        self.dns.take()
    }

    /// The namespace's descriptor, for the runtime.
    pub fn into_fd(self) -> OwnedFd {
        self.ns
    }
}

/// No router advertisement is taken in a container's namespace (Docker's since 19.03.11,
/// CVE-2020-13401): a neighbour with NET_RAW would otherwise become its IPv6 default router.
/// `default` covers the interfaces moved in later; none with IPv6 off in the kernel.
pub(crate) fn ra_off() -> io::Result<()> {
    for conf in ["all", "default"] {
        match std::fs::write(format!("/proc/sys/net/ipv6/conf/{conf}/accept_ra"), "0") {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Namespaces kept ready.
pub struct Pool {
    ready: Mutex<Vec<Sandbox>>,
    /// Made with the embedded DNS's sockets, once one was asked for.
    ready_dns: Mutex<Vec<Sandbox>>,
    dns_wanted: AtomicBool,
    ahead: usize,
}

impl Pool {
    pub fn new(ahead: usize) -> Pool {
        Pool {
            ready: Mutex::new(Vec::new()),
            ready_dns: Mutex::new(Vec::new()),
            dns_wanted: AtomicBool::new(false),
            ahead,
        }
    }

    fn ready(&self) -> std::sync::MutexGuard<'_, Vec<Sandbox>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ready_dns(&self) -> std::sync::MutexGuard<'_, Vec<Sandbox>> {
        self.ready_dns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tops the pool up: namespaces (~0.5 ms each), and those with the DNS's sockets
    /// (~20 ms each) once a start asked for one. Blocking: call it off the latency path.
    pub fn refill(&self) -> io::Result<()> {
        while self.ready().len() < self.ahead {
            let sandbox = Sandbox::new()?;
            self.ready().push(sandbox);
        }
        if self.dns_wanted.load(Ordering::Relaxed) {
            while self.ready_dns().len() < self.ahead {
                let mut sandbox = Sandbox::new()?;
                sandbox.dns = Some(dns::Sockets::open_redirected(sandbox.fd())?);
                self.ready_dns().push(sandbox);
            }
        }
        Ok(())
    }

    /// A namespace made ahead, or a new one when none is ready.
    pub fn take(&self) -> io::Result<Sandbox> {
        self.take_for(false)
    }

    /// A namespace made ahead, with the DNS's sockets when `dns` and one is ready (from
    /// then on the pool keeps some so), or a new one.
    pub fn take_for(&self, dns: bool) -> io::Result<Sandbox> {
        if dns {
            self.dns_wanted.store(true, Ordering::Relaxed);
            let made = self.ready_dns().pop();
            if let Some(s) = made {
                return Ok(s);
            }
        }
        let made = self.ready().pop();
        match made {
            Some(s) => Ok(s),
            None => Sandbox::new(),
        }
    }
}

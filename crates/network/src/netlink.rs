//! Links, addresses and routes through rtnetlink: a blocking socket per network namespace
//! and one request (with its acknowledgement) per change, no `ip` processes.
//!
//! A socket answers for the namespace it was opened in: a container's is opened by the
//! thread that made the namespace (netns.rs), so berthd's other threads keep the host's.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Mutex;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// The local routing table: where the kernel keeps the routes of the host's own addresses.
const RT_TABLE_LOCAL: u8 = 255;

/// A socket told of every change that can change [`Netlink::local_addresses`]: addresses
/// (`RTMGRP_IPV4_IFADDR`, `RTMGRP_IPV6_IFADDR`), links (up, down, group: `RTMGRP_LINK`) and
/// routes (`RTMGRP_IPV4_ROUTE`, `RTMGRP_IPV6_ROUTE`); see [`AddressEvents::wait`].
pub struct AddressEvents {
    socket: Socket,
}

impl AddressEvents {
    /// Listens in the calling thread's network namespace.
    pub fn new() -> io::Result<AddressEvents> {
        const RTMGRP_LINK: u32 = 0x1;
        const RTMGRP_IPV4_IFADDR: u32 = 0x10;
        const RTMGRP_IPV4_ROUTE: u32 = 0x40;
        const RTMGRP_IPV6_IFADDR: u32 = 0x100;
        const RTMGRP_IPV6_ROUTE: u32 = 0x400;
        let groups = RTMGRP_LINK
            | RTMGRP_IPV4_IFADDR
            | RTMGRP_IPV4_ROUTE
            | RTMGRP_IPV6_IFADDR
            | RTMGRP_IPV6_ROUTE;
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(0, groups))?;
        socket.set_non_blocking(true)?;
        Ok(AddressEvents { socket })
    }

    /// Waits up to `timeout` for a change: true if one came (every message waiting is
    /// read). A receive queue that overflowed (`ENOBUFS`: changes were lost) counts as one.
    pub fn wait(&self, timeout: std::time::Duration) -> io::Result<bool> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) if left.is_zero() => return Ok(false),
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => break,
                Err(e) => return Err(e.into()),
            }
        }
        let mut buf = vec![0u8; 16384];
        loop {
            match self.socket.recv(&mut &mut buf[..], 0) {
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Neither loopback, link-local, multicast nor unspecified; for IPv6, not an IPv4 address
/// in an IPv6 one (`::ffff:a.b.c.d`, `::a.b.c.d`: a connect to one is an IPv4 one).
fn reachable_by_others(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            !(a.is_loopback() || a.is_link_local() || a.is_multicast() || a.is_unspecified())
        }
        IpAddr::V6(a) => {
            !(a.is_loopback()
                || a.segments()[0] & 0xffc0 == 0xfe80
                || a.is_multicast()
                || a.to_ipv4().is_some())
        }
    }
}

/// A route in the main table, as [`Netlink::routes`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: IpAddr,
    pub prefix: u8,
}

/// An rtnetlink socket of one network namespace.
pub struct Netlink {
    socket: Mutex<(Socket, u32)>,
}

impl Netlink {
    /// A socket of the calling thread's network namespace.
    pub fn new() -> io::Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // The kernel's own words with an error ("Invalid argument" alone says little).
        let _ = socket.set_ext_ack(true);
        Ok(Netlink {
            socket: Mutex::new((socket, 0)),
        })
    }

    /// Sends `msg` and reads the answer: the messages of a dump, or the acknowledgement.
    fn request(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let mut guard = self.socket.lock().unwrap_or_else(|p| p.into_inner());
        let (socket, seq) = &mut *guard;
        *seq = seq.wrapping_add(1);
        let seq = *seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        socket.send(&buf, 0)?;
        let mut out = Vec::new();
        loop {
            let (data, _) = socket.recv_from_full()?;
            let mut at = 0;
            while at < data.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[at..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    break;
                }
                at += (len + 3) & !3;
                if reply.header.sequence_number != seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                    // The acknowledgement (a dump ends with `Done` before it).
                    NetlinkPayload::Error(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    _ => {}
                }
            }
        }
    }

    /// The index of the link named `name`, if there is one.
    pub fn link_index(&self, name: &str) -> io::Result<Option<u32>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(links) => Ok(links.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The name of the link with this index, if there is one.
    pub fn link_name(&self, index: u32) -> io::Result<Option<String>> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(links) => Ok(links.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => l.attributes.into_iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n),
                    _ => None,
                }),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link, as the kernel describes it.
    fn links(&self) -> io::Result<impl Iterator<Item = LinkMessage>> {
        let all = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(all.into_iter().filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(l),
            _ => None,
        }))
    }

    /// The names of every link.
    pub fn link_names(&self) -> io::Result<Vec<String>> {
        Ok(self
            .links()?
            .filter_map(|l| {
                l.attributes.into_iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n),
                    _ => None,
                })
            })
            .collect())
    }

    /// Makes a bridge named `name` (`EEXIST` when there is one).
    pub fn add_bridge(&self, name: &str, mac: [u8; 6]) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
    }

    /// Makes a veth pair: `host` here, enslaved to the bridge `master` and up; its peer
    /// `peer` with the address `mac` straight in the namespace `netns`, down.
    pub fn add_veth(
        &self,
        host: &str,
        master: u32,
        peer: &str,
        mac: [u8; 6],
        netns: BorrowedFd<'_>,
    ) -> io::Result<()> {
        let mut peer_msg = LinkMessage::default();
        peer_msg.attributes.push(LinkAttribute::IfName(peer.into()));
        peer_msg
            .attributes
            .push(LinkAttribute::Address(mac.to_vec()));
        peer_msg
            .attributes
            .push(LinkAttribute::NetNsFd(netns.as_fd().as_raw_fd()));
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName(host.into()));
        msg.attributes.push(LinkAttribute::Controller(master));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
    }

    /// Sets the link up.
    pub fn set_up(&self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(msg), 0).map(drop)
    }

    /// Puts the link in an interface group (`ip link set group`).
    pub fn set_group(&self, index: u32, group: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::Group(group));
        self.request(RouteNetlinkMessage::SetLink(msg), 0).map(drop)
    }

    /// Removes the link named `name`; `Ok(false)` when there is none.
    pub fn delete_link(&self, name: &str) -> io::Result<bool> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        match self.request(RouteNetlinkMessage::DelLink(msg), 0) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes the link with this index; `Ok(false)` when there is none.
    pub fn delete_link_index(&self, index: u32) -> io::Result<bool> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.request(RouteNetlinkMessage::DelLink(msg), 0) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds `addr/prefix` to the link (`EEXIST` when it has it). An IPv6 address is added
    /// without duplicate address detection (`IFA_F_NODAD`, as Docker does): usable at once,
    /// not tentative for a second or more (berth hands its addresses out itself).
    pub fn add_address(&self, index: u32, addr: IpAddr, prefix: u8) -> io::Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = family(addr);
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(addr));
        msg.attributes.push(AddressAttribute::Address(addr));
        if addr.is_ipv6() {
            msg.header.flags = AddressHeaderFlags::Nodad;
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// The addresses of the link, with their prefix lengths.
    pub fn addresses(&self, index: u32) -> io::Result<Vec<(IpAddr, u8)>> {
        self.addresses_of(Some(index))
    }

    fn addresses_of(&self, index: Option<u32>) -> io::Result<Vec<(IpAddr, u8)>> {
        let msg = AddressMessage::default();
        let all = self.request(RouteNetlinkMessage::GetAddress(msg), NLM_F_DUMP)?;
        Ok(all
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if index.is_none_or(|i| a.header.index == i) => {
                    let prefix = a.header.prefix_len;
                    a.attributes.into_iter().find_map(|at| match at {
                        AddressAttribute::Local(ip) => Some((ip, prefix)),
                        AddressAttribute::Address(ip) if ip.is_ipv6() => Some((ip, prefix)),
                        _ => None,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// The host's own addresses that a client elsewhere reaches this host by, as the
    /// kernel decides it: addresses of global scope on links outside the interface group
    /// `except` (berth's bridges) that have their route in the local table (a `fib daddr
    /// type local` match). Not an IPv6 address still in (or failed) duplicate address
    /// detection, nor one kept on a link that is down: neither has its local route. Nor
    /// loopback, link-local, multicast or IPv4-in-IPv6 ones. Primary addresses first, then
    /// secondary ones (IPv4's `secondary`), each in order.
    pub fn local_addresses(&self, except: u32) -> io::Result<Vec<IpAddr>> {
        let skip: std::collections::HashSet<u32> = self
            .links()?
            .filter(|l| l.attributes.contains(&LinkAttribute::Group(except)))
            .map(|l| l.header.index)
            .collect();
        let mut local = std::collections::HashSet::new();
        for v6 in [false, true] {
            let host_length = if v6 { 128 } else { 32 };
            for r in self.table_routes(v6, RT_TABLE_LOCAL, RouteType::Local)? {
                if r.header.destination_prefix_length != host_length {
                    continue;
                }
                local.extend(r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(IpAddr::V4(*ip)),
                    RouteAttribute::Destination(RouteAddress::Inet6(ip)) => Some(IpAddr::V6(*ip)),
                    _ => None,
                }));
            }
        }
        let all = self.request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?;
        let mut out: Vec<(bool, IpAddr)> = all
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a)
                    if a.header.scope == AddressScope::Universe
                        && !skip.contains(&a.header.index)
                        && !a.header.flags.intersects(
                            AddressHeaderFlags::Tentative | AddressHeaderFlags::Dadfailed,
                        ) =>
                {
                    let secondary = a.header.flags.contains(AddressHeaderFlags::Secondary);
                    a.attributes.into_iter().find_map(|at| match at {
                        AddressAttribute::Local(ip) => Some((secondary, ip)),
                        AddressAttribute::Address(ip) if ip.is_ipv6() => Some((secondary, ip)),
                        _ => None,
                    })
                }
                _ => None,
            })
            .filter(|(_, ip)| local.contains(ip) && reachable_by_others(*ip))
            .collect();
        out.sort();
        // Once each (an address on two links, primary on one and secondary on the other).
        let mut seen = std::collections::HashSet::new();
        Ok(out
            .into_iter()
            .map(|(_, ip)| ip)
            .filter(|ip| seen.insert(*ip))
            .collect())
    }

    /// Adds the default route of `gateway`'s family through it (by the link `oif` when
    /// given).
    pub fn add_default_route(&self, gateway: IpAddr, oif: Option<u32>) -> io::Result<()> {
        let mut msg = RouteMessage::default();
        msg.header = RouteHeader {
            address_family: family(gateway),
            table: RouteHeader::RT_TABLE_MAIN,
            protocol: RouteProtocol::Boot,
            scope: RouteScope::Universe,
            kind: RouteType::Unicast,
            ..Default::default()
        };
        msg.attributes
            .push(RouteAttribute::Gateway(route_address(gateway)));
        if let Some(oif) = oif {
            msg.attributes.push(RouteAttribute::Oif(oif));
        }
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// The unicast routes of the main table, of one family.
    fn main_routes(&self, v6: bool) -> io::Result<impl Iterator<Item = RouteMessage>> {
        self.table_routes(v6, RouteHeader::RT_TABLE_MAIN, RouteType::Unicast)
    }

    /// The routes of one family, table and type.
    fn table_routes(
        &self,
        v6: bool,
        table: u8,
        kind: RouteType,
    ) -> io::Result<impl Iterator<Item = RouteMessage>> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = if v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let all = self.request(RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP)?;
        Ok(all.into_iter().filter_map(move |m| match m {
            RouteNetlinkMessage::NewRoute(r)
                if r.header.table == table && r.header.kind == kind =>
            {
                Some(r)
            }
            _ => None,
        }))
    }

    /// Whether the main table has a default route of the family.
    pub fn has_default_route(&self, v6: bool) -> io::Result<bool> {
        Ok(self
            .main_routes(v6)?
            .any(|r| r.header.destination_prefix_length == 0))
    }

    /// The destinations of the main table's routes of one family, for choosing subnets
    /// that collide with nothing on the host.
    pub fn routes(&self, v6: bool) -> io::Result<Vec<Route>> {
        Ok(self
            .main_routes(v6)?
            .filter_map(|r| {
                let prefix = r.header.destination_prefix_length;
                let destination = r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(IpAddr::V4(*ip)),
                    RouteAttribute::Destination(RouteAddress::Inet6(ip)) => Some(IpAddr::V6(*ip)),
                    _ => None,
                });
                // The default route (no destination) covers everything: not a
                // collision, or no subnet could ever be chosen.
                destination.map(|destination| Route {
                    destination,
                    prefix,
                })
            })
            .collect())
    }
}

fn family(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn route_address(addr: IpAddr) -> RouteAddress {
    match addr {
        IpAddr::V4(ip) => RouteAddress::Inet(ip),
        IpAddr::V6(ip) => RouteAddress::Inet6(ip),
    }
}

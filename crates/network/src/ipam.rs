//! IPv4 and IPv6 subnets and address leases: Docker's default pools, a subnet chosen to
//! collide with no route on the host, and addresses handed out in turn (a released address
//! is not the next one given, so a stale neighbour entry never points at a new container).

use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 prefix: `addr` has no host bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    /// The subnet of `addr/prefix` (host bits dropped).
    pub fn of(addr: Ipv4Addr, prefix: u8) -> Subnet {
        Subnet {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        }
    }

    fn first(&self) -> u32 {
        u32::from(self.addr)
    }

    fn last(&self) -> u32 {
        self.first() | !mask(self.prefix)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.first()
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    /// The `n`th address of the subnet.
    pub fn host(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.first().wrapping_add(n))
    }

    /// How many addresses it spans.
    fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `a.b.c.d/n`, with its host bits (Docker's `--bip` names the bridge's address so).
pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let bad = || format!("invalid CIDR address: {s}");
    let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
    let ip = Ipv4Addr::from_str(ip).map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    if prefix > 32 || prefix.to_string() != s.split_once('/').map_or("", |p| p.1) {
        return Err(bad());
    }
    Ok((ip, prefix))
}

impl FromStr for Subnet {
    type Err = String;
    fn from_str(s: &str) -> Result<Subnet, String> {
        let (ip, prefix) = parse_cidr(s)?;
        Ok(Subnet::of(ip, prefix))
    }
}

/// Docker's default address pools after docker0's own 172.17.0.0/16: 172.18-31.0.0/16,
/// then 192.168.0.0/16 cut in /20s. Podman's 10.88.0.0/16 is in neither.
pub fn default_candidates() -> Vec<Subnet> {
    let mut out: Vec<Subnet> = (18..=31)
        .map(|b| Subnet::of(Ipv4Addr::new(172, b, 0, 0), 16))
        .collect();
    out.extend((0..16).map(|i| Subnet::of(Ipv4Addr::new(192, 168, i * 16, 0), 20)));
    out
}

/// Most subnets one pool may be cut into (a /8 in /24s is 65536).
const MAX_POOL_SUBNETS: u32 = 1 << 16;

/// Docker's `--default-address-pool base=CIDR,size=N`: `(base, size)`.
pub fn parse_pool(s: &str) -> Result<(Subnet, u8), String> {
    let mut base = None;
    let mut size = None;
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("base", v)) => base = Some(v.parse::<Subnet>()?),
            Some(("size", v)) => {
                size = Some(
                    v.parse::<u8>()
                        .map_err(|_| format!("invalid size {v:?} in {s:?}"))?,
                )
            }
            _ => return Err(format!("invalid address pool {s:?}: want base=CIDR,size=N")),
        }
    }
    let (Some(base), Some(size)) = (base, size) else {
        return Err(format!("invalid address pool {s:?}: want base=CIDR,size=N"));
    };
    if size < base.prefix || size > 30 {
        return Err(format!(
            "invalid address pool {s:?}: size must be between the base's /{} and /30",
            base.prefix
        ));
    }
    if size - base.prefix > 16 {
        return Err(format!(
            "invalid address pool {s:?}: more than {MAX_POOL_SUBNETS} subnets of /{size}"
        ));
    }
    Ok((base, size))
}

/// The subnets of the pools, in order: each base cut into subnets of its size.
pub fn pool_candidates(pools: &[(Subnet, u8)]) -> Vec<Subnet> {
    let mut out = Vec::new();
    for (base, size) in pools {
        let step = 1u32 << (32 - size);
        let count = 1u32 << (size - base.prefix);
        for i in 0..count.min(MAX_POOL_SUBNETS) {
            out.push(Subnet {
                addr: Ipv4Addr::from(u32::from(base.addr).wrapping_add(i * step)),
                prefix: *size,
            });
        }
    }
    out
}

/// The first candidate that overlaps none of `taken` (routes on the host, other networks).
pub fn choose(candidates: &[Subnet], taken: &[Subnet]) -> Option<Subnet> {
    candidates
        .iter()
        .find(|c| !taken.iter().any(|t| t.overlaps(c)))
        .copied()
}

/// The leases of one subnet. The gateway, the network and the broadcast address are never
/// handed out.
#[derive(Debug, Clone)]
pub struct Pool {
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    /// Where [`Pool::allocate`] hands addresses out from (`--ip-range`); the whole subnet
    /// when `None`.
    range: Option<Subnet>,
    used: BTreeSet<Ipv4Addr>,
    /// Where the next search starts.
    next: u32,
}

impl Pool {
    pub fn new(subnet: Subnet, gateway: Ipv4Addr) -> Pool {
        Pool {
            subnet,
            gateway,
            range: None,
            used: BTreeSet::new(),
            next: 1,
        }
    }

    /// Hands addresses out from `range` only (`--ip-range`), from its first on.
    pub fn set_range(&mut self, range: Option<Subnet>) {
        self.range = range;
        self.next = if range.is_some() { 0 } else { 1 };
    }

    fn usable(&self, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip).wrapping_sub(u32::from(self.subnet.addr));
        self.subnet.contains(ip)
            && ip != self.gateway
            && (self.subnet.prefix >= 31 || (n != 0 && u64::from(n) != self.subnet.size() - 1))
    }

    /// The next free address of the range (the subnet without one), in turn; `None` when
    /// it is full. Only the range is searched: a small range of a big subnet is quick.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let from = self.range.unwrap_or(self.subnet);
        let size = from.size();
        for i in 0..size {
            let n = ((u64::from(self.next) + i) % size) as u32;
            let ip = from.host(n);
            if self.usable(ip) && !self.used.contains(&ip) {
                self.used.insert(ip);
                self.next = ((u64::from(n) + 1) % size) as u32;
                return Some(ip);
            }
        }
        None
    }

    /// Takes `ip` (a lease recorded before a restart, or asked for by `--ip`); `false` when
    /// it is not usable here or already taken.
    pub fn claim(&mut self, ip: Ipv4Addr) -> bool {
        self.usable(ip) && self.used.insert(ip)
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&ip);
    }

    pub fn leased(&self) -> usize {
        self.used.len()
    }
}

/// Docker's MAC address for a container's interface: `02:42` and the IPv4 address.
pub fn mac_of(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An IPv6 prefix: `addr` has no host bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet6 {
    pub addr: Ipv6Addr,
    pub prefix: u8,
}

fn mask6(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix.min(128)))
    }
}

impl Subnet6 {
    /// The subnet of `addr/prefix` (host bits dropped).
    pub fn of(addr: Ipv6Addr, prefix: u8) -> Subnet6 {
        Subnet6 {
            addr: Ipv6Addr::from(u128::from(addr) & mask6(prefix)),
            prefix,
        }
    }

    fn first(&self) -> u128 {
        u128::from(self.addr)
    }

    fn last(&self) -> u128 {
        self.first() | !mask6(self.prefix)
    }

    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & mask6(self.prefix) == self.first()
    }

    pub fn overlaps(&self, other: &Subnet6) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    /// The `n`th address of the subnet.
    pub fn host(&self, n: u128) -> Ipv6Addr {
        Ipv6Addr::from(self.first().wrapping_add(n))
    }

    /// How many addresses it spans, less one (a /0 spans 2^128).
    fn span(&self) -> u128 {
        !mask6(self.prefix)
    }
}

impl fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Subnet6 {
    type Err = String;
    fn from_str(s: &str) -> Result<Subnet6, String> {
        let bad = || format!("invalid CIDR address: {s}");
        let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
        let ip = Ipv6Addr::from_str(ip).map_err(|_| bad())?;
        let n: u8 = prefix.parse().map_err(|_| bad())?;
        if n > 128 || n.to_string() != prefix {
            return Err(bad());
        }
        Ok(Subnet6::of(ip, n))
    }
}

/// Docker's default IPv6 pool: a ULA /48 of this daemon's own (RFC 4193's `fd` and a
/// 40-bit global id: the low 40 bits of `global_id`), cut into /64s, in order.
pub fn ula_candidates(global_id: u64) -> impl Iterator<Item = Subnet6> {
    let global = u128::from(global_id & ((1 << 40) - 1));
    let base = (0xfd_u128 << 120) | (global << 80);
    (0..=u16::MAX).map(move |n| Subnet6 {
        addr: Ipv6Addr::from(base | (u128::from(n) << 64)),
        prefix: 64,
    })
}

/// The first candidate that overlaps none of `taken`.
pub fn choose6(
    mut candidates: impl Iterator<Item = Subnet6>,
    taken: &[Subnet6],
) -> Option<Subnet6> {
    candidates.find(|c| !taken.iter().any(|t| t.overlaps(c)))
}

/// The IPv6 leases of one subnet. The gateway and the subnet-router anycast address (the
/// subnet's first) are never handed out.
#[derive(Debug, Clone)]
pub struct Pool6 {
    pub subnet: Subnet6,
    pub gateway: Ipv6Addr,
    /// Where [`Pool6::allocate`] hands addresses out from (`--ip-range`); the whole subnet
    /// when `None`.
    pub range: Option<Subnet6>,
    used: BTreeSet<Ipv6Addr>,
    /// Where the next search starts (an offset in the subnet).
    next: u128,
}

impl Pool6 {
    pub fn new(subnet: Subnet6, gateway: Ipv6Addr) -> Pool6 {
        Pool6 {
            subnet,
            gateway,
            range: None,
            used: BTreeSet::new(),
            next: 1,
        }
    }

    fn usable(&self, ip: Ipv6Addr) -> bool {
        self.subnet.contains(ip)
            && ip != self.gateway
            && (self.subnet.prefix >= 127 || ip != self.subnet.addr)
    }

    /// The next free address, in turn; `None` when the subnet (or the range) is full.
    /// A /64 has 2^64 addresses: the search passes over at most the leased ones and the
    /// two never handed out before it finds a free one, or over the whole range when it
    /// is that small.
    pub fn allocate(&mut self) -> Option<Ipv6Addr> {
        // Offsets in the subnet, both ends included.
        let (lo, hi) = match self.range {
            // A range outside the subnet has nothing to hand out.
            Some(r) if !(self.subnet.contains(r.addr) && r.prefix >= self.subnet.prefix) => {
                return None
            }
            Some(r) => (
                r.first() - self.subnet.first(),
                r.last() - self.subnet.first(),
            ),
            None => (0, self.subnet.span()),
        };
        let mut n = if (lo..=hi).contains(&self.next) {
            self.next
        } else {
            lo
        };
        let after = |n: u128| if n == hi { lo } else { n + 1 };
        // Of any `leased + 3` addresses in a row one is free; fewer when the range is smaller.
        let steps = (hi - lo).min(self.used.len() as u128 + 2);
        for _ in 0..=steps {
            let ip = self.subnet.host(n);
            if self.usable(ip) && !self.used.contains(&ip) {
                self.used.insert(ip);
                self.next = after(n);
                return Some(ip);
            }
            n = after(n);
        }
        None
    }

    /// Takes `ip` (a lease recorded before a restart, or asked for by `--ip6`); `false`
    /// when it is not usable here or already taken.
    pub fn claim(&mut self, ip: Ipv6Addr) -> bool {
        self.usable(ip) && self.used.insert(ip)
    }

    pub fn release(&mut self, ip: Ipv6Addr) {
        self.used.remove(&ip);
    }

    pub fn leased(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Subnet {
        text.parse().unwrap()
    }

    #[test]
    fn cidr_parsing_keeps_the_address_and_refuses_nonsense() {
        assert_eq!(
            parse_cidr("10.1.2.3/24").unwrap(),
            (Ipv4Addr::new(10, 1, 2, 3), 24)
        );
        assert_eq!(s("10.1.2.3/24"), s("10.1.2.0/24"));
        for bad in [
            "10.1.2.3",
            "10.1.2.3/33",
            "10.1.2/24",
            "10.1.2.3/+4",
            "x/8",
            "10.0.0.0/08",
        ] {
            assert_eq!(
                parse_cidr(bad).unwrap_err(),
                format!("invalid CIDR address: {bad}")
            );
        }
    }

    #[test]
    fn address_pools_are_cut_into_their_size() {
        let pool = parse_pool("base=10.10.0.0/16,size=24").unwrap();
        assert_eq!(pool, (s("10.10.0.0/16"), 24));
        let c = pool_candidates(&[pool]);
        assert_eq!(c.len(), 256);
        assert_eq!(
            (c[0], c[1], c[255]),
            (s("10.10.0.0/24"), s("10.10.1.0/24"), s("10.10.255.0/24"))
        );
        assert_eq!(choose(&c, &[s("10.10.0.0/23")]), Some(s("10.10.2.0/24")));
        for bad in [
            "base=10.0.0.0/16",
            "size=24",
            "base=10.0.0.0/16,size=8",
            "base=10.0.0.0/8,size=30",
            "base=x,size=24",
            "10.0.0.0/16",
        ] {
            assert!(parse_pool(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_subnet_overlapping_a_route_is_passed_over() {
        let taken = [s("172.18.5.0/24"), s("172.19.0.0/16"), s("10.0.0.0/8")];
        assert_eq!(
            choose(&default_candidates(), &taken),
            Some(s("172.20.0.0/16"))
        );
        let all: Vec<Subnet> = vec![s("172.16.0.0/12"), s("192.168.0.0/16")];
        assert_eq!(choose(&default_candidates(), &all), None);
        assert!(!default_candidates()
            .iter()
            .any(|c| c.overlaps(&s("172.17.0.0/16")) || c.overlaps(&s("10.88.0.0/16"))));
    }

    #[test]
    fn addresses_go_in_turn_skipping_gateway_network_and_broadcast() {
        let mut pool = Pool::new(s("10.9.0.0/29"), Ipv4Addr::new(10, 9, 0, 1));
        let got: Vec<_> = std::iter::from_fn(|| pool.allocate()).collect();
        let want: Vec<_> = (2..=6).map(|i| Ipv4Addr::new(10, 9, 0, i)).collect();
        assert_eq!(got, want, "2..6: not .0, .1 (gateway) or .7");
        pool.release(Ipv4Addr::new(10, 9, 0, 3));
        pool.release(Ipv4Addr::new(10, 9, 0, 5));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(10, 9, 0, 3)));
        assert!(!pool.claim(Ipv4Addr::new(10, 9, 0, 1)), "the gateway");
        assert!(!pool.claim(Ipv4Addr::new(10, 9, 0, 2)), "taken");
        assert!(!pool.claim(Ipv4Addr::new(10, 9, 1, 2)), "outside");
        assert!(pool.claim(Ipv4Addr::new(10, 9, 0, 5)));
        assert_eq!(pool.allocate(), None);
    }

    #[test]
    fn an_ip_range_bounds_what_is_handed_out_not_what_may_be_claimed() {
        let mut pool = Pool::new(s("10.9.0.0/24"), Ipv4Addr::new(10, 9, 0, 1));
        pool.set_range(Some(s("10.9.0.128/30")));
        let got: Vec<_> = std::iter::from_fn(|| pool.allocate()).collect();
        let want: Vec<_> = (128..=131).map(|i| Ipv4Addr::new(10, 9, 0, i)).collect();
        assert_eq!(got, want);
        assert!(
            pool.claim(Ipv4Addr::new(10, 9, 0, 7)),
            "--ip outside the range"
        );
    }

    #[test]
    fn the_mac_is_docker_s() {
        assert_eq!(
            format_mac(mac_of(Ipv4Addr::new(172, 18, 0, 2))),
            "02:42:ac:12:00:02"
        );
    }

    fn s6(text: &str) -> Subnet6 {
        text.parse().unwrap()
    }

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_subnets_parse_mask_and_overlap() {
        assert_eq!(s6("fd00:be:1::7/64"), s6("fd00:be:1::/64"));
        assert_eq!(s6("fd00:be:1::/64").to_string(), "fd00:be:1::/64");
        assert!(s6("fd00:be::/32").overlaps(&s6("fd00:be:1::/64")));
        assert!(!s6("fd00:be::/48").overlaps(&s6("fd00:be:1::/64")));
        assert!(!s6("fd00:be:1::/64").overlaps(&s6("fd00:be:2::/64")));
        assert!(
            !s6("fd00::/64").overlaps(&s6("fd00:be:1::/64")),
            "fd00:0:0:0 is not fd00:be"
        );
        assert!(s6("::/0").contains(v6("2001:db8::1")));
        assert!(s6("fd00:be:1::/64").contains(v6("fd00:be:1::ffff")));
        assert!(!s6("fd00:be:1::/64").contains(v6("fd00:be:2::1")));
        for bad in [
            "fd00::",
            "fd00::/129",
            "10.0.0.0/8",
            "fd00::/+4",
            "fd00::/064",
            "x/64",
        ] {
            assert_eq!(
                bad.parse::<Subnet6>().unwrap_err(),
                format!("invalid CIDR address: {bad}")
            );
        }
    }

    #[test]
    fn the_default_ipv6_pool_is_a_ula_48_cut_in_64s() {
        let mut c = ula_candidates(0xAB_CDEF_0123_4567);
        assert_eq!(c.next(), Some(s6("fdef:123:4567::/64")));
        assert_eq!(c.next(), Some(s6("fdef:123:4567:1::/64")));
        let taken = [s6("fdef:123:4567::/63"), s6("fd00::/64")];
        assert_eq!(
            choose6(ula_candidates(0xEF_0123_4567), &taken),
            Some(s6("fdef:123:4567:2::/64"))
        );
        assert_eq!(choose6(ula_candidates(1), &[s6("fd00::/8")]), None);
        assert_eq!(ula_candidates(7).count(), 65536);
    }

    #[test]
    fn ipv6_addresses_go_in_turn_skipping_gateway_and_anycast() {
        let subnet = s6("fd00:be:1::/125");
        let mut pool = Pool6::new(subnet, v6("fd00:be:1::1"));
        let got: Vec<_> = std::iter::from_fn(|| pool.allocate()).collect();
        let want: Vec<_> = (2..=7).map(|i| subnet.host(i)).collect();
        assert_eq!(got, want, "::2..::7: not ::0 (anycast) or ::1 (gateway)");
        pool.release(subnet.host(3));
        pool.release(subnet.host(6));
        assert_eq!(
            pool.allocate(),
            Some(subnet.host(3)),
            "in turn, from the start again"
        );
        assert!(!pool.claim(v6("fd00:be:1::1")), "the gateway");
        assert!(
            !pool.claim(v6("fd00:be:1::")),
            "the subnet-router anycast address"
        );
        assert!(!pool.claim(v6("fd00:be:1::2")), "taken");
        assert!(!pool.claim(v6("fd00:be:2::2")), "outside");
        assert!(pool.claim(subnet.host(6)));
        assert_eq!(pool.allocate(), None);
        assert_eq!(pool.leased(), 6);
    }

    #[test]
    fn a_64_hands_out_in_turn_and_a_released_address_is_not_the_next() {
        let subnet = s6("fd00:be:2::/64");
        let mut pool = Pool6::new(subnet, subnet.host(1));
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        assert_eq!((a, b), (v6("fd00:be:2::2"), v6("fd00:be:2::3")));
        pool.release(a);
        assert_eq!(pool.allocate(), Some(v6("fd00:be:2::4")));
        // Claimed ahead: passed over.
        assert!(pool.claim(v6("fd00:be:2::5")));
        assert_eq!(pool.allocate(), Some(v6("fd00:be:2::6")));
        // The end of the subnet wraps to its start.
        let mut end = Pool6::new(subnet, subnet.host(1));
        assert!(end.claim(v6("fd00:be:2:0:ffff:ffff:ffff:fffe")));
        end.next = u128::from(u64::MAX);
        assert_eq!(end.allocate(), Some(v6("fd00:be:2:0:ffff:ffff:ffff:ffff")));
        assert_eq!(end.allocate(), Some(v6("fd00:be:2::2")));
    }

    #[test]
    fn an_ipv6_range_bounds_what_is_handed_out_not_what_may_be_claimed() {
        let subnet = s6("fd00:be:3::/64");
        let mut pool = Pool6::new(subnet, subnet.host(1));
        pool.range = Some(s6("fd00:be:3::100/126"));
        let got: Vec<_> = std::iter::from_fn(|| pool.allocate()).collect();
        let want: Vec<_> = (0x100..=0x103).map(|i| subnet.host(i)).collect();
        assert_eq!(got, want);
        assert!(pool.claim(v6("fd00:be:3::7")), "--ip6 outside the range");
    }
}

//! Forgetting a container's flows in the kernel's connection tracking (ctnetlink).
//!
//! A published UDP (or SCTP) port's traffic keeps the translation of its first packet for as
//! long as it flows: a syslog sender that sent to a container keeps sending to that
//! container's address after it is gone, and to nothing at all, even once another container
//! publishes the same port (moby#8795, which Docker mended by flushing them too). So when
//! a container's ports are unpublished, the tracked flows answered from its address and
//! port are deleted: the next packet is a new flow and takes the rules as they are then.
//! TCP is left alone: a connection to a container that is gone ends by itself (its peer
//! gets a reset or times out), and a new connection is a new flow anyway.
//!
//! The messages are ctnetlink's own (linux/netfilter/nfnetlink_conntrack.h): a dump of the
//! flows whose reply tuple comes from the container's address, protocol and port (the
//! kernel filters, `CTA_FILTER`, Linux 5.8), then a delete of each by its original tuple,
//! copied from the dump as the kernel wrote it. A few attributes, built by hand: the crate
//! for them (netlink-packet-netfilter) needs a second netlink-packet-core.

use std::io;
use std::net::{IpAddr, SocketAddr};

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
const CTA_FILTER: u16 = 25;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_FILTER_REPLY_FLAGS: u16 = 2;
/// `CTA_FILTER_F_CTA_IP_SRC | CTA_FILTER_F_CTA_PROTO_NUM | CTA_FILTER_F_CTA_PROTO_SRC_PORT`.
const REPLY_SOURCE: u32 = (1 << 0) | (1 << 3) | (1 << 4);
/// `CTA_FILTER_F_CTA_PROTO_NUM | CTA_FILTER_F_CTA_PROTO_SRC_PORT`: the kernel's IPv6 source
/// address filter matches the flows whose address differs (`!ipv6_addr_cmp` read backwards
/// in `ctnetlink_filter_match_tuple`, still in 6.18), so for IPv6 the address is checked
/// here only.
const REPLY_PORT: u32 = (1 << 3) | (1 << 4);
/// The most flows forgotten at once (each is one small request).
const MAX_FLOWS: usize = 65_536;

/// One netlink attribute: header, value, padding to 4 bytes.
fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
    let len = 4 + value.len();
    let mut out = Vec::with_capacity(len.next_multiple_of(4));
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(len.next_multiple_of(4), 0);
    out
}

fn nested(kind: u16, attrs: &[Vec<u8>]) -> Vec<u8> {
    attr(kind | NLA_F_NESTED, &attrs.concat())
}

/// A ctnetlink request: netlink header, `nfgenmsg` (family, version 0, resource 0), body.
fn message(kind: u16, flags: u16, seq: u32, family: u8, body: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + body.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | kind).to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[family, 0, 0, 0]);
    out.extend_from_slice(body);
    out
}

/// The dump request of the flows answered from `ip`, protocol `proto` (IANA number), `port`.
fn dump_request(seq: u32, proto: u8, ip: IpAddr, port: u16) -> Vec<u8> {
    let (family, address) = match ip {
        IpAddr::V4(a) => (libc::AF_INET as u8, attr(CTA_IP_V4_SRC, &a.octets())),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, attr(CTA_IP_V6_SRC, &a.octets())),
    };
    let reply = nested(
        CTA_TUPLE_REPLY,
        &[
            nested(CTA_TUPLE_IP, &[address]),
            nested(
                CTA_TUPLE_PROTO,
                &[
                    attr(CTA_PROTO_NUM, &[proto]),
                    attr(CTA_PROTO_SRC_PORT, &port.to_be_bytes()),
                ],
            ),
        ],
    );
    let flags = if ip.is_ipv4() {
        REPLY_SOURCE
    } else {
        REPLY_PORT
    };
    let filter = nested(
        CTA_FILTER,
        &[attr(CTA_FILTER_REPLY_FLAGS, &flags.to_ne_bytes())],
    );
    message(
        IPCTNL_MSG_CT_GET,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        family,
        &[reply, filter].concat(),
    )
}

/// The top-level attributes of a ctnetlink message body (after its `nfgenmsg`), raw.
fn attributes(mut body: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while body.len() >= 4 {
        let len = u16::from_ne_bytes([body[0], body[1]]) as usize;
        let kind = u16::from_ne_bytes([body[2], body[3]]) & !NLA_F_NESTED;
        if len < 4 || len > body.len() {
            break;
        }
        out.push((kind, &body[..len]));
        body = &body[len.next_multiple_of(4).min(body.len())..];
    }
    out
}

/// The netlink messages in `buf`: (type, payload).
fn messages(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        if len < 16 || len > buf.len() {
            break;
        }
        out.push((kind, &buf[16..len]));
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    out
}

/// The value of attribute `kind` among `attrs` (raw attributes, header included).
fn value<'a>(attrs: &[(u16, &'a [u8])], kind: u16) -> Option<&'a [u8]> {
    attrs
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, raw)| &raw[4..])
}

/// Whether a dumped flow (its attributes) is answered from `ip`:`port` over `proto`. The
/// kernel filtered the dump already; this holds even if it had not (a kernel before 5.8
/// dumps every flow of the family): nothing else is ever deleted.
fn answered_from(attrs: &[(u16, &[u8])], proto: u8, ip: IpAddr, port: u16) -> bool {
    let Some(reply) = value(attrs, CTA_TUPLE_REPLY) else {
        return false;
    };
    let reply = attributes(reply);
    let (Some(tuple_ip), Some(tuple_proto)) =
        (value(&reply, CTA_TUPLE_IP), value(&reply, CTA_TUPLE_PROTO))
    else {
        return false;
    };
    let source = match ip {
        IpAddr::V4(a) => value(&attributes(tuple_ip), CTA_IP_V4_SRC) == Some(&a.octets()[..]),
        IpAddr::V6(a) => value(&attributes(tuple_ip), CTA_IP_V6_SRC) == Some(&a.octets()[..]),
    };
    let l4 = attributes(tuple_proto);
    source
        && value(&l4, CTA_PROTO_NUM) == Some(&[proto][..])
        && value(&l4, CTA_PROTO_SRC_PORT) == Some(&port.to_be_bytes()[..])
}

/// An `NLMSG_ERROR`'s code as an error (0, an acknowledgement, is `Ok`).
fn error_of(payload: &[u8]) -> io::Result<()> {
    let Some(b) = payload.get(..4) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a truncated netlink error message",
        ));
    };
    let code = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(-code))
    }
}

/// Deletes the tracked flows answered from `ip`:`port` over `proto` (IANA number: 17 UDP,
/// 132 SCTP): how many went. Flows that end meanwhile are not an error.
pub fn forget(proto: u8, ip: IpAddr, port: u16) -> io::Result<usize> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
    let family = if ip.is_ipv4() {
        libc::AF_INET as u8
    } else {
        libc::AF_INET6 as u8
    };
    socket.send(&dump_request(1, proto, ip, port), 0)?;
    // The original tuple (and zone) of each flow, as the kernel wrote them.
    let mut flows: Vec<Vec<u8>> = Vec::new();
    'dump: loop {
        let (buf, _) = socket.recv_from_full()?;
        if buf.is_empty() {
            break;
        }
        for (kind, payload) in messages(&buf) {
            match kind {
                NLMSG_DONE => break 'dump,
                NLMSG_ERROR => {
                    error_of(payload)?;
                    break 'dump;
                }
                _ if payload.len() >= 4 && flows.len() < MAX_FLOWS => {
                    let attrs = attributes(&payload[4..]);
                    // Without its original tuple a delete would be a flush of the table.
                    if !answered_from(&attrs, proto, ip, port)
                        || value(&attrs, CTA_TUPLE_ORIG).is_none()
                    {
                        continue;
                    }
                    // Its id too: a newer flow of the same tuple is never taken instead.
                    let keep: Vec<u8> = attrs
                        .into_iter()
                        .filter(|(k, _)| matches!(*k, CTA_TUPLE_ORIG | CTA_ZONE | CTA_ID))
                        .flat_map(|(_, raw)| {
                            let mut raw = raw.to_vec();
                            raw.resize(raw.len().next_multiple_of(4), 0);
                            raw
                        })
                        .collect();
                    flows.push(keep);
                }
                _ => {}
            }
        }
    }
    if flows.len() == MAX_FLOWS {
        tracing::warn!(
            "more than {MAX_FLOWS} tracked flows from {}: the rest end by their timeout",
            SocketAddr::new(ip, port)
        );
    }
    let mut forgotten = 0;
    for (i, flow) in flows.iter().enumerate() {
        let seq = 2 + i as u32;
        socket.send(
            &message(
                IPCTNL_MSG_CT_DELETE,
                NLM_F_REQUEST | NLM_F_ACK,
                seq,
                family,
                flow,
            ),
            0,
        )?;
        let (buf, _) = socket.recv_from_full()?;
        for (kind, payload) in messages(&buf) {
            if kind == NLMSG_ERROR {
                match error_of(payload) {
                    Ok(()) => forgotten += 1,
                    // Ended on its own meanwhile.
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(forgotten)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dump_asks_for_the_reply_source_by_address_protocol_and_port() {
        let m = dump_request(7, 17, "10.1.2.3".parse().unwrap(), 5140);
        let (kind, payload) = messages(&m)[0];
        assert_eq!(kind, 0x0101);
        assert_eq!(payload[0], libc::AF_INET as u8);
        let top = attributes(&payload[4..]);
        let kinds: Vec<u16> = top.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, [CTA_TUPLE_REPLY, CTA_FILTER]);
        let reply = attributes(&top[0].1[4..]);
        let ip = attributes(&reply[0].1[4..]);
        assert_eq!(ip[0].0, CTA_IP_V4_SRC);
        assert_eq!(&ip[0].1[4..], &[10, 1, 2, 3]);
        let proto = attributes(&reply[1].1[4..]);
        assert_eq!(&proto[0].1[4..5], &[17]);
        assert_eq!(&proto[1].1[4..6], &5140u16.to_be_bytes());
        let filter = attributes(&top[1].1[4..]);
        assert_eq!(filter[0].0, CTA_FILTER_REPLY_FLAGS);
        assert_eq!(&filter[0].1[4..8], &REPLY_SOURCE.to_ne_bytes());
        // IPv6: the kernel's address filter is inverted; by protocol and port only.
        let m = dump_request(7, 17, "fd00::2".parse().unwrap(), 5140);
        let (_, payload) = messages(&m)[0];
        assert_eq!(payload[0], libc::AF_INET6 as u8);
        let top = attributes(&payload[4..]);
        let filter = attributes(&top[1].1[4..]);
        assert_eq!(&filter[0].1[4..8], &REPLY_PORT.to_ne_bytes());
    }

    /// A dumped flow's attributes as the kernel writes them: both tuples, then the rest.
    fn flow(reply_src: [u8; 4], proto: u8, sport: u16) -> Vec<u8> {
        let tuple = |kind, src: [u8; 4], sport: u16| {
            nested(
                kind,
                &[
                    nested(
                        CTA_TUPLE_IP,
                        &[attr(CTA_IP_V4_SRC, &src), attr(2, &[192, 0, 2, 2])],
                    ),
                    nested(
                        CTA_TUPLE_PROTO,
                        &[
                            attr(CTA_PROTO_NUM, &[proto]),
                            attr(CTA_PROTO_SRC_PORT, &sport.to_be_bytes()),
                            attr(3, &41000u16.to_be_bytes()),
                        ],
                    ),
                ],
            )
        };
        [
            tuple(CTA_TUPLE_ORIG, [192, 0, 2, 2], 41000),
            tuple(CTA_TUPLE_REPLY, reply_src, sport),
            attr(CTA_ZONE, &0u16.to_be_bytes()),
        ]
        .concat()
    }

    #[test]
    fn only_a_flow_answered_from_the_address_protocol_and_port_is_taken() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let ours = flow([10, 1, 2, 3], 17, 5140);
        assert!(answered_from(&attributes(&ours), 17, ip, 5140));
        for other in [
            flow([10, 1, 2, 4], 17, 5140),
            flow([10, 1, 2, 3], 6, 5140),
            flow([10, 1, 2, 3], 17, 5141),
        ] {
            assert!(!answered_from(&attributes(&other), 17, ip, 5140));
        }
        assert!(!answered_from(
            &attributes(&ours),
            17,
            "::1".parse().unwrap(),
            5140
        ));
        assert!(!answered_from(&[], 17, ip, 5140));
    }

    #[test]
    fn attributes_and_messages_stop_at_a_truncated_length() {
        assert!(attributes(&[200, 0, 1, 0, 9]).is_empty());
        assert!(messages(&[255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_empty());
    }
}

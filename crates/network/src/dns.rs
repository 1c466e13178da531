//! The embedded DNS server of user-defined networks: a container asks 127.0.0.11:53 (UDP
//! and TCP) in its own network namespace, as under Docker, and gets the addresses of the
//! containers it shares a network with; any other name goes to the host's resolvers.
//!
//! Unlike Docker there is no process, goroutine pair or iptables rule in the container: a
//! short-lived thread enters the container's namespace, binds both sockets there and ends
//! ([`Sockets::open_in`]); a socket stays in the namespace it was made in, so berthd serves
//! it from its own event loop ([`Resolver::serve`]) until the [`ServeHandle`] is dropped.
//! Forwarded queries leave from berthd's (the host's) namespace, so a loopback resolver of
//! the host (systemd-resolved's 127.0.0.53) is fine upstream.
//!
//! What is answered here, from [`Names`] (Docker's `ResolveName`/`ResolveIP`):
//! - A / AAAA of a known name: all its addresses of that family, rotated one place per query
//!   (several containers under one alias share the load), TTL 600 as Docker's; none of
//!   that family: NOERROR without answers, never forwarded (an upstream NXDOMAIN would be
//!   cached against a name that exists). Other types of a known name: NOERROR, empty.
//! - PTR of a container's address: its name.
//! - The rest is forwarded as received, with an id of berth's choosing, to each upstream in
//!   turn (UDP; TCP when the answer is truncated and the client asked over TCP), 2 s each;
//!   SERVFAIL and REFUSED try the next one. None answered, or none at all: SERVFAIL.
//!
//! Bounds per container: [`MAX_FORWARDS`] forwarded queries in flight (beyond: SERVFAIL at
//! once, as Docker past its limit, and cheaper for a flooding client than silence),
//! [`MAX_CONNECTIONS`] TCP connections (beyond: closed at once) each closed after
//! [`TCP_IDLE`] without a whole query, UDP read one datagram at a time into one buffer.
//! Local answers are computed on the spot. A flood from one container thus costs others
//! nothing but a share of the event loop.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Header, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

/// Where containers ask, in their own namespace (Docker's address).
pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// The port, UDP and TCP.
pub const PORT: u16 = 53;
/// The TTL of local answers (Docker's `respTTL`).
pub const TTL: u32 = 600;
/// How long one upstream has to answer (each of UDP and TCP).
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Forwarded queries in flight for one container; more are answered SERVFAIL.
pub const MAX_FORWARDS: usize = 32;
/// TCP connections open for one container; more are closed as they come.
pub const MAX_CONNECTIONS: usize = 16;
/// A TCP connection is closed when a whole query takes longer than this to come.
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// Upstreams used from a resolv.conf, as glibc (MAXNS) and Docker.
const MAX_UPSTREAMS: usize = 3;
/// Every UDP client takes 512 bytes (RFC 1035), more only when its EDNS says so.
const UDP_MIN: usize = 512;
/// The most berth sends over UDP whatever a client's EDNS says, and the largest UDP query
/// it reads (a longer one is cut, and answered FORMERR).
const UDP_MAX: usize = 4096;
/// A DNS message over TCP has a 16-bit length.
const TCP_MAX: usize = u16::MAX as usize;

/// Who may be resolved: the engine implements it over its containers and networks. Called
/// on the event loop for every query: quick, no I/O.
pub trait Names: Send + Sync + 'static {
    /// The addresses of `name` (lowercased, no trailing dot) as container `who` sees them
    /// (the names of containers on the networks it shares with them). `None`: not a name
    /// berth knows (forwarded upstream); `Some` of no address of the family asked: known,
    /// answered with none.
    fn lookup(&self, who: &str, name: &str) -> Option<Vec<IpAddr>>;
    /// The name of a container's address as `who` sees it, for PTR queries. `None`: not a
    /// container's (forwarded).
    fn name_of(&self, who: &str, ip: IpAddr) -> Option<String>;
}

/// The DNS server's two sockets in a container's namespace, bound and non-blocking.
pub struct Sockets {
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
}

impl Sockets {
    /// Binds [`ADDRESS`]:[`PORT`], UDP and TCP, inside the network namespace `ns` (its `lo`
    /// up). Blocking: a thread of its own enters the namespace, binds and ends.
    pub fn open_in(ns: BorrowedFd<'_>) -> io::Result<Sockets> {
        Sockets::bind_in(ns, PORT, |_| Ok(()))
    }

    /// Binds [`ADDRESS`] on two free ports inside `ns` and sends what the container asks at
    /// [`ADDRESS`]:[`PORT`] there, by a DNAT in a table of the namespace's own
    /// (`ip berth-dns`, written by `nft` run in the namespace; replaced whole when berthd
    /// opens them again after a restart). Port 53 stays free for a DNS server of the
    /// container's own on any address (as under Docker, which does the same with iptables).
    pub fn open_redirected(ns: BorrowedFd<'_>) -> io::Result<Sockets> {
        Sockets::bind_in(ns, 0, |sockets| {
            let udp = sockets.udp.local_addr()?.port();
            let tcp = sockets.tcp.local_addr()?.port();
            crate::nft::apply(&format!(
                "table ip berth-dns\n\
                     delete table ip berth-dns\n\
                     table ip berth-dns {{\n\
                     \tchain output {{\n\
                     \t\ttype nat hook output priority -100; policy accept;\n\
                     \t\tip daddr {ADDRESS} udp dport {PORT} dnat to {ADDRESS}:{udp}\n\
                     \t\tip daddr {ADDRESS} tcp dport {PORT} dnat to {ADDRESS}:{tcp}\n\
                     \t}}\n\
                     }}\n"
            ))
        })
    }

    /// Binds `port` (0: any free one) in `ns`, then runs `then` there.
    fn bind_in(
        ns: BorrowedFd<'_>,
        port: u16,
        then: impl FnOnce(&Sockets) -> io::Result<()> + Send,
    ) -> io::Result<Sockets> {
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("berth-dns-bind".into())
                .spawn_scoped(scope, move || {
                    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
                    let udp = std::net::UdpSocket::bind((ADDRESS, port))?;
                    udp.set_nonblocking(true)?;
                    // TCP on the UDP socket's port when it is free (one port to read in
                    // `ss`), else any.
                    let tcp = std::net::TcpListener::bind((ADDRESS, udp.local_addr()?.port()))
                        .or_else(|e| {
                            if port == 0 {
                                std::net::TcpListener::bind((ADDRESS, 0))
                            } else {
                                Err(e)
                            }
                        })?;
                    tcp.set_nonblocking(true)?;
                    let sockets = Sockets { udp, tcp };
                    then(&sockets)?;
                    Ok(sockets)
                })?
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the DNS bind thread panicked")))
        })
    }
}

/// Serving one container: dropping it stops. Its tasks are aborted, and the sockets close
/// as the runtime drops them, soon after the drop returns rather than before.
pub struct ServeHandle {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for ServeHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The names known here and where the rest goes.
pub struct Resolver {
    names: Arc<dyn Names>,
    /// Each server, and whether it is asked from the container's namespace (`ns`) rather
    /// than berthd's.
    upstream: Vec<(SocketAddr, bool)>,
    /// The container's network namespace, for the servers asked from it.
    ns: Option<OwnedFd>,
    /// Turns the answers of names with several addresses, one place a query.
    turn: AtomicUsize,
}

/// The upstream resolvers of a resolv.conf text: its first three `nameserver` lines, port
/// 53. Loopback ones are kept: queries leave from the host's namespace. A link-local IPv6
/// address keeps its zone (`fe80::1%eth0`).
pub fn upstream_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "nameserver" {
                return None;
            }
            let word = words.next()?;
            if let Ok(ip) = word.parse::<IpAddr>() {
                return Some(SocketAddr::from((ip, 53)));
            }
            let (ip, zone) = word.split_once('%')?;
            let ip: Ipv6Addr = ip.parse().ok()?;
            let scope = zone
                .parse::<u32>()
                .ok()
                .or_else(|| nix::net::if_::if_nametoindex(zone).ok())?;
            Some(SocketAddr::V6(SocketAddrV6::new(ip, 53, 0, scope)))
        })
        .take(MAX_UPSTREAMS)
        .collect()
}

/// How a query came: what fits in an answer depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// What to do with a message a container sent.
#[derive(Debug)]
enum Reply {
    /// Send this back.
    Answer(Vec<u8>),
    /// Not a name berth knows: ask upstream ([`Resolver::forward`]).
    Forward(Forward),
    /// Nothing to answer: no header, or a response.
    Drop,
}

/// A query to forward: its bytes as received and what is needed to answer it.
#[derive(Debug)]
struct Forward {
    bytes: Vec<u8>,
    query: Message,
    transport: Transport,
}

impl Resolver {
    /// A resolver over `names`, forwarding the rest to `upstream` (tried in order) from
    /// berthd's namespace.
    pub fn new(names: Arc<dyn Names>, upstream: Vec<SocketAddr>) -> Arc<Resolver> {
        Arc::new(Resolver {
            names,
            upstream: upstream.into_iter().map(|s| (s, false)).collect(),
            ns: None,
            turn: AtomicUsize::new(0),
        })
    }

    /// A resolver for one container whose forwarded queries leave as the container's own
    /// would (Docker's rule): from its namespace `ns`, through its network and the host's
    /// firewall, except to a loopback server of the host's (`host_loopback`: systemd-
    /// resolved's 127.0.0.53), which only berthd's namespace can reach.
    pub fn for_container(
        names: Arc<dyn Names>,
        host_loopback: Vec<SocketAddr>,
        from_container: Vec<SocketAddr>,
        ns: OwnedFd,
    ) -> Arc<Resolver> {
        let mut upstream: Vec<(SocketAddr, bool)> =
            from_container.into_iter().map(|s| (s, true)).collect();
        upstream.extend(host_loopback.into_iter().map(|s| (s, false)));
        upstream.truncate(MAX_UPSTREAMS);
        Arc::new(Resolver {
            names,
            upstream,
            ns: Some(ns),
            turn: AtomicUsize::new(0),
        })
    }

    /// Serves `sockets` for container `who` on the current tokio runtime until the handle
    /// is dropped. Fails outside a runtime.
    pub fn serve(self: &Arc<Self>, who: String, sockets: Sockets) -> io::Result<ServeHandle> {
        tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let udp = Arc::new(UdpSocket::from_std(sockets.udp)?);
        let tcp = TcpListener::from_std(sockets.tcp)?;
        let who: Arc<str> = who.into();
        let forwards = Arc::new(Semaphore::new(MAX_FORWARDS));
        let tasks = vec![
            tokio::spawn(self.clone().serve_udp(who.clone(), udp, forwards.clone())),
            tokio::spawn(self.clone().serve_tcp(who, tcp, forwards)),
        ];
        Ok(ServeHandle { tasks })
    }

    async fn serve_udp(
        self: Arc<Self>,
        who: Arc<str>,
        socket: Arc<UdpSocket>,
        forwards: Arc<Semaphore>,
    ) {
        let mut buf = vec![0u8; UDP_MAX];
        let mut in_flight = JoinSet::new();
        loop {
            let (n, peer) = tokio::select! {
                received = socket.recv_from(&mut buf) => match received {
                    Ok(received) => received,
                    Err(e) => {
                        tracing::debug!(container = &*who, "dns: receiving: {e}");
                        continue;
                    }
                },
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => continue,
            };
            let answer = match self.handle(&who, &buf[..n], Transport::Udp) {
                Reply::Answer(answer) => answer,
                Reply::Drop => continue,
                Reply::Forward(forward) => match forwards.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let (resolver, socket) = (self.clone(), socket.clone());
                        in_flight.spawn(async move {
                            let answer = resolver.forward(forward).await;
                            let _ = socket.send_to(&answer, peer).await;
                            drop(permit);
                        });
                        continue;
                    }
                    Err(_) => too_many(&who, &forward),
                },
            };
            let _ = socket.send_to(&answer, peer).await;
        }
    }

    async fn serve_tcp(
        self: Arc<Self>,
        who: Arc<str>,
        listener: TcpListener,
        forwards: Arc<Semaphore>,
    ) {
        let mut connections = JoinSet::new();
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of descriptors, most likely: let some go before the next try.
                        tracing::warn!(container = &*who, "dns: accepting: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            // Connections that ended are not counted, whichever branch won.
            while connections.try_join_next().is_some() {}
            if connections.len() >= MAX_CONNECTIONS {
                tracing::debug!(
                    container = &*who,
                    "dns: more than {MAX_CONNECTIONS} TCP connections: one closed"
                );
                continue;
            }
            connections.spawn(
                self.clone()
                    .serve_connection(who.clone(), stream, forwards.clone()),
            );
        }
    }

    /// One TCP connection: queries answered in turn (RFC 7766 lets a server answer
    /// pipelined queries in order), until the client closes, stays idle or sends what is
    /// not a query.
    async fn serve_connection(
        self: Arc<Self>,
        who: Arc<str>,
        mut stream: TcpStream,
        forwards: Arc<Semaphore>,
    ) {
        let mut buf = Vec::new();
        loop {
            let read = async {
                let len = stream.read_u16().await? as usize;
                buf.resize(len, 0);
                stream.read_exact(&mut buf).await
            };
            match tokio::time::timeout(TCP_IDLE, read).await {
                Ok(Ok(_)) => {}
                _ => return,
            }
            let answer = match self.handle(&who, &buf, Transport::Tcp) {
                Reply::Answer(answer) => answer,
                Reply::Drop => return,
                Reply::Forward(forward) => match forwards.clone().try_acquire_owned() {
                    Ok(_permit) => self.forward(forward).await,
                    Err(_) => too_many(&who, &forward),
                },
            };
            let mut framed = Vec::with_capacity(answer.len() + 2);
            framed.extend_from_slice(&(answer.len() as u16).to_be_bytes());
            framed.extend_from_slice(&answer);
            match tokio::time::timeout(TCP_IDLE, stream.write_all(&framed)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    }

    /// Decides on a message from container `who`, without I/O: a local answer, an error,
    /// a query to forward, or nothing.
    fn handle(&self, who: &str, bytes: &[u8], transport: Transport) -> Reply {
        let Ok(header) = Header::read(&mut BinDecoder::new(bytes)) else {
            return Reply::Drop;
        };
        if header.metadata.message_type == MessageType::Response {
            return Reply::Drop;
        }
        if header.metadata.op_code != OpCode::Query {
            return Reply::Answer(header_only(&header.metadata, ResponseCode::NotImp));
        }
        let query = match Message::from_vec(bytes) {
            Ok(query) if query.queries.len() == 1 => query,
            _ => return Reply::Answer(header_only(&header.metadata, ResponseCode::FormErr)),
        };
        let limit = limit(&query, transport);
        // RFC 6891 §6.1.3: EDNS versions above 0 are not known here.
        if query.edns.as_ref().is_some_and(|edns| edns.version() > 0) {
            return Reply::Answer(encode(
                &response(&query, ResponseCode::BADVERS, Vec::new()),
                limit,
            ));
        }
        match self.local(who, &query) {
            Some(answers) => Reply::Answer(encode(
                &response(&query, ResponseCode::NoError, answers),
                limit,
            )),
            None => Reply::Forward(Forward {
                bytes: bytes.to_vec(),
                query,
                transport,
            }),
        }
    }

    /// The answer records for the query's question when berth knows the name, `None` when
    /// it is to be forwarded.
    fn local(&self, who: &str, query: &Message) -> Option<Vec<Record>> {
        let question = &query.queries[0];
        if question.query_class() != DNSClass::IN {
            return None;
        }
        let owner = question.name();
        let qtype = question.query_type();
        if qtype == RecordType::PTR {
            if let Some(ip) = arpa_address(owner) {
                let host = self.names.name_of(who, ip)?;
                let target = Name::from_ascii(format!("{}.", host.trim_end_matches('.'))).ok()?;
                return Some(vec![Record::from_rdata(
                    owner.clone(),
                    TTL,
                    RData::PTR(PTR(target)),
                )]);
            }
        }
        let name = owner.to_lowercase().to_ascii();
        let name = name.trim_end_matches('.');
        if name.is_empty() {
            return None;
        }
        let addresses = self.names.lookup(who, name)?;
        let mut answers: Vec<Record> = addresses
            .into_iter()
            .filter_map(|ip| {
                let data = match ip {
                    IpAddr::V4(ip) if matches!(qtype, RecordType::A | RecordType::ANY) => {
                        RData::A(A(ip))
                    }
                    IpAddr::V6(ip) if matches!(qtype, RecordType::AAAA | RecordType::ANY) => {
                        RData::AAAA(AAAA(ip))
                    }
                    _ => return None,
                };
                // The owner as asked: a client that mixes the case of its query (0x20)
                // checks it in the answer.
                Some(Record::from_rdata(owner.clone(), TTL, data))
            })
            .collect();
        if answers.len() > 1 {
            let first = self.turn.fetch_add(1, Ordering::Relaxed) % answers.len();
            answers.rotate_left(first);
        }
        Some(answers)
    }

    /// Asks upstream and returns the answer for the client: its id, cut to what the client
    /// takes; SERVFAIL when no upstream answered.
    async fn forward(&self, forward: Forward) -> Vec<u8> {
        let limit = limit(&forward.query, forward.transport);
        match self.ask_upstream(&forward.bytes, forward.transport).await {
            Some(mut answer) => {
                answer[..2].copy_from_slice(&forward.query.id.to_be_bytes());
                if answer.len() > limit {
                    shrink(answer, limit)
                } else {
                    answer
                }
            }
            None => encode(
                &response(&forward.query, ResponseCode::ServFail, Vec::new()),
                limit,
            ),
        }
    }

    /// Each upstream in turn until one answers other than SERVFAIL or REFUSED (Docker's
    /// rule: both may be one server's passing state).
    async fn ask_upstream(&self, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
        for &(server, inside) in &self.upstream {
            let ns = if inside { self.ns.as_ref() } else { None };
            // A fresh id per upstream query: one a client chose says nothing of it.
            let id: u16 = rand::random();
            let mut query = query.to_vec();
            query[..2].copy_from_slice(&id.to_be_bytes());
            let mut answer =
                match tokio::time::timeout(UPSTREAM_TIMEOUT, exchange_udp(ns, server, &query, id))
                    .await
                {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(e)) => {
                        tracing::debug!("dns: upstream {server}: {e}");
                        continue;
                    }
                    Err(_) => {
                        tracing::debug!(
                            "dns: upstream {server}: no answer in {UPSTREAM_TIMEOUT:?}"
                        );
                        continue;
                    }
                };
            // A truncated answer goes to a UDP client as it is (it retries over TCP); a TCP
            // client gets the whole one.
            if transport == Transport::Tcp && answer[2] & 0x02 != 0 {
                answer = match tokio::time::timeout(
                    UPSTREAM_TIMEOUT,
                    exchange_tcp(ns, server, &query, id),
                )
                .await
                {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(e)) => {
                        tracing::debug!("dns: upstream {server} over TCP: {e}");
                        continue;
                    }
                    Err(_) => {
                        tracing::debug!(
                            "dns: upstream {server} over TCP: no answer in {UPSTREAM_TIMEOUT:?}"
                        );
                        continue;
                    }
                };
            }
            match answer[3] & 0x0f {
                2 | 5 => tracing::debug!("dns: upstream {server}: SERVFAIL or REFUSED"),
                _ => return Some(answer),
            }
        }
        None
    }
}

/// Runs `make` in the namespace `ns` (a thread of its own enters it, and ends: berthd's
/// threads never change namespace), or here when `None`. A socket made there stays there.
fn made_in<T: Send>(
    ns: Option<&OwnedFd>,
    make: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    let Some(ns) = ns else {
        return make();
    };
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("berth-dns-dial".into())
            .spawn_scoped(scope, move || {
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
                make()
            })?
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the DNS dial thread panicked")))
    })
}

/// One UDP exchange from a socket of its own (a random source port), in `ns` when given,
/// keeping only an answer from `server` with `id`.
async fn exchange_udp(
    ns: Option<&OwnedFd>,
    server: SocketAddr,
    query: &[u8],
    id: u16,
) -> io::Result<Vec<u8>> {
    let any: IpAddr = match server {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = made_in(ns, || {
        let s = std::net::UdpSocket::bind((any, 0))?;
        s.set_nonblocking(true)?;
        Ok(s)
    })?;
    let socket = UdpSocket::from_std(socket)?;
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; TCP_MAX];
    loop {
        let n = socket.recv(&mut buf).await?;
        if is_answer_to(&buf[..n], id) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

/// One TCP exchange on a connection of its own (from `ns` when given).
async fn exchange_tcp(
    ns: Option<&OwnedFd>,
    server: SocketAddr,
    query: &[u8],
    id: u16,
) -> io::Result<Vec<u8>> {
    let mut stream = match ns {
        None => TcpStream::connect(server).await?,
        Some(_) => {
            use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
            let family = match server {
                SocketAddr::V4(_) => AddressFamily::Inet,
                SocketAddr::V6(_) => AddressFamily::Inet6,
            };
            let fd = made_in(ns, || {
                socket(
                    family,
                    SockType::Stream,
                    SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                    None,
                )
                .map_err(io::Error::from)
            })?;
            tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(fd))
                .connect(server)
                .await?
        }
    };
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await? as usize;
    let mut answer = vec![0u8; len];
    stream.read_exact(&mut answer).await?;
    if !is_answer_to(&answer, id) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "an answer to another query",
        ));
    }
    Ok(answer)
}

/// A response header with `id`.
fn is_answer_to(message: &[u8], id: u16) -> bool {
    message.len() >= 12 && message[..2] == id.to_be_bytes() && message[2] & 0x80 != 0
}

/// SERVFAIL for a query over the container's limit of forwards.
fn too_many(who: &str, forward: &Forward) -> Vec<u8> {
    tracing::debug!(
        container = who,
        "dns: more than {MAX_FORWARDS} queries forwarded at once: SERVFAIL"
    );
    encode(
        &response(&forward.query, ResponseCode::ServFail, Vec::new()),
        limit(&forward.query, forward.transport),
    )
}

/// The most bytes an answer to `query` may have over `transport`.
fn limit(query: &Message, transport: Transport) -> usize {
    match transport {
        Transport::Tcp => TCP_MAX,
        // max_payload: 512 without EDNS, never less.
        Transport::Udp => usize::from(query.max_payload()).clamp(UDP_MIN, UDP_MAX),
    }
}

/// The response to `query` with `answers`: its id, question, RD and CD; RA as Docker sets
/// it (the server recurses for its clients); an EDNS record when the query had one.
fn response(query: &Message, code: ResponseCode, answers: Vec<Record>) -> Message {
    let mut response = Message::new(query.id, MessageType::Response, query.op_code);
    response.metadata = Metadata::response_from_request(&query.metadata);
    response.metadata.recursion_available = true;
    response.metadata.response_code = code;
    response.add_queries(query.queries.iter().cloned());
    response.add_answers(answers);
    if query.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(UDP_MAX as u16);
        response.set_edns(edns);
    }
    response
}

/// A response of a header only, for a query whose header is all that could be read.
fn header_only(request: &Metadata, code: ResponseCode) -> Vec<u8> {
    let mut response = Message::new(request.id, MessageType::Response, request.op_code);
    response.metadata = Metadata::response_from_request(request);
    response.metadata.recursion_available = true;
    response.metadata.response_code = code;
    response.to_vec().unwrap_or_default()
}

/// `message` in at most `limit` bytes: the records that fit, TC set when some did not; a
/// header with TC when not even the question fits.
fn encode(message: &Message, limit: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(limit.min(UDP_MIN));
    let mut encoder = BinEncoder::new(&mut buf);
    encoder.set_max_size(u16::try_from(limit).unwrap_or(u16::MAX));
    // The encoder rolls back a record that does not fit but leaves its bytes past the
    // offset: the offset is the end.
    match message.emit(&mut encoder).map(|()| encoder.offset()) {
        Ok(end) => {
            buf.truncate(end);
            buf
        }
        Err(_) => {
            let mut header = message.metadata;
            header.truncation = true;
            let mut response = Message::new(header.id, header.message_type, header.op_code);
            response.metadata = header;
            response.to_vec().unwrap_or_default()
        }
    }
}

/// An upstream answer cut to `limit` bytes for a UDP client: the records that fit and TC,
/// or its header alone with TC when it cannot be read.
fn shrink(answer: Vec<u8>, limit: usize) -> Vec<u8> {
    match Message::from_vec(&answer) {
        Ok(message) => encode(&message, limit),
        Err(_) => {
            let mut header = answer[..12].to_vec();
            header[2] |= 0x02;
            header[4..].fill(0);
            header
        }
    }
}

/// The address of a whole `in-addr.arpa` or `ip6.arpa` name; `None` for a partial one
/// (a network's) or any other.
fn arpa_address(name: &Name) -> Option<IpAddr> {
    let mut name = name.clone();
    name.set_fqdn(true);
    let net = name.parse_arpa_name().ok()?;
    (net.prefix_len() == net.max_prefix_len()).then(|| net.addr())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use hickory_proto::op::Query;

    use super::*;

    /// Container "a" sees web (two addresses: an alias of two containers), db (IPv4 and
    /// IPv6) and v4only; "b" sees none of them.
    struct FakeNames(HashMap<&'static str, Vec<IpAddr>>);

    impl Names for FakeNames {
        fn lookup(&self, who: &str, name: &str) -> Option<Vec<IpAddr>> {
            (who == "a").then(|| self.0.get(name).cloned())?
        }
        fn name_of(&self, who: &str, ip: IpAddr) -> Option<String> {
            if who != "a" {
                return None;
            }
            self.0
                .iter()
                .find(|(_, ips)| ips.contains(&ip))
                .map(|(name, _)| name.to_string())
        }
    }

    fn resolver() -> Arc<Resolver> {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let names = FakeNames(HashMap::from([
            (
                "web",
                vec![ip("192.0.2.10"), ip("192.0.2.11"), ip("192.0.2.12")],
            ),
            ("db", vec![ip("192.0.2.20"), ip("2001:db8::20")]),
            ("v4only", vec![ip("192.0.2.30")]),
        ]));
        Resolver::new(Arc::new(names), Vec::new())
    }

    fn query(name: &str, qtype: RecordType) -> Message {
        let mut message = Message::new(0x1234, MessageType::Query, OpCode::Query);
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        message
    }

    fn answer_of(reply: Reply) -> Message {
        match reply {
            Reply::Answer(bytes) => Message::from_vec(&bytes).unwrap(),
            other => panic!("not an answer: {other:?}"),
        }
    }

    fn ask(resolver: &Resolver, who: &str, message: &Message, transport: Transport) -> Reply {
        resolver.handle(who, &message.to_vec().unwrap(), transport)
    }

    fn addresses(answer: &Message) -> Vec<IpAddr> {
        answer
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(a) => IpAddr::V6(a.0),
                other => panic!("not an address: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_known_name_gets_its_addresses_with_docker_ttl_and_the_query_echoed() {
        let answer = answer_of(ask(
            &resolver(),
            "a",
            &query("v4only.", RecordType::A),
            Transport::Udp,
        ));
        assert_eq!(answer.id, 0x1234);
        assert_eq!(answer.message_type, MessageType::Response);
        assert_eq!(answer.response_code, ResponseCode::NoError);
        assert!(answer.recursion_desired && answer.recursion_available);
        assert!(!answer.truncation);
        assert_eq!(answer.queries, query("v4only.", RecordType::A).queries);
        assert_eq!(
            addresses(&answer),
            ["192.0.2.30".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(answer.answers[0].ttl, 600);
        assert_eq!(answer.answers[0].name, Name::from_ascii("v4only.").unwrap());
    }

    #[test]
    fn names_match_whatever_their_case_and_the_answer_keeps_the_case_asked() {
        let answer = answer_of(ask(
            &resolver(),
            "a",
            &query("V4Only.", RecordType::A),
            Transport::Udp,
        ));
        assert_eq!(answer.answers.len(), 1);
        assert_eq!(answer.answers[0].name.to_ascii(), "V4Only.");
    }

    #[test]
    fn several_addresses_turn_round_from_query_to_query() {
        let resolver = resolver();
        let firsts: Vec<IpAddr> = (0..3)
            .map(|_| {
                let answer = answer_of(ask(
                    &resolver,
                    "a",
                    &query("web.", RecordType::A),
                    Transport::Udp,
                ));
                let mut all = addresses(&answer);
                let first = all[0];
                all.sort();
                assert_eq!(all.len(), 3, "every address each time");
                first
            })
            .collect();
        let mut distinct = firsts.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "each address first in turn: {firsts:?}");
    }

    #[test]
    fn each_family_answers_its_own_and_a_name_without_it_gets_noerror_and_no_record() {
        let resolver = resolver();
        let v6 = answer_of(ask(
            &resolver,
            "a",
            &query("db.", RecordType::AAAA),
            Transport::Udp,
        ));
        assert_eq!(addresses(&v6), ["2001:db8::20".parse::<IpAddr>().unwrap()]);
        let none = answer_of(ask(
            &resolver,
            "a",
            &query("v4only.", RecordType::AAAA),
            Transport::Udp,
        ));
        assert_eq!(none.response_code, ResponseCode::NoError);
        assert!(none.answers.is_empty());
        let mx = answer_of(ask(
            &resolver,
            "a",
            &query("db.", RecordType::MX),
            Transport::Udp,
        ));
        assert_eq!(mx.response_code, ResponseCode::NoError);
        assert!(mx.answers.is_empty());
    }

    #[test]
    fn a_name_the_container_does_not_see_is_forwarded_as_received() {
        let message = query("web.", RecordType::A);
        match ask(&resolver(), "b", &message, Transport::Tcp) {
            Reply::Forward(f) => {
                assert_eq!(f.bytes, message.to_vec().unwrap());
                assert_eq!(f.transport, Transport::Tcp);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ask(
                &resolver(),
                "a",
                &query("example.org.", RecordType::A),
                Transport::Udp
            ),
            Reply::Forward(_)
        ));
        // Another class than IN, the root: not berth's either.
        let mut chaos = query("web.", RecordType::TXT);
        chaos.queries[0].set_query_class(DNSClass::CH);
        assert!(matches!(
            ask(&resolver(), "a", &chaos, Transport::Udp),
            Reply::Forward(_)
        ));
        assert!(matches!(
            ask(
                &resolver(),
                "a",
                &query(".", RecordType::NS),
                Transport::Udp
            ),
            Reply::Forward(_)
        ));
    }

    #[test]
    fn ptr_of_a_container_address_gives_its_name_and_others_are_forwarded() {
        let resolver = resolver();
        let answer = answer_of(ask(
            &resolver,
            "a",
            &query("30.2.0.192.in-addr.arpa.", RecordType::PTR),
            Transport::Udp,
        ));
        assert_eq!(answer.answers.len(), 1);
        assert_eq!(
            answer.answers[0].data,
            RData::PTR(PTR(Name::from_ascii("v4only.").unwrap()))
        );
        let nibbles = format!(
            "{:032x}",
            u128::from("2001:db8::20".parse::<Ipv6Addr>().unwrap())
        );
        let v6: Vec<String> = nibbles.chars().rev().map(String::from).collect();
        let v6 = format!("{}.ip6.arpa.", v6.join("."));
        let answer = answer_of(ask(
            &resolver,
            "a",
            &query(&v6, RecordType::PTR),
            Transport::Udp,
        ));
        assert_eq!(
            answer.answers[0].data,
            RData::PTR(PTR(Name::from_ascii("db.").unwrap()))
        );
        for other in ["99.2.0.192.in-addr.arpa.", "2.0.192.in-addr.arpa."] {
            assert!(
                matches!(
                    ask(
                        &resolver,
                        "a",
                        &query(other, RecordType::PTR),
                        Transport::Udp
                    ),
                    Reply::Forward(_)
                ),
                "{other}"
            );
        }
    }

    #[test]
    fn garbage_gets_formerr_when_it_has_a_header_and_nothing_otherwise() {
        let resolver = resolver();
        let mut bytes = query("web.", RecordType::A).to_vec().unwrap();
        bytes.truncate(bytes.len() - 3);
        let answer = answer_of(resolver.handle("a", &bytes, Transport::Udp));
        assert_eq!(answer.response_code, ResponseCode::FormErr);
        assert_eq!(answer.id, 0x1234);
        let two = {
            let mut m = query("web.", RecordType::A);
            m.add_query(Query::query(
                Name::from_ascii("db.").unwrap(),
                RecordType::A,
            ));
            m
        };
        assert_eq!(
            answer_of(ask(&resolver, "a", &two, Transport::Udp)).response_code,
            ResponseCode::FormErr
        );
        assert!(matches!(
            resolver.handle("a", &bytes[..11], Transport::Udp),
            Reply::Drop
        ));
    }

    #[test]
    fn responses_are_dropped_and_other_opcodes_not_implemented() {
        let resolver = resolver();
        let mut response = query("web.", RecordType::A);
        response.metadata.message_type = MessageType::Response;
        assert!(matches!(
            ask(&resolver, "a", &response, Transport::Udp),
            Reply::Drop
        ));
        let mut status = query("web.", RecordType::A);
        status.metadata.op_code = OpCode::Status;
        let answer = answer_of(ask(&resolver, "a", &status, Transport::Udp));
        assert_eq!(answer.response_code, ResponseCode::NotImp);
        assert_eq!(answer.op_code, OpCode::Status);
    }

    #[test]
    fn edns_is_answered_with_edns_and_a_later_version_gets_badvers() {
        let resolver = resolver();
        let mut message = query("web.", RecordType::A);
        message.set_edns(Edns::new());
        let answer = answer_of(ask(&resolver, "a", &message, Transport::Udp));
        assert_eq!(answer.edns.as_ref().map(|e| e.version()), Some(0));
        let mut later = Edns::new();
        later.set_version(1);
        message.set_edns(later);
        // BADVERS is 16, which hickory reads as BADSIG (the same number, for TSIG).
        let code = answer_of(ask(&resolver, "a", &message, Transport::Udp)).response_code;
        assert_eq!(u16::from(code), u16::from(ResponseCode::BADVERS));
    }

    /// A name of 100 addresses: 1,6 KB of answers.
    fn crowded() -> Arc<Resolver> {
        struct Crowd;
        impl Names for Crowd {
            fn lookup(&self, _: &str, _: &str) -> Option<Vec<IpAddr>> {
                Some(
                    (0..100)
                        .map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)))
                        .collect(),
                )
            }
            fn name_of(&self, _: &str, _: IpAddr) -> Option<String> {
                None
            }
        }
        Resolver::new(Arc::new(Crowd), Vec::new())
    }

    #[test]
    fn an_answer_too_long_for_udp_is_cut_to_fit_with_tc_and_whole_over_tcp() {
        let resolver = crowded();
        let message = query("many.", RecordType::A);
        let Reply::Answer(bytes) = ask(&resolver, "a", &message, Transport::Udp) else {
            panic!()
        };
        assert!(bytes.len() <= 512, "{}", bytes.len());
        let cut = Message::from_vec(&bytes).unwrap();
        assert!(cut.truncation);
        assert!(!cut.answers.is_empty() && cut.answers.len() < 100);

        let mut edns = message.clone();
        let mut big = Edns::new();
        big.set_max_payload(1232);
        edns.set_edns(big);
        let Reply::Answer(bytes) = ask(&resolver, "a", &edns, Transport::Udp) else {
            panic!()
        };
        let more = Message::from_vec(&bytes).unwrap();
        assert!(bytes.len() <= 1232 && more.answers.len() > cut.answers.len());

        let whole = answer_of(ask(&resolver, "a", &message, Transport::Tcp));
        assert!(!whole.truncation);
        assert_eq!(whole.answers.len(), 100);
    }

    #[test]
    fn an_upstream_answer_too_long_for_udp_is_cut_and_garbage_keeps_its_header() {
        let mut long = query("many.", RecordType::A);
        long.metadata.message_type = MessageType::Response;
        for i in 0..100 {
            long.add_answer(Record::from_rdata(
                Name::from_ascii("many.").unwrap(),
                60,
                RData::A(A(Ipv4Addr::new(192, 0, 2, i))),
            ));
        }
        let cut = Message::from_vec(&shrink(long.to_vec().unwrap(), 512)).unwrap();
        assert!(cut.truncation && cut.answers.len() < 100);
        let mut garbage = long.to_vec().unwrap();
        garbage.truncate(600);
        let header = shrink(garbage, 512);
        assert_eq!(header.len(), 12);
        let header = Message::from_vec(&header).unwrap();
        assert!(header.truncation && header.id == 0x1234 && header.queries.is_empty());
    }

    #[tokio::test]
    async fn without_upstream_a_forwarded_query_gets_servfail() {
        let message = query("example.org.", RecordType::A);
        let Reply::Forward(forward) = ask(&resolver(), "a", &message, Transport::Udp) else {
            panic!()
        };
        let answer = Message::from_vec(&resolver().forward(forward).await).unwrap();
        assert_eq!(answer.response_code, ResponseCode::ServFail);
        assert_eq!(answer.id, 0x1234);
        assert_eq!(answer.queries, message.queries);
    }

    #[test]
    fn upstreams_come_from_nameserver_lines_on_port_53() {
        let text = "# by hand\nsearch example.org\nnameserver 127.0.0.53\n; nameserver 192.0.2.9\n\
                    nameserver  2001:db8::1 \nnameserver fe80::1%1\nnameserver 192.0.2.4\n\
                    options ndots:2\n";
        let got = upstream_from_resolv_conf(text);
        let want: Vec<SocketAddr> = vec![
            "127.0.0.53:53".parse().unwrap(),
            "[2001:db8::1]:53".parse().unwrap(),
            SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 0, 1)),
        ];
        assert_eq!(got, want, "the first three");
        assert!(upstream_from_resolv_conf("nameserver nonsense\n").is_empty());
    }
}

//! The embedded DNS server for real, as root: namespaces made the way containers get theirs,
//! clients on threads inside them asking 127.0.0.11:53, a fake upstream on the host's
//! loopback. No address outside this machine is reached (the records' addresses are
//! TEST-NET-1's, never contacted).

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_network::dns::{self, Names, Resolver, Sockets};
use berth_network::netns::Sandbox;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// Names by (container, name).
struct Table(HashMap<(&'static str, &'static str), Vec<IpAddr>>);

impl Names for Table {
    fn lookup(&self, who: &str, name: &str) -> Option<Vec<IpAddr>> {
        self.0
            .iter()
            .find(|((w, n), _)| *w == who && *n == name)
            .map(|(_, ips)| ips.clone())
    }
    fn name_of(&self, who: &str, ip: IpAddr) -> Option<String> {
        self.0
            .iter()
            .find(|((w, _), ips)| *w == who && ips.contains(&ip))
            .map(|((_, name), _)| name.to_string())
    }
}

const WEB: &str = "192.0.2.10";
const FAST: &str = "192.0.2.77";

/// Every container but "stranger" sees `web`.
fn names() -> Arc<Table> {
    let web = vec![WEB.parse().unwrap()];
    Arc::new(Table(HashMap::from([
        (("c1", "web"), web.clone()),
        (("flooder", "web"), web.clone()),
        (("calm", "web"), web),
    ])))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `f` on a thread of its own inside the network namespace `ns`.
fn inside<T: Send>(ns: BorrowedFd<'_>, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
    })
}

fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    message.to_vec().unwrap()
}

const SERVER: (std::net::Ipv4Addr, u16) = (dns::ADDRESS, dns::PORT);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// One query over UDP from the calling thread's namespace.
fn ask_udp(bytes: &[u8]) -> Message {
    let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.connect(SERVER).unwrap();
    socket.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    socket.send(bytes).unwrap();
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("an answer over UDP");
    let answer = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(answer.id, u16::from_be_bytes([bytes[0], bytes[1]]));
    answer
}

fn send_tcp(stream: &mut TcpStream, bytes: &[u8]) {
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .unwrap();
    stream.write_all(bytes).unwrap();
}

fn read_tcp(stream: &mut TcpStream) -> Message {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).expect("an answer over TCP");
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).unwrap();
    Message::from_vec(&buf).unwrap()
}

fn connect() -> TcpStream {
    let stream = TcpStream::connect(SERVER).unwrap();
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    stream
}

/// One query over a TCP connection of its own.
fn ask_tcp(bytes: &[u8]) -> Message {
    let mut stream = connect();
    send_tcp(&mut stream, bytes);
    read_tcp(&mut stream)
}

fn addresses(answer: &Message) -> Vec<IpAddr> {
    answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Answer,
    Refuse,
}

/// A fake upstream on 127.0.0.1, UDP and TCP on one port. `fast.test`: A 192.0.2.77;
/// `slow.test`: never answered; `big.test`: truncated over UDP, 100 records over TCP;
/// anything else NXDOMAIN. Refusing, it answers REFUSED to all.
struct Upstream {
    at: SocketAddr,
    /// The (name, id) of every query, as it came.
    seen: Arc<Mutex<Vec<(String, u16)>>>,
}

impl Upstream {
    fn start(rt: &tokio::runtime::Runtime, mode: Mode) -> Upstream {
        let (udp, tcp) = rt.block_on(async {
            loop {
                let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let port = udp.local_addr().unwrap().port();
                if let Ok(tcp) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                    break (udp, tcp);
                }
            }
        });
        let at = udp.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        rt.spawn(async move {
            let mut buf = vec![0u8; 65535];
            loop {
                let (n, peer) = udp.recv_from(&mut buf).await.unwrap();
                if let Some(answer) = Upstream::answer(&buf[..n], mode, false, &log) {
                    udp.send_to(&answer, peer).await.unwrap();
                }
            }
        });
        let log = seen.clone();
        rt.spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let (mut stream, _) = tcp.accept().await.unwrap();
                let log = log.clone();
                tokio::spawn(async move {
                    let len = stream.read_u16().await.unwrap();
                    let mut buf = vec![0u8; len as usize];
                    stream.read_exact(&mut buf).await.unwrap();
                    if let Some(answer) = Upstream::answer(&buf, mode, true, &log) {
                        stream.write_u16(answer.len() as u16).await.unwrap();
                        stream.write_all(&answer).await.unwrap();
                    }
                });
            }
        });
        Upstream { at, seen }
    }

    fn answer(
        bytes: &[u8],
        mode: Mode,
        over_tcp: bool,
        seen: &Mutex<Vec<(String, u16)>>,
    ) -> Option<Vec<u8>> {
        let query = Message::from_vec(bytes).unwrap();
        let name = query.queries[0].name().to_ascii();
        seen.lock().unwrap().push((name.clone(), query.id));
        let mut answer = Message::new(query.id, MessageType::Response, OpCode::Query);
        answer.metadata.recursion_desired = query.recursion_desired;
        answer.metadata.recursion_available = true;
        answer.add_queries(query.queries.iter().cloned());
        let owner = query.queries[0].name().clone();
        let a = |ip: &str| Record::from_rdata(owner.clone(), 60, RData::A(A(ip.parse().unwrap())));
        match (mode, name.as_str()) {
            (Mode::Refuse, _) => answer.metadata.response_code = ResponseCode::Refused,
            (_, "slow.test.") => return None,
            (_, "fast.test.") => {
                answer.add_answer(a(FAST));
            }
            (_, "big.test.") if !over_tcp => answer.metadata.truncation = true,
            (_, "big.test.") => {
                for i in 0..100 {
                    answer.add_answer(a(&format!("192.0.2.{i}")));
                }
            }
            _ => answer.metadata.response_code = ResponseCode::NXDomain,
        }
        Some(answer.to_vec().unwrap())
    }

    fn seen(&self, name: &str) -> Vec<u16> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, id)| *id)
            .collect()
    }
}

#[test]
fn known_names_are_answered_in_the_container_namespace_over_udp_and_tcp() {
    let rt = runtime();
    let sandbox = Sandbox::new().unwrap();
    let sockets = Sockets::open_in(sandbox.fd()).expect("binding 127.0.0.11:53 inside");
    // Bound in that namespace: a second server cannot have the port there.
    let again = Sockets::open_in(sandbox.fd())
        .err()
        .expect("the port is taken");
    assert_eq!(again.kind(), ErrorKind::AddrInUse);
    let resolver = Resolver::new(names(), Vec::new());
    let _serving = {
        let _rt = rt.enter();
        resolver.serve("c1".into(), sockets).unwrap()
    };

    inside(sandbox.fd(), || {
        let answer = ask_udp(&query(1, "web.", RecordType::A));
        assert_eq!(answer.response_code, ResponseCode::NoError);
        assert_eq!(addresses(&answer), [ip(WEB)]);
        assert_eq!(answer.answers[0].ttl, 600);
        assert_eq!(
            addresses(&ask_tcp(&query(2, "WEB.", RecordType::A))),
            [ip(WEB)]
        );

        let none = ask_udp(&query(3, "web.", RecordType::AAAA));
        assert_eq!(none.response_code, ResponseCode::NoError);
        assert!(none.answers.is_empty());

        let ptr = ask_udp(&query(4, "10.2.0.192.in-addr.arpa.", RecordType::PTR));
        assert_eq!(
            ptr.answers[0].data,
            RData::PTR(PTR(Name::from_ascii("web.").unwrap()))
        );

        // Two queries sent at once on one connection: both answered, in order.
        let mut stream = connect();
        let mut both = Vec::new();
        for id in [5, 6] {
            let q = query(id, "web.", RecordType::A);
            both.extend_from_slice(&(q.len() as u16).to_be_bytes());
            both.extend_from_slice(&q);
        }
        stream.write_all(&both).unwrap();
        assert_eq!(read_tcp(&mut stream).id, 5);
        assert_eq!(read_tcp(&mut stream).id, 6);
    });
}

#[test]
fn other_names_go_upstream_with_ids_of_their_own_and_come_back() {
    let rt = runtime();
    let upstream = Upstream::start(&rt, Mode::Answer);
    let resolver = Resolver::new(names(), vec![upstream.at]);
    let (a, b) = (Sandbox::new().unwrap(), Sandbox::new().unwrap());
    let _serving = {
        let _rt = rt.enter();
        (
            resolver
                .serve("c1".into(), Sockets::open_in(a.fd()).unwrap())
                .unwrap(),
            resolver
                .serve("stranger".into(), Sockets::open_in(b.fd()).unwrap())
                .unwrap(),
        )
    };

    inside(a.fd(), || {
        for _ in 0..3 {
            let answer = ask_udp(&query(0x1234, "fast.test.", RecordType::A));
            assert_eq!(answer.response_code, ResponseCode::NoError);
            assert_eq!(addresses(&answer), [ip(FAST)]);
        }
        assert_eq!(
            addresses(&ask_tcp(&query(7, "fast.test.", RecordType::A))),
            [ip(FAST)]
        );
        let unknown = ask_udp(&query(8, "nowhere.test.", RecordType::A));
        assert_eq!(unknown.response_code, ResponseCode::NXDomain);

        // Truncated upstream: a UDP client gets the TC answer (and retries over TCP), a
        // TCP client the whole answer, which berth fetched over TCP.
        let cut = ask_udp(&query(9, "big.test.", RecordType::A));
        assert!(cut.truncation);
        let whole = ask_tcp(&query(10, "big.test.", RecordType::A));
        assert!(!whole.truncation);
        assert_eq!(whole.answers.len(), 100);
    });
    let ids = upstream.seen("fast.test.");
    assert_eq!(ids.len(), 4);
    assert!(
        ids[..3].iter().any(|id| *id != 0x1234),
        "ids chosen by berth: {ids:?}"
    );
    assert_eq!(upstream.seen("big.test.").len(), 3, "UDP twice, TCP once");

    // `web` is not a name of the stranger's networks: it goes upstream.
    inside(b.fd(), || {
        let answer = ask_udp(&query(11, "web.", RecordType::A));
        assert_eq!(answer.response_code, ResponseCode::NXDomain);
    });
    assert_eq!(upstream.seen("web.").len(), 1);
}

#[test]
fn upstreams_that_fail_are_passed_over_and_none_left_is_servfail_within_the_timeout() {
    let rt = runtime();
    let refusing = Upstream::start(&rt, Mode::Refuse);
    let good = Upstream::start(&rt, Mode::Answer);
    // A port nobody listens on (refused at once), and one that never answers.
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let hole = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sandbox = Sandbox::new().unwrap();
    let failing = Sandbox::new().unwrap();
    let _serving = {
        let _rt = rt.enter();
        let passes = Resolver::new(names(), vec![closed, refusing.at, good.at]);
        let fails = Resolver::new(names(), vec![closed, hole.local_addr().unwrap()]);
        (
            passes
                .serve("c1".into(), Sockets::open_in(sandbox.fd()).unwrap())
                .unwrap(),
            fails
                .serve("c1".into(), Sockets::open_in(failing.fd()).unwrap())
                .unwrap(),
        )
    };

    inside(sandbox.fd(), || {
        let answer = ask_udp(&query(1, "fast.test.", RecordType::A));
        assert_eq!(addresses(&answer), [ip(FAST)]);
    });
    assert_eq!(refusing.seen("fast.test.").len(), 1);

    inside(failing.fd(), || {
        let started = Instant::now();
        let answer = ask_udp(&query(2, "fast.test.", RecordType::A));
        let took = started.elapsed();
        assert_eq!(answer.response_code, ResponseCode::ServFail);
        assert_eq!(answer.queries.len(), 1);
        assert!(
            took >= dns::UPSTREAM_TIMEOUT && took < dns::UPSTREAM_TIMEOUT * 2,
            "{took:?}"
        );
        // Over TCP the same.
        assert_eq!(
            ask_tcp(&query(3, "fast.test.", RecordType::A)).response_code,
            ResponseCode::ServFail
        );
        // Known names never wait on upstream.
        let started = Instant::now();
        assert_eq!(
            addresses(&ask_udp(&query(4, "web.", RecordType::A))),
            [ip(WEB)]
        );
        assert!(started.elapsed() < dns::UPSTREAM_TIMEOUT);
    });
    drop(hole);
}

#[test]
fn a_flood_from_one_container_leaves_the_others_answered_promptly() {
    let rt = runtime();
    let upstream = Upstream::start(&rt, Mode::Answer);
    let resolver = Resolver::new(names(), vec![upstream.at]);
    let (flooder, calm) = (Sandbox::new().unwrap(), Sandbox::new().unwrap());
    let _serving = {
        let _rt = rt.enter();
        (
            resolver
                .serve("flooder".into(), Sockets::open_in(flooder.fd()).unwrap())
                .unwrap(),
            resolver
                .serve("calm".into(), Sockets::open_in(calm.fd()).unwrap())
                .unwrap(),
        )
    };

    // The flood: thousands of queries for a name the upstream never answers, as fast as
    // they go, and every TCP connection allowed held open.
    let started = Instant::now();
    let (flood, mut held) = inside(flooder.fd(), || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        socket.connect(SERVER).unwrap();
        for id in 0..5000u16 {
            socket
                .send(&query(id, "slow.test.", RecordType::A))
                .unwrap();
        }
        let held: Vec<TcpStream> = (0..dns::MAX_CONNECTIONS).map(|_| connect()).collect();
        // One more is closed at once.
        let mut extra = connect();
        let mut byte = [0u8; 1];
        assert_eq!(extra.read(&mut byte).unwrap(), 0, "closed by the server");
        (socket, held)
    });

    // Past the container's limit of forwards, SERVFAIL at once, not after the upstream's
    // timeout.
    flood.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    let mut buf = [0u8; 512];
    let n = flood.recv(&mut buf).unwrap();
    let first = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(first.response_code, ResponseCode::ServFail);
    assert!(
        started.elapsed() < dns::UPSTREAM_TIMEOUT,
        "{:?}",
        started.elapsed()
    );

    // Meanwhile the other container's known and forwarded names answer at once, over UDP
    // and TCP.
    inside(calm.fd(), || {
        for (id, name, want) in [(1, "web.", WEB), (2, "fast.test.", FAST)] {
            let asked = Instant::now();
            assert_eq!(
                addresses(&ask_udp(&query(id, name, RecordType::A))),
                [ip(want)]
            );
            assert_eq!(
                addresses(&ask_tcp(&query(id, name, RecordType::A))),
                [ip(want)]
            );
            assert!(
                asked.elapsed() < Duration::from_secs(1),
                "{name}: {:?}",
                asked.elapsed()
            );
        }
    });
    // The flooder's own held connections and known names still work.
    inside(flooder.fd(), || {
        send_tcp(&mut held[0], &query(3, "web.", RecordType::A));
        assert_eq!(addresses(&read_tcp(&mut held[0])), [ip(WEB)]);
    });
    assert!(
        started.elapsed() < dns::UPSTREAM_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    let forwarded = upstream.seen("slow.test.").len();
    assert!(
        forwarded <= dns::MAX_FORWARDS,
        "{forwarded} forwarded at once"
    );
}

#[test]
fn dropping_the_handle_stops_serving_and_closes_the_sockets() {
    let rt = runtime();
    let sandbox = Sandbox::new().unwrap();
    let resolver = Resolver::new(names(), Vec::new());
    let serving = {
        let _rt = rt.enter();
        resolver
            .serve("c1".into(), Sockets::open_in(sandbox.fd()).unwrap())
            .unwrap()
    };
    inside(sandbox.fd(), || {
        assert_eq!(
            addresses(&ask_udp(&query(1, "web.", RecordType::A))),
            [ip(WEB)]
        );
    });
    drop(serving);
    inside(sandbox.fd(), || {
        // The tasks end soon after, each on its own: wait until both ports refuse (a
        // closed UDP port answers ICMP port unreachable), each try waiting a little.
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        socket.connect(SERVER).unwrap();
        let pause = Some(Duration::from_millis(50));
        socket.set_read_timeout(pause).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 512];
        let (mut udp_closed, mut tcp_closed) = (false, false);
        while !(udp_closed && tcp_closed) {
            assert!(Instant::now() < deadline, "still serving");
            if !udp_closed {
                let _ = socket.send(&query(2, "web.", RecordType::A));
                udp_closed = matches!(socket.recv(&mut buf),
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused);
            }
            match TcpStream::connect(SERVER) {
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => tcp_closed = true,
                Err(e) => panic!("{e}"),
                Ok(mut stream) => {
                    stream.set_read_timeout(pause).unwrap();
                    let _ = stream.read(&mut buf);
                }
            }
        }
    });
    // The port is free again in that namespace.
    Sockets::open_in(sandbox.fd()).expect("bound again");
}

//! Registries for the pull and push tests, all on this machine: Debian's `docker-registry`
//! (Docker's own distribution 2.8) started on a free port, images written as OCI layouts
//! and copied into it by `skopeo`, a TCP proxy that cuts a download part-way, and a
//! hostile registry ([`Hostile`]) that answers whatever a test scripts: bombs, malformed
//! manifests, redirects.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::{text, wait_for};

/// A free TCP port on `host` (bound, then let go).
pub fn free_port(host: &str) -> u16 {
    TcpListener::bind((host, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `docker-registry serve` on `host:port`, killed on drop.
pub struct DockerRegistry {
    pub addr: String,
    pub dir: PathBuf,
    child: Child,
}

/// How a test registry is set up.
#[derive(Default)]
pub struct RegistryOptions<'a> {
    /// Address to listen on (127.0.0.1 by default).
    pub host: Option<&'a str>,
    /// TLS certificate and key files.
    pub tls: Option<(&'a Path, &'a Path)>,
    /// An htpasswd file (basic auth).
    pub htpasswd: Option<&'a Path>,
}

impl DockerRegistry {
    pub fn start(dir: &Path, opts: RegistryOptions<'_>) -> DockerRegistry {
        let host = opts.host.unwrap_or("127.0.0.1");
        let port = free_port(host);
        let addr = format!("{host}:{port}");
        let dir = dir.join(format!("registry-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        );
        if let Some((cert, key)) = opts.tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        if let Some(h) = opts.htpasswd {
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                h.display()
            ));
        }
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect(
                "docker-registry (Debian's docker-registry package; scripts/deps.sh installs it)",
            );
        let r = DockerRegistry { addr, dir, child };
        wait_for("docker-registry to listen", || {
            TcpStream::connect(&r.addr).is_ok()
        });
        r
    }

    /// Where the registry keeps the blob `digest`'s data.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `skopeo copy` from `src` to the registry's `repo:tag` (plain HTTP, or TLS unchecked),
/// with every platform of an index. Panics with skopeo's words on failure.
pub fn skopeo_copy(src: &str, dest: &str, extra: &[&str]) {
    let out = Command::new("skopeo")
        .args(["copy", "--all", "--dest-tls-verify=false"])
        .args(extra)
        .arg(src)
        .arg(dest)
        .output()
        .expect("skopeo (Debian's skopeo package; scripts/deps.sh installs it)");
    assert!(
        out.status.success(),
        "skopeo copy {src} {dest}: {}",
        text(&out.stderr)
    );
}

/// The digest of the manifest (or index) skopeo reads at `reference`.
pub fn skopeo_digest(reference: &str) -> String {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", reference])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        text(&out.stderr)
    );
    format!("sha256:{:x}", Sha256::digest(&out.stdout))
}

/// How a layer's tar is stored.
#[derive(Clone, Copy, Debug)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// One image of an OCI layout: its platform and layers (each a tar, stored compressed).
pub struct LayoutImage {
    pub architecture: String,
    pub layers: Vec<(Compression, Vec<u8>)>,
}

fn write_blob(layout: &Path, bytes: &[u8]) -> (String, u64) {
    let hex = format!("{:x}", Sha256::digest(bytes));
    std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len() as u64)
}

fn compress(c: Compression, tar: &[u8]) -> Vec<u8> {
    match c {
        Compression::None => tar.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(tar, 1).unwrap(),
    }
}

/// A tar of `files` (`path`, content), directories made as needed.
pub fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o755);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, *content).unwrap();
    }
    b.into_inner().unwrap()
}

/// Writes an OCI layout at `dir` with `images` under tag `tag`: one image manifest when
/// there is one image and `index` is false, else an index of them all (by platform).
/// Returns the layout's path.
pub fn oci_layout(dir: &Path, tag: &str, images: &[LayoutImage], index: bool) -> PathBuf {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut manifests = Vec::new();
    for img in images {
        let mut diff_ids = Vec::new();
        let mut layers = Vec::new();
        for (c, tar) in &img.layers {
            diff_ids.push(format!("sha256:{:x}", Sha256::digest(tar)));
            let (digest, size) = write_blob(dir, &compress(*c, tar));
            layers.push(
                serde_json::json!({"mediaType": c.media_type(), "digest": digest, "size": size}),
            );
        }
        let config = serde_json::json!({
            "architecture": img.architecture,
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [],
        });
        let (cdigest, csize) = write_blob(dir, config.to_string().as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
            "layers": layers,
        });
        let (mdigest, msize) = write_blob(dir, manifest.to_string().as_bytes());
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": mdigest,
            "size": msize,
            "platform": {"os": "linux", "architecture": img.architecture},
        }));
    }
    let top = if index || manifests.len() > 1 {
        let idx = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        let (d, s) = write_blob(dir, idx.to_string().as_bytes());
        serde_json::json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": s, "annotations": {"org.opencontainers.image.ref.name": tag}})
    } else {
        let mut m = manifests.remove(0);
        m["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
        m.as_object_mut().unwrap().remove("platform");
        m
    };
    let layout_index = serde_json::json!({"schemaVersion": 2, "manifests": [top]});
    std::fs::write(dir.join("index.json"), layout_index.to_string()).unwrap();
    dir.to_path_buf()
}

/// What the cutting proxy saw: each connection's request line and `Range` header.
#[derive(Default, Debug, Clone)]
pub struct Seen {
    pub requests: Vec<(String, Option<String>)>,
    /// Response bytes forwarded per request line.
    pub forwarded: Vec<(String, u64)>,
    /// A stalled response is being held.
    pub stalled: bool,
}

/// A proxy on 127.0.0.1 in front of `upstream` that, once, cuts the response to the first
/// GET whose path contains `cut_path` after `cut_after` bytes (or, with `stall`, stops
/// forwarding it there and holds the connection open).
pub struct CutProxy {
    pub addr: String,
    pub seen: Arc<Mutex<Seen>>,
}

impl CutProxy {
    pub fn start(upstream: &str, cut_path: &str, cut_after: u64) -> CutProxy {
        CutProxy::start_with(upstream, cut_path, cut_after, false)
    }

    pub fn start_with(upstream: &str, cut_path: &str, cut_after: u64, stall: bool) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let cut = Arc::new(Mutex::new(Some((cut_path.to_string(), cut_after))));
        let upstream = upstream.to_string();
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { break };
                let upstream = upstream.clone();
                let seen = s2.clone();
                let cut = cut.clone();
                std::thread::spawn(move || proxy_one(client, &upstream, &seen, &cut, stall));
            }
        });
        CutProxy { addr, seen }
    }
}

fn proxy_one(
    mut client: TcpStream,
    upstream: &str,
    seen: &Mutex<Seen>,
    cut: &Mutex<Option<(String, u64)>>,
    stall: bool,
) {
    // The request head (one request per connection: berth's client does not reuse them).
    let Some(head_text) = request_head(&mut client) else {
        return;
    };
    let line = head_text.lines().next().unwrap_or("").to_string();
    let range = head_text
        .lines()
        .find_map(|l| {
            l.strip_prefix("range: ")
                .or_else(|| l.strip_prefix("Range: "))
        })
        .map(str::to_string);
    seen.lock().unwrap().requests.push((line.clone(), range));
    let limit = {
        let mut c = cut.lock().unwrap();
        match c.as_ref() {
            Some((path, n)) if line.starts_with("GET ") && line.contains(path.as_str()) => {
                let n = *n;
                *c = None;
                Some(n)
            }
            _ => None,
        }
    };
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    server.write_all(head_text.as_bytes()).unwrap();
    let mut to_server = client.try_clone().unwrap();
    let mut server_w = server.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut to_server, &mut server_w);
    });
    let mut forwarded = 0u64;
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = match limit {
            Some(l) if forwarded + n as u64 >= l => (l - forwarded) as usize,
            _ => n,
        };
        if client.write_all(&buf[..n]).is_err() {
            break;
        }
        forwarded += n as u64;
        if limit.is_some_and(|l| forwarded >= l) {
            if stall {
                seen.lock().unwrap().stalled = true;
                // Until the client gives up (its reads end when it closes).
                let mut sink = [0u8; 1];
                let _ = client.read(&mut sink);
            }
            break;
        }
    }
    seen.lock().unwrap().forwarded.push((line, forwarded));
    let _ = client.shutdown(std::net::Shutdown::Both);
    let _ = server.shutdown(std::net::Shutdown::Both);
}

/// A CA and a server certificate for `ip` (openssl), in `dir`: returns (ca.crt, cert, key).
pub fn make_tls(dir: &Path, ip: &str) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            text(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=berth test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        &format!("/CN={ip}"),
    ]);
    std::fs::write(dir.join("ext.cnf"), format!("subjectAltName=IP:{ip}\n")).unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.crt"),
        dir.join("server.crt"),
        dir.join("server.key"),
    )
}

/// An htpasswd file in `dir` with `user`'s bcrypt hash (cost 4: the suite stays fast).
pub fn htpasswd(dir: &Path, user: &str, password: &str) -> PathBuf {
    let path = dir.join("htpasswd");
    let hash = bcrypt::hash(password, 4).unwrap();
    std::fs::write(&path, format!("{user}:{hash}\n")).unwrap();
    path
}

/// `sha256:<hex>` of `bytes`.
/// The head of the request `client` sends (request line and headers); `None` when it
/// hangs up first, or opens with a TLS handshake (berth tries HTTPS first on an insecure
/// registry, and these test servers speak plain HTTP only).
fn request_head(client: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).unwrap_or(0) == 0 {
            return None;
        }
        if head.is_empty() && byte[0] == 0x16 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(text(&head))
}

/// The digest `docker push` printed (`<tag>: digest: sha256:... size: N`) for tag `1`.
pub fn pushed_digest(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("1: digest: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest line: {out}"))
        .to_string()
}

pub fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// What the token front saw: the token requests' query strings and whether each carried
/// basic credentials.
#[derive(Default, Debug, Clone)]
pub struct TokenSeen {
    pub token_requests: Vec<(String, bool)>,
    /// Registry requests refused for a missing or stale token.
    pub refused: usize,
}

/// A bearer-token front on 127.0.0.1 before `upstream` (a plain docker-registry), as
/// Docker Hub is: registry requests need `Authorization: Bearer <token>`, else 401 with
/// a `WWW-Authenticate: Bearer realm=..,service=..,scope=..` challenge; `GET /token`
/// hands out tokens, anonymously for pulls, and for pushes only with `user:password`
/// (basic). A token stops working after `uses` requests (an expiry), so clients must
/// fetch a new one.
pub struct TokenFront {
    pub addr: String,
    pub seen: Arc<Mutex<TokenSeen>>,
}

impl TokenFront {
    pub fn start(upstream: &str, user: &str, password: &str, uses: usize) -> TokenFront {
        use base64::Engine;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(TokenSeen::default()));
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        // token -> (uses left, may push)
        let tokens: Arc<Mutex<std::collections::HashMap<String, (usize, bool)>>> = Arc::default();
        let (upstream, s2, me) = (upstream.to_string(), seen.clone(), addr.clone());
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { break };
                let (upstream, seen, tokens, basic, me, counter) = (
                    upstream.clone(),
                    s2.clone(),
                    tokens.clone(),
                    basic.clone(),
                    me.clone(),
                    counter.clone(),
                );
                std::thread::spawn(move || {
                    let Some(head_text) = request_head(&mut client) else {
                        return;
                    };
                    let line = head_text.lines().next().unwrap_or("").to_string();
                    let header = |name: &str| {
                        head_text.lines().find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.trim()
                                .eq_ignore_ascii_case(name)
                                .then(|| v.trim().to_string())
                        })
                    };
                    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    if let Some(query) = target.strip_prefix("/token?") {
                        let with_creds = header("authorization").as_deref() == Some(basic.as_str());
                        let wants_push = query.contains("push");
                        seen.lock()
                            .unwrap()
                            .token_requests
                            .push((query.to_string(), with_creds));
                        if header("authorization").is_some() && !with_creds {
                            let body = r#"{"details":"incorrect username or password"}"#;
                            let _ = write!(client, "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                            return;
                        }
                        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let token = format!("tok{n}");
                        tokens
                            .lock()
                            .unwrap()
                            .insert(token.clone(), (uses, with_creds || !wants_push));
                        let body = format!(r#"{{"token":"{token}","expires_in":300}}"#);
                        let _ = write!(client, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                        return;
                    }
                    let method = line.split_whitespace().next().unwrap_or("");
                    let writes = !matches!(method, "GET" | "HEAD");
                    let ok = header("authorization")
                        .and_then(|a| a.strip_prefix("Bearer ").map(str::to_string))
                        .is_some_and(|t| {
                            let mut tokens = tokens.lock().unwrap();
                            match tokens.get_mut(&t) {
                                Some((left, may_push)) if *left > 0 && (*may_push || !writes) => {
                                    *left -= 1;
                                    true
                                }
                                _ => false,
                            }
                        });
                    if !ok {
                        seen.lock().unwrap().refused += 1;
                        let repo = target
                            .strip_prefix("/v2/")
                            .and_then(|r| r.split("/manifests/").next())
                            .map(|r| r.split("/blobs/").next().unwrap_or(r).to_string())
                            .unwrap_or_default();
                        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
                        let _ = write!(client, "HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Bearer realm=\"http://{me}/token\",service=\"berth-test\",scope=\"repository:{repo}:pull\"\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                        return;
                    }
                    // Forward (without the token) and copy the answer back.
                    let Ok(mut server) = TcpStream::connect(&upstream) else {
                        return;
                    };
                    let forwarded: Vec<u8> = head_text
                        .split("\r\n")
                        .filter(|l| !l.to_ascii_lowercase().starts_with("authorization:"))
                        .collect::<Vec<_>>()
                        .join("\r\n")
                        .into_bytes();
                    if server.write_all(&forwarded).is_err() {
                        return;
                    }
                    let mut to_server = client.try_clone().unwrap();
                    let mut server_w = server.try_clone().unwrap();
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut to_server, &mut server_w);
                    });
                    let _ = std::io::copy(&mut server, &mut client);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        TokenFront { addr, seen }
    }
}

/// What a [`Hostile`] registry answers to one path.
#[derive(Clone, Debug)]
pub enum Reply {
    /// `status`, extra headers, and `body` with its `Content-Length`.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// 200 with `headers` and `piece` sent `times` times, chunked (no `Content-Length`);
    /// `usize::MAX`: until the client hangs up.
    Chunked {
        headers: Vec<(String, String)>,
        piece: Vec<u8>,
        times: usize,
    },
    /// `302 Found` to `location`.
    Redirect(String),
}

impl Reply {
    /// 200 with `body` of `content_type`.
    pub fn ok(content_type: &str, body: &[u8]) -> Reply {
        Reply::Full {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.to_vec(),
        }
    }
}

/// A request a [`Hostile`] registry saw: its request line and headers (names lowercase).
#[derive(Clone, Debug)]
pub struct Request {
    pub line: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The value of header `name` (lowercase), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A registry that answers what the test tells it to, path by path (plain HTTP, one
/// request per connection): malformed manifests, bombs, redirects. `GET /v2/` answers 200
/// (or 401 with a basic challenge while [`Hostile::require`] holds and the request lacks
/// those credentials); an unknown path answers a 404 with `MANIFEST_UNKNOWN`.
pub struct Hostile {
    pub addr: String,
    routes: Arc<Mutex<Vec<(String, Reply)>>>,
    basic: Arc<Mutex<Option<String>>>,
    pub seen: Arc<Mutex<Vec<Request>>>,
}

impl Hostile {
    /// A registry listening on `host` (a loopback address) on a free port.
    pub fn start(host: &str) -> Hostile {
        let listener = TcpListener::bind((host, 0)).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let routes: Arc<Mutex<Vec<(String, Reply)>>> = Arc::default();
        let basic: Arc<Mutex<Option<String>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
        let (r, b, s) = (routes.clone(), basic.clone(), seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { break };
                let (r, b, s) = (r.clone(), b.clone(), s.clone());
                std::thread::spawn(move || hostile_one(client, &r, &b, &s));
            }
        });
        Hostile {
            addr,
            routes,
            basic,
            seen,
        }
    }

    /// Answers `reply` to requests for `path` (`/v2/x/manifests/1`, no query).
    pub fn route(&self, path: &str, reply: Reply) {
        let mut routes = self.routes.lock().unwrap();
        routes.retain(|(p, _)| p != path);
        routes.push((path.to_string(), reply));
    }

    /// From now on, `/v2/` paths need basic auth as `user:password`.
    pub fn require(&self, user: &str, password: &str) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        *self.basic.lock().unwrap() = Some(format!("Basic {b64}"));
    }

    /// Serves `image` as `repo:tag`: its manifest and every blob.
    pub fn serve(&self, repo: &str, tag: &str, image: &MemImage) {
        self.route(
            &format!("/v2/{repo}/manifests/{tag}"),
            Reply::ok(OCI_MANIFEST, &image.manifest),
        );
        for (digest, bytes) in &image.blobs {
            self.route(
                &format!("/v2/{repo}/blobs/{digest}"),
                Reply::ok("application/octet-stream", bytes),
            );
        }
    }

    /// The requests seen whose line contains `part`.
    pub fn requests(&self, part: &str) -> Vec<Request> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.line.contains(part))
            .cloned()
            .collect()
    }
}

fn hostile_one(
    mut client: TcpStream,
    routes: &Mutex<Vec<(String, Reply)>>,
    basic: &Mutex<Option<String>>,
    seen: &Mutex<Vec<Request>>,
) {
    let Some(head_text) = request_head(&mut client) else {
        return;
    };
    let mut lines = head_text.split("\r\n");
    let line = lines.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    let request = Request { line, headers };
    seen.lock().unwrap().push(request.clone());
    let target = request.line.split_whitespace().nth(1).unwrap_or("");
    let path = target.split('?').next().unwrap_or("");
    let required = basic.lock().unwrap().clone();
    if let Some(expected) = required {
        if path.starts_with("/v2/") && request.header("authorization") != Some(&expected) {
            let body =
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
            let _ = write!(client, "HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Basic realm=\"hostile\"\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            return;
        }
    }
    let reply = routes
        .lock()
        .unwrap()
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, r)| r.clone());
    let reply = match reply {
        Some(r) => r,
        None if path == "/v2/" => Reply::ok("application/json", b"{}"),
        None => Reply::Full {
            status: 404,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
                .to_vec(),
        },
    };
    let head_of = |status: u16, headers: &[(String, String)]| {
        let mut h = format!(
            "HTTP/1.1 {status} {}\r\nConnection: close\r\n",
            reason(status)
        );
        for (k, v) in headers {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        h
    };
    let _ = match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut out = head_of(status, &headers).into_bytes();
            out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(&body);
            client.write_all(&out)
        }
        Reply::Chunked {
            headers,
            piece,
            times,
        } => (|| {
            let h = head_of(200, &headers) + "Transfer-Encoding: chunked\r\n\r\n";
            client.write_all(h.as_bytes())?;
            let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
            framed.extend_from_slice(&piece);
            framed.extend_from_slice(b"\r\n");
            for _ in 0..times {
                client.write_all(&framed)?;
            }
            client.write_all(b"0\r\n\r\n")
        })(),
        Reply::Redirect(location) => {
            let h = head_of(302, &[("Location".into(), location)]) + "Content-Length: 0\r\n\r\n";
            client.write_all(h.as_bytes())
        }
    };
    let _ = client.shutdown(std::net::Shutdown::Write);
    // Until the client has read it all and hung up.
    let mut rest = [0u8; 1024];
    while client.read(&mut rest).unwrap_or(0) > 0 {}
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Unknown",
    }
}

/// The OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// An image held in memory, as a registry serves it.
pub struct MemImage {
    pub manifest: Vec<u8>,
    pub config: Vec<u8>,
    /// Every blob (config, layers) by digest.
    pub blobs: Vec<(String, Vec<u8>)>,
    /// The layers' digests, bottom first.
    pub layers: Vec<String>,
}

impl MemImage {
    /// An amd64 image of gzip layers: each `(blob, diff_id)` (the digest of its tar).
    pub fn new(layers: Vec<(Vec<u8>, String)>) -> MemImage {
        let diff_ids: Vec<&String> = layers.iter().map(|(_, d)| d).collect();
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        })
        .to_string()
        .into_bytes();
        let mut blobs = vec![(sha256_of(&config), config.clone())];
        let mut descriptors = Vec::new();
        for (blob, _) in &layers {
            let digest = sha256_of(blob);
            descriptors.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest,
                "size": blob.len(),
            }));
            blobs.push((digest, blob.clone()));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256_of(&config),
                "size": config.len(),
            },
            "layers": descriptors,
        })
        .to_string()
        .into_bytes();
        MemImage {
            manifest,
            config,
            layers: blobs[1..].iter().map(|(d, _)| d.clone()).collect(),
            blobs,
        }
    }

    /// One gzip layer of `files`.
    pub fn of_files(files: &[(&str, &[u8])]) -> MemImage {
        let tar = layer_tar(files);
        let diff_id = sha256_of(&tar);
        MemImage::new(vec![(compress(Compression::Gzip, &tar), diff_id)])
    }

    /// The manifest's digest.
    pub fn digest(&self) -> String {
        sha256_of(&self.manifest)
    }
}

/// A gzip layer that inflates to a tar of one file of `size` zero bytes, made of
/// concatenated gzip members (as `MultiGzDecoder` reads them, and Go's gzip reader): a few
/// MiB that decompress to GiBs, built without compressing them. Returns (blob, diff_id),
/// the diff_id being a stand-in (the real one would take hashing GiBs to know).
pub fn gzip_bomb(size: u64) -> (Vec<u8>, String) {
    const PIECE: u64 = 64 << 20;
    assert_eq!(size % PIECE, 0, "a whole number of 64 MiB pieces");
    let mut header = tar::Header::new_gnu();
    header.set_path("zeros").unwrap();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    let mut blob = compress(Compression::Gzip, header.as_bytes());
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&vec![0u8; PIECE as usize]).unwrap();
    let zeros = e.finish().unwrap();
    for _ in 0..size / PIECE {
        blob.extend_from_slice(&zeros);
    }
    // The tar's two closing blocks.
    blob.extend_from_slice(&compress(Compression::Gzip, &[0u8; 1024]));
    (
        blob,
        sha256_of(b"a stand-in: the bomb's tar is never hashed whole"),
    )
}

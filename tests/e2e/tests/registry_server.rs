//! berth's own registry (`berth-registry serve`), driven by the docker CLI through berthd,
//! by skopeo, and by raw HTTP for what the clients do not exercise (chunks, wrong digests,
//! path tricks, pagination, referrers, gc).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use berth_e2e::registry::{
    free_port, htpasswd, layer_tar, oci_layout, pushed_digest, sha256_of, skopeo_copy,
    skopeo_digest, Compression, LayoutImage,
};
use berth_e2e::{bin_dir, text, wait_for, Daemon};
use sha2::{Digest, Sha256};

/// A `berth-registry serve` on a free loopback port; killed on drop.
struct BerthRegistry {
    addr: String,
    root: PathBuf,
    child: Child,
}

impl BerthRegistry {
    fn start(root: &Path, extra: &[&str]) -> BerthRegistry {
        let port = free_port("127.0.0.1");
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(root.with_extension("log")).unwrap();
        let child = Command::new(bin_dir().join("berth-registry"))
            .args(["serve", "--addr", &addr, "--root"])
            .arg(root)
            .args(extra)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("berth-registry (cargo build --bins)");
        let r = BerthRegistry {
            addr,
            root: root.to_path_buf(),
            child,
        };
        wait_for("berth-registry to listen", || {
            TcpStream::connect(&r.addr).is_ok()
        });
        r
    }

    /// The blob files in the store: name -> content.
    fn blobs(&self) -> HashMap<String, Vec<u8>> {
        std::fs::read_dir(self.root.join("blobs/sha256"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    }

    /// Every stored blob's content hashes to its name.
    fn assert_blobs_intact(&self) {
        for (hex, bytes) in self.blobs() {
            assert_eq!(format!("{:x}", Sha256::digest(&bytes)), hex, "blob {hex}");
        }
    }
}

impl Drop for BerthRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer: status, headers (lowercase names), body.
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", text(&self.body)))
    }

    fn error_code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// One request on its own connection, the path sent as given (no normalisation).
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_answer(s)
}

/// A request with no body and an `Authorization` header.
fn authorized(addr: &str, method: &str, path: &str, authorization: &str) -> Answer {
    http(addr, method, path, &[("Authorization", authorization)], b"")
}

/// A request head announcing `content_length` bytes that are never sent: for what the
/// server refuses from the head alone.
fn http_head_only(addr: &str, method: &str, path: &str, content_length: usize) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: {content_length}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    read_answer(s)
}

fn read_answer(mut s: TcpStream) -> Answer {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_lowercase(), v.to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// Uploads `bytes` to `repo` monolithically (POST, then PUT with the body).
fn upload(addr: &str, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256_of(bytes);
    let a = http(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    );
    assert_eq!(a.status, 202, "{}", text(&a.body));
    let loc = a.header("location").to_string();
    let a = http(addr, "PUT", &format!("{loc}?digest={digest}"), &[], bytes);
    assert_eq!(a.status, 201, "{}", text(&a.body));
    digest
}

/// An OCI image manifest of `config` and `layers` (digest, size), with an optional
/// subject and artifact type.
fn manifest(
    config: (&str, usize),
    layers: &[(&str, usize)],
    subject: Option<(&str, usize)>,
    artifact_type: Option<&str>,
) -> Vec<u8> {
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
        "layers": layers.iter().map(|(d, s)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s})).collect::<Vec<_>>(),
    });
    if let Some((d, s)) = subject {
        m["subject"] = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": s});
        m["annotations"] = serde_json::json!({"org.example.note": "signed"});
    }
    if let Some(t) = artifact_type {
        m["artifactType"] = serde_json::json!(t);
    }
    m.to_string().into_bytes()
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn put_manifest(addr: &str, repo: &str, reference: &str, bytes: &[u8]) -> Answer {
    http(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", OCI_MANIFEST)],
        bytes,
    )
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn docker_push_and_pull_through_berthd_and_concurrent_pushes_keep_blobs_intact() {
    let d = Daemon::start();
    let store = tempfile::tempdir().unwrap();
    let reg = BerthRegistry::start(&store.path().join("root"), &[]);
    d.busybox();
    let name = format!("{}/team/bb:1", reg.addr);
    d.ok(&["tag", "busybox:latest", &name]);
    let out = d.ok(&["push", &name]);
    let pushed = pushed_digest(&out);
    assert_eq!(skopeo_digest(&format!("docker://{name}")), pushed);
    d.ok(&["rmi", &name]);
    d.ok(&["rmi", "busybox:latest"]);
    let out = d.ok(&["pull", &name]);
    assert!(out.contains(&format!("Digest: {pushed}")), "{out}");
    assert_eq!(d.ok(&["run", "--rm", &name, "echo", "back"]), "back\n");

    // Two pushes of the same image at once, into two repositories: the shared blobs end
    // up whole, each once.
    let one = format!("{}/race/one:1", reg.addr);
    let two = format!("{}/race/two:1", reg.addr);
    d.ok(&["tag", &name, &one]);
    d.ok(&["tag", &name, &two]);
    let before = reg.blobs().len();
    std::thread::scope(|s| {
        let a = s.spawn(|| d.outcome(&["push", &one]));
        let b = s.spawn(|| d.outcome(&["push", &two]));
        for (code, out, err) in [a.join().unwrap(), b.join().unwrap()] {
            assert_eq!(code, 0, "{out}{err}");
        }
    });
    reg.assert_blobs_intact();
    assert_eq!(reg.blobs().len(), before, "the same content, stored once");
    assert_eq!(skopeo_digest(&format!("docker://{one}")), pushed);
    assert_eq!(skopeo_digest(&format!("docker://{two}")), pushed);
    let catalog = http(&reg.addr, "GET", "/v2/_catalog", &[], b"").json();
    assert_eq!(
        catalog["repositories"],
        serde_json::json!(["race/one", "race/two", "team/bb"])
    );
}

#[test]
fn skopeo_copies_an_index_and_berthd_pulls_the_hosts_platform() {
    let d = Daemon::start();
    let store = tempfile::tempdir().unwrap();
    let reg = BerthRegistry::start(&store.path().join("root"), &[]);
    let other = if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let images: Vec<LayoutImage> = [host_arch(), other]
        .iter()
        .map(|arch| LayoutImage {
            architecture: arch.to_string(),
            layers: vec![(
                Compression::Gzip,
                layer_tar(&[("arch", arch.as_bytes()), ("big", &vec![7u8; 3 << 20])]),
            )],
        })
        .collect();
    let layout = oci_layout(&store.path().join("layout"), "1", &images, true);
    let dest = format!("docker://{}/multi/app:1", reg.addr);
    skopeo_copy(&format!("oci:{}:1", layout.display()), &dest, &[]);
    let index_digest = skopeo_digest(&dest);
    let a = http(&reg.addr, "HEAD", "/v2/multi/app/manifests/1", &[], b"");
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("content-type"),
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(a.header("docker-content-digest"), index_digest);
    let name = format!("{}/multi/app:1", reg.addr);
    let out = d.ok(&["pull", &name]);
    assert!(out.contains(&format!("Digest: {index_digest}")), "{out}");
    let arch = d.ok(&["image", "inspect", "-f", "{{.Architecture}}", &name]);
    assert_eq!(arch.trim(), host_arch());
    reg.assert_blobs_intact();
}

#[test]
fn the_protocol_by_raw_http_chunks_digests_names_pages_and_referrers() {
    let store = tempfile::tempdir().unwrap();
    let reg = BerthRegistry::start(&store.path().join("root"), &[]);
    let addr = reg.addr.as_str();
    let a = http(addr, "GET", "/v2/", &[], b"");
    assert_eq!(a.status, 200);
    assert_eq!(a.header("docker-distribution-api-version"), "registry/2.0");

    // A chunked upload: two PATCHes with Content-Range, a wrong range refused with 416,
    // the status, then PUT with the last chunk.
    let layer: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let digest = sha256_of(&layer);
    let a = http(addr, "POST", "/v2/chunky/blobs/uploads/", &[], b"");
    assert_eq!(a.status, 202);
    assert_eq!(a.header("range"), "0-0");
    let loc = a.header("location").to_string();
    assert!(loc.starts_with("/v2/chunky/blobs/uploads/"), "{loc}");
    let a = http(
        addr,
        "PATCH",
        &loc,
        &[("Content-Range", "0-99999")],
        &layer[..100_000],
    );
    assert_eq!(a.status, 202, "{}", text(&a.body));
    assert_eq!(a.header("range"), "0-99999");
    let a = http(
        addr,
        "PATCH",
        &loc,
        &[("Content-Range", "50-99")],
        &layer[50..100],
    );
    assert_eq!(a.status, 416);
    let a = http(
        addr,
        "PATCH",
        &loc,
        &[("Content-Range", "100000-199999")],
        &layer[100_000..200_000],
    );
    assert_eq!(a.status, 202);
    let a = http(addr, "GET", &loc, &[], b"");
    assert_eq!(a.status, 204);
    assert_eq!(a.header("range"), "0-199999");
    let a = http(
        addr,
        "PUT",
        &format!("{loc}?digest={digest}"),
        &[],
        &layer[200_000..],
    );
    assert_eq!(a.status, 201, "{}", text(&a.body));
    assert_eq!(a.header("docker-content-digest"), digest);
    let a = http(addr, "GET", &format!("/v2/chunky/blobs/{digest}"), &[], b"");
    assert_eq!(a.status, 200);
    assert_eq!(a.body, layer);
    let a = http(
        addr,
        "GET",
        &format!("/v2/chunky/blobs/{digest}"),
        &[("Range", "bytes=1000-")],
        b"",
    );
    assert_eq!(a.status, 206);
    assert_eq!(a.header("content-range"), "bytes 1000-299999/300000");
    assert_eq!(a.body, layer[1000..]);

    // A wrong digest: refused, nothing published, the upload gone.
    let a = http(addr, "POST", "/v2/chunky/blobs/uploads/", &[], b"");
    let loc = a.header("location").to_string();
    let wrong = sha256_of(b"something else");
    let a = http(
        addr,
        "PUT",
        &format!("{loc}?digest={wrong}"),
        &[],
        b"the bytes",
    );
    assert_eq!(a.status, 400);
    assert_eq!(a.error_code(), "DIGEST_INVALID");
    let a = http(addr, "HEAD", &format!("/v2/chunky/blobs/{wrong}"), &[], b"");
    assert_eq!(a.status, 404);
    let hex_of = |d: &str| d.trim_start_matches("sha256:").to_string();
    assert!(!reg.blobs().contains_key(&hex_of(&wrong)));
    assert!(!reg.blobs().contains_key(&hex_of(&sha256_of(b"the bytes"))));
    assert_eq!(http(addr, "GET", &loc, &[], b"").status, 404);
    // A digest of another algorithm, or malformed.
    let a = http(addr, "HEAD", "/v2/chunky/blobs/sha512:abc", &[], b"");
    assert_eq!(a.status, 400);

    // Path tricks: never a path outside the root.
    for path in [
        "/v2/../x/manifests/latest",
        "/v2/%2e%2e/x/manifests/latest",
        "/v2/a%2Fb/manifests/latest",
        "/v2/Upper/manifests/latest",
        "/v2/a//b/manifests/latest",
        "/v2/../../blobs/uploads/",
    ] {
        let a = http(addr, "GET", path, &[], b"");
        assert_eq!(a.status, 400, "{path}");
        assert_eq!(a.error_code(), "NAME_INVALID", "{path}");
        let a = http(addr, "POST", path, &[], b"");
        assert_eq!(a.status, 400, "{path}");
    }
    assert!(!store.path().join("x").exists());

    // A monolithic POST ?digest= and a manifest naming a blob the repository lacks.
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let cdigest = sha256_of(config);
    let a = http(
        addr,
        "POST",
        &format!("/v2/chunky/blobs/uploads/?digest={cdigest}"),
        &[],
        config,
    );
    assert_eq!(a.status, 201, "{}", text(&a.body));
    let absent = sha256_of(b"absent");
    let m = manifest((&cdigest, config.len()), &[(&absent, 6)], None, None);
    let a = put_manifest(addr, "chunky", "v1", &m);
    assert_eq!(a.status, 400);
    assert_eq!(a.error_code(), "MANIFEST_BLOB_UNKNOWN");
    // A blob of another repository is not this one's until mounted.
    let m = manifest(
        (&cdigest, config.len()),
        &[(&digest, layer.len())],
        None,
        None,
    );
    let a = put_manifest(addr, "other", "v1", &m);
    assert_eq!(a.error_code(), "MANIFEST_BLOB_UNKNOWN");
    for d in [&digest, &cdigest] {
        let a = http(
            addr,
            "POST",
            &format!("/v2/other/blobs/uploads/?mount={d}&from=chunky"),
            &[],
            b"",
        );
        assert_eq!(a.status, 201, "{}", text(&a.body));
    }
    // Three tags; a manifest by digest must match its bytes.
    let mdigest = sha256_of(&m);
    for tag in ["v1", "v2", "v3"] {
        let a = put_manifest(addr, "other", tag, &m);
        assert_eq!(a.status, 201, "{}", text(&a.body));
        assert_eq!(a.header("docker-content-digest"), mdigest);
    }
    let a = put_manifest(addr, "other", &sha256_of(b"not it"), &m);
    assert_eq!(a.error_code(), "DIGEST_INVALID");
    let a = http(addr, "GET", "/v2/other/manifests/v2", &[], b"");
    assert_eq!(a.status, 200);
    assert_eq!(a.body, m);
    assert_eq!(a.header("content-type"), OCI_MANIFEST);

    // Pagination: n=1 and Link, to the end.
    let mut seen = Vec::new();
    let mut next = "/v2/other/tags/list?n=1".to_string();
    loop {
        let a = http(addr, "GET", &next, &[], b"");
        assert_eq!(a.status, 200);
        let tags = a.json()["tags"].as_array().unwrap().clone();
        assert!(tags.len() <= 1);
        seen.extend(tags.iter().map(|t| t.as_str().unwrap().to_string()));
        let link = a.header("link");
        if link.is_empty() {
            break;
        }
        next = link
            .strip_prefix('<')
            .and_then(|l| l.split_once('>'))
            .map(|(u, rest)| {
                assert_eq!(rest, "; rel=\"next\"");
                u.to_string()
            })
            .unwrap();
    }
    assert_eq!(seen, ["v1", "v2", "v3"]);
    let a = http(addr, "GET", "/v2/_catalog?n=1", &[], b"");
    assert_eq!(a.json()["repositories"], serde_json::json!(["other"]));
    assert!(a.header("link").is_empty(), "chunky has no manifest");
    let a = http(addr, "GET", "/v2/nothing/tags/list", &[], b"");
    assert_eq!(a.error_code(), "NAME_UNKNOWN");

    // Referrers: a signature-like artifact whose subject is the manifest.
    let empty = upload(addr, "other", b"{}");
    let sig_type = "application/vnd.example.signature";
    let sig = manifest((&empty, 2), &[], Some((&mdigest, m.len())), Some(sig_type));
    let a = put_manifest(addr, "other", &sha256_of(&sig), &sig);
    assert_eq!(a.status, 201, "{}", text(&a.body));
    assert_eq!(a.header("oci-subject"), mdigest);
    let a = http(
        addr,
        "GET",
        &format!("/v2/other/referrers/{mdigest}"),
        &[],
        b"",
    );
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("content-type"),
        "application/vnd.oci.image.index.v1+json"
    );
    let index = a.json();
    assert_eq!(index["manifests"][0]["digest"], sha256_of(&sig));
    assert_eq!(index["manifests"][0]["artifactType"], sig_type);
    assert_eq!(
        index["manifests"][0]["annotations"]["org.example.note"],
        "signed"
    );
    let a = http(
        addr,
        "GET",
        &format!("/v2/other/referrers/{mdigest}?artifactType=application/x-none"),
        &[],
        b"",
    );
    assert_eq!(a.header("oci-filters-applied"), "artifactType");
    assert_eq!(a.json()["manifests"], serde_json::json!([]));

    // Deletes are off unless enabled.
    let a = http(
        addr,
        "DELETE",
        &format!("/v2/other/manifests/{mdigest}"),
        &[],
        b"",
    );
    assert_eq!(a.status, 405);
    assert_eq!(a.error_code(), "UNSUPPORTED");
    reg.assert_blobs_intact();
}

#[test]
fn htpasswd_asks_for_credentials_and_read_only_refuses_writes() {
    let d = Daemon::start();
    let store = tempfile::tempdir().unwrap();
    let root = store.path().join("root");
    let creds = htpasswd(store.path(), "keeper", "pw");
    let reg = BerthRegistry::start(&root, &["--htpasswd", creds.to_str().unwrap()]);
    let a = http(&reg.addr, "GET", "/v2/", &[], b"");
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("www-authenticate"),
        "Basic realm=\"berth-registry\""
    );
    assert_eq!(a.error_code(), "UNAUTHORIZED");
    let a = http(&reg.addr, "POST", "/v2/x/blobs/uploads/", &[], b"");
    assert_eq!(a.status, 401);
    // keeper:nope
    let a = authorized(&reg.addr, "GET", "/v2/", "Basic a2VlcGVyOm5vcGU=");
    assert_eq!(a.status, 401);

    d.busybox();
    let name = format!("{}/locked/bb:1", reg.addr);
    d.ok(&["tag", "busybox:latest", &name]);
    // (berth, not the docker CLI: docker 28 would ask for credentials on its terminal)
    let (code, _, err) = d.cli("berth", &["push", &name]);
    assert_eq!(code, 1, "pushed without credentials: {err}");
    assert!(err.contains("no basic auth credentials"), "{err}");
    let (code, _, err) = d.cli_with_input(
        "docker",
        &["login", "-u", "keeper", "--password-stdin", &reg.addr],
        b"pw\n",
    );
    assert_eq!(code, 0, "{err}");
    let out = d.ok(&["push", &name]);
    assert!(out.contains("digest: sha256:"), "{out}");
    drop(reg);

    // The same content served read-only: pulls work, pushes are refused.
    let reg = BerthRegistry::start(&root, &["--read-only"]);
    let ro_name = format!("{}/locked/bb:1", reg.addr);
    let other = format!("{}/locked/bb:2", reg.addr);
    d.ok(&["tag", "busybox:latest", &other]);
    let (code, _, err) = d.outcome(&["push", &other]);
    assert_ne!(code, 0, "pushed to a read-only registry");
    assert!(err.contains("read-only"), "{err}");
    let a = http(&reg.addr, "POST", "/v2/locked/bb/blobs/uploads/", &[], b"");
    assert_eq!(a.status, 405);
    assert_eq!(a.error_code(), "UNSUPPORTED");
    assert_eq!(
        a.json()["errors"][0]["message"],
        "the registry is read-only"
    );
    d.ok(&["rmi", &other]);
    let out = d.ok(&["pull", &ro_name]);
    assert!(out.contains("Digest: sha256:"), "{out}");
}

#[test]
fn gc_removes_unreferenced_blobs_past_the_grace_period_and_keeps_the_rest() {
    let store = tempfile::tempdir().unwrap();
    let root = store.path().join("root");
    let reg = BerthRegistry::start(&root, &[]);
    let addr = reg.addr.as_str();
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let cdigest = upload(addr, "kept", config);
    let layer = layer_tar(&[("f", b"kept")]);
    let ldigest = upload(addr, "kept", &layer);
    let m = manifest(
        (&cdigest, config.len()),
        &[(&ldigest, layer.len())],
        None,
        None,
    );
    assert_eq!(put_manifest(addr, "kept", "1", &m).status, 201);
    let orphan = upload(addr, "kept", b"nobody refers to me");
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();

    // `berth registry gc`, through the CLI. The default grace period keeps a young blob.
    let gc = |args: &[&str]| {
        let out = Command::new(bin_dir().join("berth"))
            .args(["registry", "gc", "--root"])
            .arg(&root)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let out = gc(&[]);
    assert!(out.contains("removed 0 blobs"), "{out}");
    let out = gc(&["--dry-run", "--grace-seconds", "0"]);
    assert!(
        out.contains(&format!("would remove blob {orphan}")),
        "{out}"
    );
    assert!(reg.blobs().contains_key(&hex(&orphan)));
    let out = gc(&["--grace-seconds", "0"]);
    assert!(out.contains(&format!("removed blob {orphan}")), "{out}");
    assert!(out.contains("removed 1 blobs"), "{out}");
    let blobs = reg.blobs();
    assert!(!blobs.contains_key(&hex(&orphan)));
    for kept in [&cdigest, &ldigest, &sha256_of(&m)] {
        assert!(blobs.contains_key(&hex(kept)), "{kept} was removed");
    }
    let a = http(addr, "HEAD", &format!("/v2/kept/blobs/{orphan}"), &[], b"");
    assert_eq!(a.status, 404);
    let a = http(addr, "GET", "/v2/kept/manifests/1", &[], b"");
    assert_eq!(a.body, m);
    reg.assert_blobs_intact();
}

#[test]
fn tls_serves_a_pull_through_berthd_and_skopeo_checks_the_certificate() {
    let d = Daemon::start();
    let store = tempfile::tempdir().unwrap();
    let (ca, cert, key) = berth_e2e::registry::make_tls(store.path(), "127.0.0.1");
    let reg = BerthRegistry::start(
        &store.path().join("root"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    // skopeo checks the certificate against the CA (no --dest-tls-verify=false).
    let certs = store.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(&ca, certs.join("ca.crt")).unwrap();
    let layout = oci_layout(
        &store.path().join("layout"),
        "1",
        &[LayoutImage {
            architecture: host_arch().into(),
            layers: vec![(Compression::Gzip, layer_tar(&[("tls", b"yes")]))],
        }],
        false,
    );
    let out = Command::new("skopeo")
        .args(["copy", "--dest-cert-dir", certs.to_str().unwrap()])
        .arg(format!("oci:{}:1", layout.display()))
        .arg(format!("docker://{}/secure/app:1", reg.addr))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Plain HTTP on the TLS port gets no answer of the registry's.
    let mut s = TcpStream::connect(&reg.addr).unwrap();
    s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(!text(&raw).contains("registry/2.0"), "{}", text(&raw));
    let name = format!("{}/secure/app:1", reg.addr);
    let out = d.ok(&["pull", &name]);
    assert!(out.contains("Digest: sha256:"), "{out}");
}

#[test]
fn deletes_when_enabled_and_an_oversized_manifest_is_refused() {
    let store = tempfile::tempdir().unwrap();
    let root = store.path().join("root");
    let reg = BerthRegistry::start(&root, &["--delete-enabled"]);
    let addr = reg.addr.as_str();
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let cdigest = upload(addr, "gone", config);
    let layer = layer_tar(&[("f", b"bye")]);
    let ldigest = upload(addr, "gone", &layer);
    let m = manifest(
        (&cdigest, config.len()),
        &[(&ldigest, layer.len())],
        None,
        None,
    );
    let mdigest = sha256_of(&m);
    assert_eq!(put_manifest(addr, "gone", "1", &m).status, 201);

    // More than 4 MiB: 413 from the head, nothing stored.
    let before = reg.blobs().len();
    let a = http_head_only(addr, "PUT", "/v2/gone/manifests/big", (4 << 20) + 1);
    assert_eq!(a.status, 413);
    assert_eq!(a.error_code(), "MANIFEST_INVALID");
    assert_eq!(reg.blobs().len(), before);
    let a = http(addr, "GET", "/v2/gone/tags/list", &[], b"");
    assert_eq!(a.json()["tags"], serde_json::json!(["1"]));

    let a = http(addr, "DELETE", "/v2/gone/manifests/1", &[], b"");
    assert_eq!(a.status, 400, "by tag");
    let a = http(
        addr,
        "DELETE",
        &format!("/v2/gone/manifests/{mdigest}"),
        &[],
        b"",
    );
    assert_eq!(a.status, 202, "{}", text(&a.body));
    let a = http(addr, "GET", "/v2/gone/manifests/1", &[], b"");
    assert_eq!(a.error_code(), "MANIFEST_UNKNOWN");
    let a = http(addr, "GET", "/v2/gone/tags/list", &[], b"");
    assert_eq!(a.json()["tags"], serde_json::json!([]));
    let a = http(
        addr,
        "DELETE",
        &format!("/v2/gone/manifests/{mdigest}"),
        &[],
        b"",
    );
    assert_eq!(a.status, 404);
    let a = http(
        addr,
        "DELETE",
        &format!("/v2/gone/blobs/{ldigest}"),
        &[],
        b"",
    );
    assert_eq!(a.status, 202);
    let a = http(addr, "HEAD", &format!("/v2/gone/blobs/{ldigest}"), &[], b"");
    assert_eq!(a.status, 404);

    // Nothing refers to the three any more: gc takes them.
    let out = Command::new(bin_dir().join("berth-registry"))
        .args(["gc", "--grace-seconds", "0", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("removed 3 blobs"),
        "{}",
        text(&out.stdout)
    );
    assert!(reg.blobs().is_empty());
}

/// An htpasswd file of several users (bcrypt cost 4).
fn users(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("users.htpasswd");
    let lines: String = users
        .iter()
        .map(|(u, p)| format!("{u}:{}\n", bcrypt::hash(p, 4).unwrap()))
        .collect();
    std::fs::write(&path, lines).unwrap();
    path
}

/// `Basic <base64(user:password)>`.
fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b}")
}

/// `GET /token?<query>`, with basic credentials when given.
fn token_answer(addr: &str, query: &str, credentials: Option<&str>) -> Answer {
    let auth: Vec<(&str, &str)> = credentials
        .map(|c| ("Authorization", c))
        .into_iter()
        .collect();
    http(addr, "GET", &format!("/token?{query}"), &auth, b"")
}

/// An access token for `scope`, by `GET /token` (anonymous without credentials).
fn token(addr: &str, scope: &str, credentials: Option<&str>) -> String {
    let a = token_answer(
        addr,
        &format!("service=berth-registry&scope={scope}"),
        credentials,
    );
    assert_eq!(a.status, 200, "{}", text(&a.body));
    a.json()["token"].as_str().unwrap().to_string()
}

/// `berth-registry serve` with these arguments must refuse to start, saying `needle`.
fn serve_refused(root: &Path, args: &[&str], needle: &str) {
    let out = Command::new(bin_dir().join("berth-registry"))
        .args(["serve", "--addr", "127.0.0.1:0", "--root"])
        .arg(root)
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "started with {args:?}");
    let err = text(&out.stderr);
    assert!(err.contains(needle), "{args:?}: {err}");
}

#[test]
fn token_mode_challenges_issues_scoped_tokens_and_refuses_bad_ones() {
    let store = tempfile::tempdir().unwrap();
    let root = store.path().join("root");
    let htpasswd = users(
        store.path(),
        &[("keeper", "pw"), ("reader", "pw2"), ("mover", "pw3")],
    );
    let access = store.path().join("access");
    std::fs::write(
        &access,
        "keeper * pull,push\nreader * pull\nmover dest/* pull,push\n",
    )
    .unwrap();
    let (h, acc) = (htpasswd.to_str().unwrap(), access.to_str().unwrap());

    // What would not be applied is refused, and so is a malformed access file.
    serve_refused(&root, &["--auth", "token"], "--auth token needs --htpasswd");
    serve_refused(
        &root,
        &["--htpasswd", h, "--anonymous-pull"],
        "--anonymous-pull applies to --auth token only",
    );
    let bad = store.path().join("bad-access");
    std::fs::write(&bad, "keeper * pull\nkeeper team pull,write\n").unwrap();
    serve_refused(
        &root,
        &[
            "--auth",
            "token",
            "--htpasswd",
            h,
            "--access",
            bad.to_str().unwrap(),
        ],
        "access file line 2",
    );

    let reg = BerthRegistry::start(
        &root,
        &["--auth", "token", "--htpasswd", h, "--access", acc],
    );
    let addr = reg.addr.as_str();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(root.join("token.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // The challenges name the realm, the service and what the request needs.
    let realm = format!("Bearer realm=\"http://{addr}/token\",service=\"berth-registry\"");
    let a = http(addr, "GET", "/v2/", &[], b"");
    assert_eq!(a.status, 401);
    assert_eq!(a.header("www-authenticate"), realm);
    assert_eq!(a.error_code(), "UNAUTHORIZED");
    for (method, path, scope) in [
        ("GET", "/v2/a/b/manifests/1", "repository:a/b:pull"),
        ("POST", "/v2/a/b/blobs/uploads/", "repository:a/b:pull,push"),
        ("GET", "/v2/_catalog", "registry:catalog:*"),
    ] {
        let a = http(addr, method, path, &[], b"");
        assert_eq!(a.status, 401, "{method} {path}");
        assert_eq!(
            a.header("www-authenticate"),
            format!("{realm},scope=\"{scope}\""),
            "{method} {path}"
        );
    }

    // Anonymous: a token that grants nothing.
    let anon = token(addr, "repository:a/b:pull", None);
    let bearer = |t: &str| format!("Bearer {t}");
    let a = authorized(addr, "GET", "/v2/", &bearer(&anon));
    assert_eq!(a.status, 200);
    let a = authorized(addr, "GET", "/v2/a/b/tags/list", &bearer(&anon));
    assert_eq!(a.status, 401);
    assert_eq!(a.error_code(), "DENIED");
    assert!(
        a.header("www-authenticate")
            .ends_with(",error=\"insufficient_scope\""),
        "{}",
        a.header("www-authenticate")
    );

    // Refused token requests.
    let scope = "service=berth-registry&scope=repository:a/b:pull";
    for (query, credentials) in [
        (scope, Some(basic("keeper", "wrong"))),
        (scope, Some(basic("nobody", "pw"))),
        (scope, Some("Bearer x".to_string())),
        ("service=elsewhere&scope=repository:a/b:pull", None),
        ("scope=repository:a/b:pull", None),
        ("service=berth-registry&scope=repository:A/B:pull", None),
        ("service=berth-registry&scope=repository:a/../b:pull", None),
    ] {
        let a = token_answer(addr, query, credentials.as_deref());
        assert_eq!(a.status, 401, "{query} {credentials:?}: {}", text(&a.body));
        assert_eq!(a.error_code(), "UNAUTHORIZED");
    }

    // keeper pushes; reader asked for push is granted pull only.
    let keeper = token(
        addr,
        "repository:a/b:pull,push",
        Some(&basic("keeper", "pw")),
    );
    let k = bearer(&keeper);
    let a = authorized(addr, "POST", "/v2/a/b/blobs/uploads/", &k);
    assert_eq!(a.status, 202, "{}", text(&a.body));
    let a = authorized(addr, "GET", "/v2/other/blobs/uploads/x", &k);
    assert_eq!(a.status, 401, "a token for a/b is not one for other");
    let reader = token(
        addr,
        "repository:a/b:pull,push",
        Some(&basic("reader", "pw2")),
    );
    let r = bearer(&reader);
    let a = authorized(addr, "POST", "/v2/a/b/blobs/uploads/", &r);
    assert_eq!(a.status, 401);
    assert_eq!(a.error_code(), "DENIED");
    let a = authorized(addr, "GET", "/v2/a/b/tags/list", &r);
    assert!(
        a.status == 200 || a.status == 404,
        "pull granted: {}",
        text(&a.body)
    );
    let catalog = token(addr, "registry:catalog:*", Some(&basic("keeper", "pw")));
    let a = authorized(addr, "GET", "/v2/_catalog", &bearer(&catalog));
    assert_eq!(a.status, 200, "{}", text(&a.body));

    // A cross-repository mount needs pull on the repository mounted from: without it the
    // POST starts a plain upload instead.
    let blob = b"mounted or not";
    let digest = sha256_of(blob);
    let a = authorized(addr, "POST", "/v2/a/b/blobs/uploads/", &k);
    let location = a.header("location").to_string();
    let a = http(
        addr,
        "PUT",
        &format!("{location}?digest={digest}"),
        &[("Authorization", &k)],
        blob,
    );
    assert_eq!(a.status, 201, "{}", text(&a.body));
    let mount = format!("/v2/dest/x/blobs/uploads/?mount={digest}&from=a/b");
    let mover = token(
        addr,
        "repository:dest/x:pull,push",
        Some(&basic("mover", "pw3")),
    );
    let a = authorized(addr, "POST", &mount, &bearer(&mover));
    assert_eq!(a.status, 202, "mover may not read a/b: {}", text(&a.body));
    let both = token_answer(
        addr,
        "service=berth-registry&scope=repository:dest/x:pull,push&scope=repository:a/b:pull",
        Some(&basic("keeper", "pw")),
    )
    .json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let a = authorized(addr, "POST", &mount, &bearer(&both));
    assert_eq!(a.status, 201, "keeper mounts: {}", text(&a.body));

    // A token altered anywhere is refused.
    let (signed, sig) = reader.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    for bad in [
        format!("{signed}.{flipped}{}", &sig[1..]),
        format!("{signed}x.{sig}"),
        keeper.replace('.', ""),
        "not-a-token".to_string(),
    ] {
        let a = authorized(addr, "GET", "/v2/", &bearer(&bad));
        assert_eq!(a.status, 401, "{bad}");
        assert!(a
            .header("www-authenticate")
            .contains("error=\"invalid_token\""));
    }

    // The OAuth2 form: a password grant with a refresh token, then a refresh grant.
    let form = |body: &str| {
        http(
            addr,
            "POST",
            "/token",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
    };
    let a = form("grant_type=password&username=keeper&password=pw&service=berth-registry&client_id=test&access_type=offline&scope=repository%3Aa%2Fb%3Apull");
    assert_eq!(a.status, 200, "{}", text(&a.body));
    let j = a.json();
    assert_eq!(j["scope"], "repository:a/b:pull");
    assert_eq!(j["expires_in"], 300);
    let refresh = j["refresh_token"].as_str().unwrap().to_string();
    let a = form(&format!(
        "grant_type=refresh_token&refresh_token={refresh}&service=berth-registry&client_id=test&scope=repository%3Aa%2Fb%3Apush"
    ));
    assert_eq!(a.status, 200, "{}", text(&a.body));
    assert_eq!(a.json()["scope"], "repository:a/b:push");
    let pushing = bearer(a.json()["access_token"].as_str().unwrap());
    let a = authorized(addr, "POST", "/v2/a/b/blobs/uploads/", &pushing);
    assert_eq!(a.status, 202, "{}", text(&a.body));
    // A refresh token is no access token, an access token no refresh token.
    let a = authorized(addr, "GET", "/v2/", &bearer(&refresh));
    assert_eq!(a.status, 401);
    let a = form(&format!(
        "grant_type=refresh_token&refresh_token={keeper}&service=berth-registry&client_id=test"
    ));
    assert_eq!(a.status, 401);
    let a = form(
        "grant_type=password&username=keeper&password=nope&service=berth-registry&client_id=test",
    );
    assert_eq!(a.status, 401);
    let a = form("grant_type=implicit&service=berth-registry");
    assert_eq!(a.status, 400);
    // A form announced larger than the limit is refused from its head.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        b"POST /token HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_answer(s).status, 413);

    // A renewed refresh token ends when the first did: the password was given once.
    let claims = |jwt: &str| -> serde_json::Value {
        use base64::Engine;
        let payload = jwt.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    let a = form(&format!(
        "grant_type=refresh_token&refresh_token={refresh}&service=berth-registry&client_id=test&access_type=offline"
    ));
    assert_eq!(a.status, 200, "{}", text(&a.body));
    let renewed = a.json()["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(renewed, refresh);
    assert_eq!(claims(&renewed)["exp"], claims(&refresh)["exp"]);
    // A new password ends the refresh tokens given for the old one.
    drop(reg);
    users(
        store.path(),
        &[("keeper", "new"), ("reader", "pw2"), ("mover", "pw3")],
    );
    let reg = BerthRegistry::start(
        &root,
        &["--auth", "token", "--htpasswd", h, "--access", acc],
    );
    let a = http(
        &reg.addr,
        "POST",
        "/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("grant_type=refresh_token&refresh_token={renewed}&service=berth-registry&client_id=test").as_bytes(),
    );
    assert_eq!(a.status, 401, "{}", text(&a.body));
    let a = http(
        &reg.addr,
        "POST",
        "/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"grant_type=password&username=keeper&password=new&service=berth-registry&client_id=test&access_type=offline",
    );
    assert_eq!(a.status, 200, "{}", text(&a.body));
    assert!(a.json()["refresh_token"].is_string());
}

#[test]
fn token_mode_docker_login_push_and_pull_through_berthd() {
    let d = Daemon::start();
    let store = tempfile::tempdir().unwrap();
    let htpasswd = users(store.path(), &[("keeper", "pw"), ("reader", "pw2")]);
    let access = store.path().join("access");
    std::fs::write(&access, "keeper * pull,push\n* * pull\n").unwrap();
    let reg = BerthRegistry::start(
        &store.path().join("root"),
        &[
            "--auth",
            "token",
            "--htpasswd",
            htpasswd.to_str().unwrap(),
            "--access",
            access.to_str().unwrap(),
        ],
    );
    d.busybox();
    let name = format!("{}/team/bb:1", reg.addr);
    d.ok(&["tag", "busybox:latest", &name]);
    // (berth, not the docker CLI: docker 28 would ask for credentials on its terminal)
    let (code, _, err) = d.cli("berth", &["push", &name]);
    assert_ne!(code, 0, "pushed anonymously: {err}");
    let log = || std::fs::read_to_string(store.path().join("root.log")).unwrap_or_default();
    // (the first refusal answers a HEAD: no body, so the client names the status)
    assert!(err.contains("unauthorized"), "{err}\n{}", log());
    let login_by = |cli: &str, user: &str, password: &str| {
        d.cli_with_input(
            cli,
            &["login", "-u", user, "--password-stdin", &reg.addr],
            format!("{password}\n").as_bytes(),
        )
    };
    let login = |user: &str, password: &str| login_by("docker", user, password);
    let (code, _, err) = login("keeper", "wrong");
    assert_ne!(code, 0, "logged in with a wrong password: {err}");
    let (code, _, err) = login("keeper", "pw");
    assert_eq!(code, 0, "{err}");
    // The token server gave a refresh token: the docker CLI keeps it instead of the
    // password, and berthd's pushes and pulls trade it for tokens.
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(d.dir.path().join("docker-config/config.json")).unwrap(),
    )
    .unwrap();
    let entry = &config["auths"][reg.addr.as_str()];
    assert!(
        entry["identitytoken"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{config}"
    );
    assert_eq!(
        entry["auth"], "a2VlcGVyOg==",
        "keeper: with no password: {config}"
    );
    let out = d.ok(&["push", &name]);
    let pushed = pushed_digest(&out);
    d.ok(&["rmi", &name]);
    d.ok(&["rmi", "busybox:latest"]);
    let out = d.ok(&["pull", &name]);
    assert!(out.contains(&format!("Digest: {pushed}")), "{out}");
    assert_eq!(d.ok(&["run", "--rm", &name, "echo", "back"]), "back\n");

    // reader may pull, not push; berth login keeps the refresh token as docker's does.
    let (code, _, err) = login_by("berth", "reader", "pw2");
    assert_eq!(code, 0, "{err}");
    let config = std::fs::read_to_string(d.dir.path().join("docker-config/config.json")).unwrap();
    assert!(config.contains("identitytoken"), "{config}");
    assert!(
        config.contains("cmVhZGVyOg=="),
        "reader: with no password: {config}"
    );
    let other = format!("{}/team/bb:2", reg.addr);
    d.ok(&["tag", &name, &other]);
    let (code, _, err) = d.outcome(&["push", &other]);
    assert_ne!(code, 0, "reader pushed");
    assert!(err.contains("denied"), "{err}\n{}", log());
    d.ok(&["rmi", &name]);
    let out = d.ok(&["pull", &name]);
    assert!(out.contains(&format!("Digest: {pushed}")), "{out}");
    let a = http(&reg.addr, "HEAD", "/v2/team/bb/manifests/2", &[], b"");
    assert_eq!(a.status, 401, "no anonymous look either");
    let t = token(
        &reg.addr,
        "repository:team/bb:pull",
        Some(&basic("reader", "pw2")),
    );
    let a = authorized(
        &reg.addr,
        "HEAD",
        "/v2/team/bb/manifests/2",
        &format!("Bearer {t}"),
    );
    assert_eq!(a.status, 404, "tag 2 was never pushed");
}

#[test]
fn token_mode_over_tls_with_skopeo_credentials_and_anonymous_pull() {
    let d = Daemon::start();
    let store = tempfile::tempdir().unwrap();
    let root = store.path().join("root");
    let (ca, cert, key) = berth_e2e::registry::make_tls(store.path(), "127.0.0.1");
    let certs = store.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(&ca, certs.join("ca.crt")).unwrap();
    let certs = certs.to_str().unwrap().to_string();
    let htpasswd = htpasswd(store.path(), "keeper", "pw");
    let args = [
        "--auth",
        "token",
        "--htpasswd",
        htpasswd.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let reg = BerthRegistry::start(&root, &args);
    let layout = oci_layout(
        &store.path().join("layout"),
        "1",
        &[LayoutImage {
            architecture: host_arch().into(),
            layers: vec![(Compression::Gzip, layer_tar(&[("token", b"yes")]))],
        }],
        false,
    );
    let src = format!("oci:{}:1", layout.display());
    let dest = format!("docker://{}/secure/app:1", reg.addr);
    let skopeo = |args: &[&str]| {
        let out = Command::new("skopeo").args(args).output().unwrap();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let (ok, _, err) = skopeo(&["copy", "--dest-cert-dir", &certs, &src, &dest]);
    assert!(!ok, "copied without credentials");
    assert!(err.contains("401") || err.contains("denied"), "{err}");
    let (ok, _, err) = skopeo(&[
        "copy",
        "--dest-cert-dir",
        &certs,
        "--dest-creds",
        "keeper:pw",
        &src,
        &dest,
    ]);
    assert!(ok, "{err}");
    let out_dir = store.path().join("out");
    let out_ref = format!("oci:{}:1", out_dir.display());
    let (ok, _, err) = skopeo(&["copy", "--src-cert-dir", &certs, &dest, &out_ref]);
    assert!(!ok, "copied out without credentials");
    let (ok, _, err2) = skopeo(&[
        "copy",
        "--src-cert-dir",
        &certs,
        "--src-creds",
        "keeper:pw",
        &dest,
        &out_ref,
    ]);
    assert!(ok, "{err}{err2}");
    let (ok, raw, err) = skopeo(&[
        "inspect",
        "--raw",
        "--cert-dir",
        &certs,
        "--creds",
        "keeper:pw",
        &dest,
    ]);
    assert!(ok, "{err}");
    let (ok, copied, err) = skopeo(&["inspect", "--raw", &out_ref]);
    assert!(ok, "{err}");
    assert_eq!(raw, copied, "the same manifest out as in");
    drop(reg);

    // The same root with --anonymous-pull: pulls without credentials (skopeo, and berthd
    // fetching its token from the https realm), pushes still need them.
    let mut anon_args = args.to_vec();
    anon_args.push("--anonymous-pull");
    let reg = BerthRegistry::start(&root, &anon_args);
    let dest = format!("docker://{}/secure/app:1", reg.addr);
    let (ok, raw_anon, err) = skopeo(&["inspect", "--raw", "--cert-dir", &certs, &dest]);
    assert!(ok, "{err}");
    assert_eq!(raw_anon, raw);
    let again = format!("docker://{}/secure/app:2", reg.addr);
    let (ok, _, _) = skopeo(&["copy", "--dest-cert-dir", &certs, &src, &again]);
    assert!(!ok, "pushed anonymously");
    let name = format!("{}/secure/app:1", reg.addr);
    let out = d.ok(&["pull", &name]);
    assert!(out.contains("Digest: sha256:"), "{out}");
}

#[test]
fn connections_past_the_cap_wait_in_the_backlog_until_one_ends() {
    let store = tempfile::tempdir().unwrap();
    let reg = BerthRegistry::start(&store.path().join("root"), &[]);
    // 512 connections that say nothing hold every slot (the server's cap).
    let mut idle: Vec<TcpStream> = (0..512)
        .map(|_| TcpStream::connect(&reg.addr).unwrap())
        .collect();
    let request = format!(
        "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        reg.addr
    );
    let mut waiting = TcpStream::connect(&reg.addr).unwrap();
    waiting.write_all(request.as_bytes()).unwrap();
    // Not served while the cap is reached (a bounded look: an answer would come in
    // milliseconds).
    waiting
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    let e = waiting.read(&mut byte).expect_err("served past the cap");
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{e}"
    );
    // One ends: the waiting one is served.
    drop(idle.pop());
    waiting
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let a = read_answer(waiting);
    assert_eq!(a.status, 200, "{}", text(&a.body));
    drop(idle);
    assert_eq!(http(&reg.addr, "GET", "/v2/", &[], b"").status, 200);
}

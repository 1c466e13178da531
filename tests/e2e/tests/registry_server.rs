//! berth's own registry (`berth-registry serve`), driven by the docker CLI through berthd,
//! by skopeo, and by raw HTTP for what the clients do not exercise (chunks, wrong digests,
//! path tricks, pagination, referrers, gc).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use berth_e2e::registry::{
    free_port, htpasswd, layer_tar, oci_layout, sha256_of, skopeo_copy, skopeo_digest, Compression,
    LayoutImage,
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
    let pushed = out
        .lines()
        .find_map(|l| l.strip_prefix("1: digest: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest line: {out}"))
        .to_string();
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
    let a = http(
        &reg.addr,
        "GET",
        "/v2/",
        &[("Authorization", "Basic a2VlcGVyOm5vcGU=")],
        b"",
    );
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

//! Pulls from real registries on this machine: Debian's `docker-registry` (Docker's own
//! distribution 2.8) seeded by `skopeo`, through berthd, by the docker CLI and by berth;
//! and from a hostile one the tests serve themselves ([`Hostile`]): bombs, malformed
//! manifests, redirects.

use std::collections::BTreeSet;
use std::process::Command;

use berth_e2e::registry::{
    gzip_bomb, layer_tar, make_tls, oci_layout, pushed_digest, sha256_of, skopeo_copy,
    skopeo_digest, Compression, CutProxy, DockerRegistry, Hostile, LayoutImage, MemImage,
    RegistryOptions, Reply, OCI_MANIFEST,
};
use berth_e2e::{busybox_rootfs_tar, text, Daemon};

/// `busybox:latest` of `d`, copied by skopeo into `reg` as `repo:tag`; returns the
/// manifest digest the registry holds.
fn seed_busybox(d: &Daemon, reg: &DockerRegistry, repo: &str) -> String {
    d.busybox();
    let archive = d.dir.path().join("busybox-save.tar");
    d.ok(&["save", "-o", archive.to_str().unwrap(), "busybox:latest"]);
    let dest = format!("docker://{}/{repo}", reg.addr);
    skopeo_copy(&format!("docker-archive:{}", archive.display()), &dest, &[]);
    d.ok(&["rmi", "busybox:latest"]);
    skopeo_digest(&dest)
}

/// An amd64 image of `layers`, copied by skopeo into the registry at `addr` as
/// `<repo>:1` (its OCI layout made under `d`'s directory).
fn seed_layers(d: &Daemon, addr: &str, repo: &str, layers: Vec<(Compression, Vec<u8>)>) {
    let layout = oci_layout(
        &d.dir.path().join(repo),
        "1",
        &[LayoutImage {
            architecture: "amd64".into(),
            layers,
        }],
        false,
    );
    skopeo_copy(
        &format!("oci:{}:1", layout.display()),
        &format!("docker://{addr}/{repo}:1"),
        &[],
    );
}

fn busybox_layer() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::read(busybox_rootfs_tar(dir.path())).unwrap()
}

#[test]
fn docker_pull_through_berthd_keeps_the_registry_digest() {
    let d = Daemon::start();
    let reg = DockerRegistry::start(d.dir.path(), RegistryOptions::default());
    let digest = seed_busybox(&d, &reg, "test/busybox:1");
    let name = format!("{}/test/busybox:1", reg.addr);

    let (code, out, err) = d.outcome(&["pull", &name]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1: Pulling from test/busybox"), "{out}");
    assert!(out.contains(": Pull complete"), "{out}");
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}")),
        "{out}"
    );
    assert!(out.trim_end().ends_with(&name), "{out}");

    let repo_digests = d.ok(&["image", "inspect", "-f", "{{json .RepoDigests}}", &name]);
    assert_eq!(
        repo_digests.trim(),
        format!(r#"["{}/test/busybox@{digest}"]"#, reg.addr)
    );
    let listed = d.ok(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}} {{.Tag}} {{.Digest}}",
    ]);
    assert!(
        listed.contains(&format!("{}/test/busybox 1 {digest}", reg.addr)),
        "{listed}"
    );
    assert_eq!(d.ok(&["run", "--rm", &name, "echo", "pulled"]), "pulled\n");

    // Again: nothing to download.
    let out = d.ok(&["pull", &name]);
    assert!(
        out.contains("Already exists") || !out.contains("Pull complete"),
        "{out}"
    );
    assert!(
        out.contains(&format!("Status: Image is up to date for {name}")),
        "{out}"
    );

    // By digest, after the tag is gone.
    d.ok(&["rmi", &name]);
    let by_digest = format!("{}/test/busybox@{digest}", reg.addr);
    let out = d.ok(&["pull", &by_digest]);
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert_eq!(
        d.ok(&["run", "--rm", &by_digest, "echo", "by-digest"]),
        "by-digest\n"
    );
}

#[test]
fn berth_run_pulls_a_missing_image_and_berth_pull_prints_the_name() {
    let d = Daemon::start();
    let reg = DockerRegistry::start(d.dir.path(), RegistryOptions::default());
    seed_busybox(&d, &reg, "x:1");
    let name = format!("{}/x:1", reg.addr);
    let since = berth_e2e::api::now();
    let (code, out, err) = d.cli("berth", &["run", "--rm", &name, "echo", "hi"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hi\n");
    assert!(
        err.starts_with(&format!("Unable to find image '{name}' locally\n")),
        "{err}"
    );
    assert!(err.contains("Pull complete"), "{err}");
    let until = berth_e2e::api::now();
    let events = d.events(
        &since,
        &until,
        &["type=image"],
        "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}",
    );
    assert!(
        events.contains(&format!("pull {name} {}/x", reg.addr)),
        "{events}"
    );

    let (code, out, err) = d.cli("berth", &["pull", "-q", &name]);
    assert_eq!(
        (code, out.as_str()),
        (0, format!("{name}\n").as_str()),
        "{err}"
    );
    // Every tag of the repository.
    skopeo_copy(
        &format!("docker://{name}"),
        &format!("docker://{}/x:2", reg.addr),
        &["--src-tls-verify=false"],
    );
    let (code, out, err) = d.cli("berth", &["pull", "-a", &format!("{}/x", reg.addr)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2: Pulling from x"), "{out}");
    assert!(out.ends_with(&format!("\n{}/x\n", reg.addr)), "{out}");
    let tags = d.ok(&["images", "--format", "{{.Tag}}", &format!("{}/x", reg.addr)]);
    assert_eq!(tags, "1\n2\n");
    // The docker CLI says the same in its own words.
    let (code, _, err) = d.cli("berth", &["pull", &format!("{}/x:nope", reg.addr)]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!("Error response from daemon: manifest for {}/x:nope not found: manifest unknown: manifest unknown\n", reg.addr)
    );
    let (code, _, derr) = d.outcome(&["pull", &format!("{}/x:nope", reg.addr)]);
    assert_eq!(code, 1);
    assert_eq!(derr, err);
    // A registry that is not there.
    let port = berth_e2e::registry::free_port("127.0.0.1");
    let (code, _, err) = d.outcome(&["pull", &format!("127.0.0.1:{port}/x:1")]);
    assert_eq!(code, 1);
    assert!(err.contains("connection refused"), "{err}");
}

#[test]
fn a_manifest_list_is_pulled_for_the_hosts_platform_or_the_one_asked() {
    let d = Daemon::start();
    let reg = DockerRegistry::start(d.dir.path(), RegistryOptions::default());
    let base = busybox_layer();
    let images: Vec<LayoutImage> = ["amd64", "arm64"]
        .iter()
        .map(|arch| LayoutImage {
            architecture: arch.to_string(),
            layers: vec![
                (Compression::Gzip, base.clone()),
                (Compression::Gzip, layer_tar(&[("arch", arch.as_bytes())])),
            ],
        })
        .collect();
    let layout = oci_layout(&d.dir.path().join("multi"), "1", &images, true);
    let dest = format!("docker://{}/multi:1", reg.addr);
    skopeo_copy(&format!("oci:{}:1", layout.display()), &dest, &[]);
    let index_digest = skopeo_digest(&dest);
    let name = format!("{}/multi:1", reg.addr);

    d.ok(&["pull", &name]);
    assert_eq!(
        d.ok(&["image", "inspect", "-f", "{{.Architecture}}", &name]),
        "amd64\n"
    );
    assert_eq!(d.ok(&["run", "--rm", &name, "cat", "/arch"]), "amd64");
    let repo_digests = d.ok(&["image", "inspect", "-f", "{{json .RepoDigests}}", &name]);
    assert!(
        repo_digests.contains(&index_digest),
        "{repo_digests} vs {index_digest}"
    );

    d.ok(&["rmi", &name]);
    let (code, _, err) = d.cli("berth", &["pull", "--platform", "linux/arm64", &name]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        d.ok(&["image", "inspect", "-f", "{{.Architecture}}", &name]),
        "arm64\n"
    );

    let (code, _, err) = d.outcome(&["pull", "--platform", "linux/s390x", &name]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no matching manifest for linux/s390x in the manifest list entries"),
        "{err}"
    );

    // An image of one platform, without an index: `--platform` is checked against its
    // config.
    let single = oci_layout(&d.dir.path().join("single"), "1", &images[1..], false);
    let dest = format!("docker://{}/single:1", reg.addr);
    skopeo_copy(&format!("oci:{}:1", single.display()), &dest, &[]);
    let name = format!("{}/single:1", reg.addr);
    let (code, _, err) = d.outcome(&["pull", "--platform", "linux/amd64", &name]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "does not match the specified platform: wanted linux/amd64, actual: linux/arm64"
        ),
        "{err}"
    );
    let (code, _, err) = d.outcome(&["image", "inspect", &name]);
    assert_ne!(code, 0, "a refused pull stored the image: {err}");
    d.ok(&["pull", "--platform", "linux/arm64", &name]);
    assert_eq!(
        d.ok(&["image", "inspect", "-f", "{{.Architecture}}", &name]),
        "arm64\n"
    );
}

#[test]
fn gzip_zstd_and_plain_layers_arrive_together() {
    let d = Daemon::start();
    let reg = DockerRegistry::start(d.dir.path(), RegistryOptions::default());
    let mut layers = vec![(Compression::Gzip, busybox_layer())];
    for (i, c) in [
        Compression::None,
        Compression::Zstd,
        Compression::Gzip,
        Compression::Zstd,
    ]
    .into_iter()
    .enumerate()
    {
        let content = format!("layer {i}\n");
        layers.push((c, layer_tar(&[(&format!("l{i}"), content.as_bytes())])));
    }
    seed_layers(&d, &reg.addr, "five", layers);
    let name = format!("{}/five:1", reg.addr);
    let (code, out, err) = d.cli("berth", &["pull", &name]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("Pull complete").count(), 5, "{out}");
    assert_eq!(
        d.ok(&["run", "--rm", &name, "cat", "/l0", "/l1", "/l2", "/l3"]),
        "layer 0\nlayer 1\nlayer 2\nlayer 3\n"
    );
}

#[test]
fn a_corrupt_blob_fails_the_pull_and_leaves_nothing_behind() {
    let d = Daemon::start();
    let reg = DockerRegistry::start(d.dir.path(), RegistryOptions::default());
    let big: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let tar = layer_tar(&[("big", &big)]);
    seed_layers(&d, &reg.addr, "bad", vec![(Compression::Gzip, tar)]);
    // Flip bytes in the middle of the stored layer (same size).
    let manifest: serde_json::Value = serde_json::from_slice(
        &Command::new("skopeo")
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{}/bad:1", reg.addr),
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let path = reg.blob_path(&layer);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0xa5;
    }
    std::fs::write(&path, &bytes).unwrap();

    let store = d.root().join("image");
    let staging = || -> std::collections::BTreeSet<String> {
        std::fs::read_dir(store.join("snapshots"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("tmp-"))
            .collect()
    };
    // (Spare directories for containers are tmp-* too.)
    let spares = staging();
    let before = d.ok(&["images", "-q"]);
    let (code, _, err) = d.outcome(&["pull", &format!("{}/bad:1", reg.addr)]);
    assert_eq!(code, 1);
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(err.contains(&layer), "{err}");
    assert_eq!(d.ok(&["images", "-q"]), before);
    assert_eq!(staging(), spares, "staging left");
    let ingest: Vec<_> = std::fs::read_dir(store.join("ingest"))
        .unwrap()
        .flatten()
        .collect();
    assert!(ingest.is_empty(), "ingest left: {ingest:?}");
    let hex = layer.strip_prefix("sha256:").unwrap();
    assert!(!store.join("blobs/sha256").join(hex).exists());
}

#[test]
fn a_download_cut_mid_layer_resumes_where_it_stopped() {
    let d = Daemon::start();
    let reg = DockerRegistry::start(d.dir.path(), RegistryOptions::default());
    // 3 MiB that gzip cannot shrink.
    let mut x = 88172645463325252u64;
    let big: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    seed_layers(
        &d,
        &reg.addr,
        "cut",
        vec![
            (Compression::Gzip, busybox_layer()),
            (Compression::Gzip, layer_tar(&[("big", &big)])),
        ],
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &Command::new("skopeo")
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{}/cut:1", reg.addr),
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let layer = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let size = manifest["layers"][1]["size"].as_u64().unwrap();
    let proxy = CutProxy::start(&reg.addr, &format!("/blobs/{layer}"), 1 << 20);
    let name = format!("{}/cut:1", proxy.addr);
    let (code, _, err) = d.cli("berth", &["pull", &name]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        d.ok(&["run", "--rm", &name, "sh", "-c", "wc -c < /big"])
            .trim(),
        (3 << 20).to_string()
    );
    let seen = proxy.seen.lock().unwrap().clone();
    let blob_requests: Vec<_> = seen
        .requests
        .iter()
        .filter(|(l, _)| l.starts_with("GET ") && l.contains(&layer))
        .collect();
    assert_eq!(blob_requests.len(), 2, "{seen:?}");
    assert_eq!(blob_requests[0].1, None);
    let resumed_at: u64 = blob_requests[1]
        .1
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("second request without a range: {seen:?}"));
    assert!(
        resumed_at > 512 << 10 && resumed_at < 1 << 20,
        "{resumed_at}"
    );
    let bytes: u64 = seen
        .forwarded
        .iter()
        .filter(|(l, _)| l.contains(&layer))
        .map(|(_, n)| n)
        .sum();
    // What arrived before the cut was not fetched again (headers aside).
    assert!(
        bytes < size + 4096,
        "{bytes} bytes forwarded for a {size}-byte layer"
    );
}

/// An address on a veth link of this test's (not loopback, so not insecure by default).
struct DummyAddr {
    link: String,
    ip: String,
}

impl DummyAddr {
    fn new() -> DummyAddr {
        let n = std::process::id() % 250;
        let link = format!("brg{n}");
        let ip = format!("10.254.{n}.1");
        let _ = Command::new("ip").args(["link", "del", &link]).output();
        for args in [
            vec![
                "link",
                "add",
                &link,
                "type",
                "veth",
                "peer",
                "name",
                &format!("{link}p"),
            ],
            vec!["addr", "add", &format!("{ip}/32"), "dev", &link],
            vec!["link", "set", &link, "up"],
            vec!["link", "set", &format!("{link}p"), "up"],
        ] {
            let out = Command::new("ip").args(&args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {}", text(&out.stderr));
        }
        DummyAddr { link, ip }
    }
}

impl Drop for DummyAddr {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
    }
}

#[test]
fn a_tls_registry_is_trusted_through_its_ca_in_certs_d() {
    let addr = DummyAddr::new();
    let tls_dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_tls(tls_dir.path(), &addr.ip);
    let certs_d = tempfile::tempdir().unwrap();
    let d = Daemon::start_with_args(&["--registry-certs-dir", certs_d.path().to_str().unwrap()]);
    let reg = DockerRegistry::start(
        d.dir.path(),
        RegistryOptions {
            host: Some(&addr.ip),
            tls: Some((&cert, &key)),
            ..Default::default()
        },
    );
    seed_busybox(&d, &reg, "tls:1");
    let name = format!("{}/tls:1", reg.addr);
    // No CA yet: the certificate is not trusted.
    let (code, _, err) = d.outcome(&["pull", &name]);
    assert_eq!(code, 1);
    assert!(err.contains("certificate"), "{err}");
    // With the registry's CA in its certs.d directory.
    std::fs::create_dir_all(certs_d.path().join(&reg.addr)).unwrap();
    std::fs::copy(&ca, certs_d.path().join(&reg.addr).join("ca.crt")).unwrap();
    let (code, out, err) = d.outcome(&["pull", &name]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Pull complete"), "{out}");
    assert_eq!(d.ok(&["run", "--rm", &name, "echo", "tls"]), "tls\n");
}

#[test]
fn a_build_pulls_a_missing_base_and_pull_refreshes_a_present_one() {
    let d = Daemon::start();
    let reg = DockerRegistry::start(d.dir.path(), RegistryOptions::default());
    seed_busybox(&d, &reg, "base:1");
    let base = format!("{}/base:1", reg.addr);
    let dir = d.dir.path().join("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {base}\nRUN echo built > /b\n"),
    )
    .unwrap();
    let ctx = dir.to_str().unwrap();

    // The docker CLI's classic build: the base is pulled, its progress in the output.
    let (code, out, err) = d.outcome(&["build", "-t", "app:1", ctx]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Pulling from base"), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {base}")),
        "{out}"
    );
    assert_eq!(d.ok(&["run", "--rm", "app:1", "cat", "/b"]), "built\n");

    // --pull asks the registry again even though the base is here (up to date).
    let (code, out, err) = d.cli("berth", &["build", "--pull", "-t", "app:2", ctx]);
    assert_eq!(code, 0, "{err}");
    assert!(
        format!("{out}{err}").contains(&format!("Status: Image is up to date for {base}")),
        "{out}{err}"
    );
    // A base that is nowhere: the registry's answer, in the build's error.
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {}/nothere:1\n", reg.addr),
    )
    .unwrap();
    let (code, _, err) = d.outcome(&["build", ctx]);
    assert_eq!(code, 1);
    assert!(err.contains("manifest unknown"), "{err}");
}

#[test]
fn login_push_and_pull_with_basic_auth_and_nothing_stored_for_a_wrong_password() {
    let d = Daemon::start();
    let creds_dir = tempfile::tempdir().unwrap();
    let htpasswd = berth_e2e::registry::htpasswd(creds_dir.path(), "nurse", "s3cret");
    let reg = DockerRegistry::start(
        d.dir.path(),
        RegistryOptions {
            htpasswd: Some(&htpasswd),
            ..Default::default()
        },
    );
    let config = d.dir.path().join("docker-config/config.json");
    d.busybox();
    let name = format!("{}/ward/app:1", reg.addr);
    d.ok(&["tag", "busybox:latest", &name]);

    // Without credentials: refused before anything moves.
    let (code, _, err) = d.cli("berth", &["push", &name]);
    assert_eq!(code, 1);
    assert!(err.contains("no basic auth credentials"), "{err}");

    // A wrong password: docker's words, and nothing kept.
    let (code, _, err) = d.cli_with_input(
        "berth",
        &["login", "-u", "nurse", "--password-stdin", &reg.addr],
        b"wrong\n",
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("401 Unauthorized"), "{err}");
    let kept = std::fs::read_to_string(&config).unwrap_or_default();
    assert!(!kept.contains(&reg.addr), "{kept}");

    let (code, out, err) = d.cli_with_input(
        "berth",
        &["login", "-u", "nurse", "--password-stdin", &reg.addr],
        b"s3cret\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(String::from_utf8_lossy(&out), "Login Succeeded\n");
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(kept["auths"][&reg.addr]["auth"], "bnVyc2U6czNjcmV0");

    // berth push, then the peer's view: skopeo reads the very digest berth printed.
    let (code, out, err) = d.cli("berth", &["push", &name]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Pushed"), "{out}");
    let pushed = pushed_digest(&out);
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "nurse:s3cret",
        ])
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(berth_e2e::registry::sha256_of(&out.stdout), pushed);
    // Again: every blob is there.
    let (code, out, _) = d.cli("berth", &["push", &name]);
    assert_eq!(code, 0);
    assert!(out.contains("Layer already exists"), "{out}");
    assert!(out.contains(&format!("1: digest: {pushed}")), "{out}");

    // The docker CLI logs in through berthd and pulls with the credentials it keeps.
    d.ok(&["rmi", &name]);
    let (code, out, err) = d.cli_with_input(
        "docker",
        &["login", "-u", "nurse", "--password-stdin", &reg.addr],
        b"s3cret\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(String::from_utf8_lossy(&out).contains("Login Succeeded"));
    let out = d.ok(&["pull", &name]);
    assert!(out.contains(&format!("Digest: {pushed}")), "{out}");

    // Logged out: a pull is refused.
    let out = d.berth_ok(&["logout", &reg.addr]);
    assert_eq!(
        out,
        format!("Removing login credentials for {}\n", reg.addr)
    );
    d.ok(&["rmi", &name]);
    let (code, _, err) = d.cli("berth", &["pull", &name]);
    assert_eq!(code, 1);
    assert!(err.contains("no basic auth credentials"), "{err}");
}

#[test]
fn docker_push_through_berthd_round_trips_with_docker_registry() {
    let d = Daemon::start();
    let reg = DockerRegistry::start(d.dir.path(), RegistryOptions::default());
    // A pulled image pushed elsewhere keeps its manifest, hence its digest; the blob is
    // mounted from the repository it came from.
    let digest = seed_busybox(&d, &reg, "src/bb:1");
    let src = format!("{}/src/bb:1", reg.addr);
    d.ok(&["pull", &src]);
    let dst = format!("{}/dst/bb:2", reg.addr);
    d.ok(&["tag", &src, &dst]);
    let out = d.ok(&["push", &dst]);
    assert!(out.contains("Mounted from src/bb"), "{out}");
    assert!(out.contains(&format!("2: digest: {digest}")), "{out}");
    assert_eq!(skopeo_digest(&format!("docker://{dst}")), digest);
    let listed = d.ok(&["image", "inspect", "-f", "{{json .RepoDigests}}", &dst]);
    assert!(
        listed.contains(&format!("{}/dst/bb@{digest}", reg.addr)),
        "{listed}"
    );

    // A built image: pushed, removed, pulled back by the docker CLI, and run.
    let dir = d.dir.path().join("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {src}\nRUN echo made here > /m\n"),
    )
    .unwrap();
    let built = format!("{}/built:1", reg.addr);
    d.ok(&["build", "-t", &built, dir.to_str().unwrap()]);
    let out = d.ok(&["push", &built]);
    let digest = pushed_digest(&out);
    assert_eq!(skopeo_digest(&format!("docker://{built}")), digest);
    d.ok(&["rmi", &built]);
    d.ok(&["pull", &built]);
    assert_eq!(d.ok(&["run", "--rm", &built, "cat", "/m"]), "made here\n");
    // An image that is not here.
    let (code, _, err) = d.outcome(&["push", &format!("{}/nothere:1", reg.addr)]);
    assert_eq!(code, 1);
    assert!(
        err.contains("An image does not exist locally with the tag"),
        "{err}"
    );
}

#[test]
fn a_pull_whose_client_leaves_stops_and_leaves_nothing() {
    let d = Daemon::start();
    let reg = DockerRegistry::start(d.dir.path(), RegistryOptions::default());
    // 2 MiB that gzip cannot shrink.
    let mut x = 0x9e3779b97f4a7c15u64;
    let big: Vec<u8> = (0..2 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    seed_layers(
        &d,
        &reg.addr,
        "stall",
        vec![(Compression::Gzip, layer_tar(&[("big", &big)]))],
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{}/stall:1", reg.addr))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let proxy = CutProxy::start_with(&reg.addr, &format!("/blobs/{layer}"), 64 << 10, true);
    let name = format!("{}/stall:1", proxy.addr);
    let mut child = Command::new(berth_e2e::bin_dir().join("berth"))
        .args(["pull", &name])
        .env("BERTH_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    berth_e2e::wait_for("the layer's download to stall", || {
        if let Ok(Some(_)) = child.try_wait() {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
            panic!("the pull ended: {err} {:?}", proxy.seen.lock().unwrap());
        }
        proxy.seen.lock().unwrap().stalled
    });
    let snapshots = d.root().join("image/snapshots");
    let staged = || {
        std::fs::read_dir(&snapshots)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name().to_string_lossy().starts_with("tmp-")
                    && !e.path().join("work").exists()
            })
            .count()
    };
    assert_eq!(
        staged(),
        1,
        "the layer is being unpacked into a staging directory"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    berth_e2e::wait_for("the pull to stop and roll back", || staged() == 0);
    assert_eq!(d.ok(&["images", "-q"]), "");
    let log = d.log();
    assert!(log.contains("the client went away"), "{log}");
}

#[test]
fn berth_pull_on_a_terminal_redraws_each_layers_line() {
    let d = Daemon::start();
    let reg = DockerRegistry::start(d.dir.path(), RegistryOptions::default());
    let mut layers = vec![(Compression::Gzip, busybox_layer())];
    layers.push((Compression::Gzip, layer_tar(&[("extra", b"more\n")])));
    seed_layers(&d, &reg.addr, "tty", layers);
    let mut t = d.terminal(&format!("berth pull {}/tty:1; echo exit=$?", reg.addr));
    t.expect("1: Pulling from tty");
    t.expect("Pull complete");
    t.expect("Status: Downloaded newer image for ");
    t.expect("exit=0");
    let seen = String::from_utf8_lossy(&t.seen).into_owned();
    assert_eq!(t.finish(), 0);
    // Each layer's line is rewritten in place (cursor up, clear line), not appended.
    assert!(seen.contains("\x1b[2K"), "{seen:?}");
    assert!(
        seen.contains("\x1b[1A") || seen.contains("\x1b[2A"),
        "{seen:?}"
    );
}

#[test]
fn bearer_tokens_anonymous_for_pull_with_credentials_for_push_renewed_when_stale() {
    let d = Daemon::start();
    let reg = DockerRegistry::start(d.dir.path(), RegistryOptions::default());
    seed_busybox(&d, &reg, "hub/bb:1");
    // Each token serves 2 requests: a pull of manifest, config and layer needs more, so the
    // client must come back for a new one.
    let front = berth_e2e::registry::TokenFront::start(&reg.addr, "clerk", "pw", 2);
    let name = format!("{}/hub/bb:1", front.addr);

    let (code, out, err) = d.cli("berth", &["pull", &name]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Pull complete"), "{out}");
    let seen = front.seen.lock().unwrap().clone();
    let (first, creds) = &seen.token_requests[0];
    assert!(!creds, "a pull asks anonymously: {seen:?}");
    assert!(
        first.contains("scope=repository%3Ahub%2Fbb%3Apull"),
        "{first}"
    );
    assert!(first.contains("service=berth-test"), "{first}");
    assert!(
        seen.token_requests.len() >= 2,
        "the token was renewed: {seen:?}"
    );
    assert_eq!(
        d.ok(&["run", "--rm", &name, "echo", "via-token"]),
        "via-token\n"
    );

    // A push needs credentials: refused without, done with them (through the token).
    let dst = format!("{}/hub/copy:1", front.addr);
    d.ok(&["tag", &name, &dst]);
    let (code, _, err) = d.cli("berth", &["push", &dst]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = d.cli_with_input(
        "berth",
        &["login", "-u", "clerk", "--password-stdin", &front.addr],
        b"wrong\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("unauthorized"), "{err}");
    let (code, _, err) = d.cli_with_input(
        "berth",
        &["login", "-u", "clerk", "--password-stdin", &front.addr],
        b"pw\n",
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = d.cli("berth", &["push", &dst]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1: digest: "), "{out}");
    let seen = front.seen.lock().unwrap().clone();
    let (last, creds) = seen.token_requests.last().unwrap();
    assert!(creds, "{seen:?}");
    assert!(last.contains("pull%2Cpush"), "{last}");
}

#[test]
fn a_credential_helper_keeps_what_login_checked_and_gives_it_to_pull() {
    let d = Daemon::start();
    let creds_dir = tempfile::tempdir().unwrap();
    let htpasswd = berth_e2e::registry::htpasswd(creds_dir.path(), "nurse", "s3cret");
    let reg = DockerRegistry::start(
        d.dir.path(),
        RegistryOptions {
            htpasswd: Some(&htpasswd),
            ..Default::default()
        },
    );
    // A helper that keeps one secret in a file, speaking docker's helper protocol.
    let bin = creds_dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let store = creds_dir.path().join("kept");
    let script = format!(
        "#!/bin/sh\nstore={}\ncase \"$1\" in\n  store) cat > \"$store\" ;;\n  get) read server; [ -f \"$store\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}; cat \"$store\" ;;\n  erase) rm -f \"$store\" ;;\nesac\n",
        store.display()
    );
    let helper = bin.join("docker-credential-berthtest");
    std::fs::write(&helper, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config_dir = d.dir.path().join("docker-config");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("config.json"),
        r#"{"credsStore":"berthtest"}"#,
    )
    .unwrap();
    let berth = |args: &[&str], input: &[u8]| {
        use std::io::Write;
        let mut child = Command::new(berth_e2e::bin_dir().join("berth"))
            .args(args)
            .env("BERTH_HOST", d.host())
            .env("DOCKER_CONFIG", &config_dir)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            text(&out.stdout),
            text(&out.stderr),
        )
    };
    let (code, out, err) = berth(
        &["login", "-u", "nurse", "--password-stdin", &reg.addr],
        b"s3cret\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Login Succeeded\n");
    assert!(!err.contains("stored unencrypted"), "{err}");
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&store).unwrap()).unwrap();
    assert_eq!(kept["Username"], "nurse");
    assert_eq!(kept["Secret"], "s3cret");
    let config = std::fs::read_to_string(config_dir.join("config.json")).unwrap();
    assert!(
        !config.contains("s3cret") && !config.contains("bnVyc2U6czNjcmV0"),
        "{config}"
    );

    // The helper's credentials push and pull.
    d.busybox();
    let name = format!("{}/helped:1", reg.addr);
    d.ok(&["tag", "busybox:latest", &name]);
    let (code, _, err) = berth(&["push", &name], b"");
    assert_eq!(code, 0, "{err}");
    d.ok(&["rmi", &name]);
    let (code, _, err) = berth(&["pull", &name], b"");
    assert_eq!(code, 0, "{err}");

    let (code, out, _) = berth(&["logout", &reg.addr], b"");
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!("Removing login credentials for {}\n", reg.addr)
    );
    assert!(!store.exists());
}

/// What a failed pull must leave as it was: the images, and the entries of the store's
/// snapshots (staging directories), ingest and blob directories.
fn store_state(d: &Daemon) -> (String, BTreeSet<String>) {
    let store = d.root().join("image");
    let mut entries = BTreeSet::new();
    for sub in ["snapshots", "ingest", "blobs/sha256"] {
        if let Ok(dir) = std::fs::read_dir(store.join(sub)) {
            for e in dir.flatten() {
                entries.insert(format!("{sub}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    (d.ok(&["images", "-aq", "--no-trunc"]), entries)
}

/// `docker pull` of `name` must fail; returns its stderr.
fn pull_fails(d: &Daemon, name: &str) -> String {
    let (code, out, err) = d.outcome(&["pull", name]);
    assert_eq!(code, 1, "docker pull {name}: {out}{err}");
    err
}

/// berthd still pulls: `image` served by `reg` as `repo:1` arrives whole.
fn still_pulls(d: &Daemon, reg: &Hostile, repo: &str) {
    let image = MemImage::of_files(&[("ok", b"fine\n")]);
    reg.serve(repo, "1", &image);
    let name = format!("{}/{repo}:1", reg.addr);
    let out = d.ok(&["pull", &name]);
    assert!(
        out.contains(&format!("Digest: {}", image.digest())),
        "{out}"
    );
}

#[test]
fn a_gzip_bomb_layer_stops_at_the_ingest_limit_and_leaves_nothing() {
    let d = Daemon::start_with_args(&["--max-ingest-size", "64m"]);
    let reg = Hostile::start("127.0.0.1");
    // 4 GiB of zeros in a tar, as a few MiB of gzip.
    let (bomb, diff_id) = gzip_bomb(4 << 30);
    assert!(bomb.len() < 8 << 20, "{} bytes of gzip", bomb.len());
    let image = MemImage::new(vec![(bomb, diff_id)]);
    reg.serve("bomb", "1", &image);
    let before = store_state(&d);

    let err = pull_fails(&d, &format!("{}/bomb:1", reg.addr));
    assert!(err.contains("more than 64.0 MiB"), "{err}");
    assert!(err.contains("--max-ingest-size"), "{err}");
    assert_eq!(store_state(&d), before, "the bomb left something");
    // The whole blob was read (its digest checked), nothing more.
    assert_eq!(reg.requests(&image.layers[0]).len(), 1);

    // The limit holds for the whole pull: three layers of 12 MiB (24 MiB written each,
    // blob and files) pass it together, not one by one.
    let layers: Vec<_> = (0..3u8)
        .map(|k| {
            let content: Vec<u8> = (0..12u32 << 20).map(|i| (i % 251) as u8 ^ k).collect();
            let tar = layer_tar(&[("f", &content)]);
            let diff_id = sha256_of(&tar);
            (tar, diff_id)
        })
        .collect();
    let image = MemImage::new(layers);
    reg.serve("three", "1", &image);
    let err = pull_fails(&d, &format!("{}/three:1", reg.addr));
    assert!(err.contains("more than 64.0 MiB"), "{err}");
    assert_eq!(store_state(&d), before, "the three layers left something");
    still_pulls(&d, &reg, "after-bomb");
}

#[test]
fn a_layer_that_never_ends_is_cut_at_its_descriptors_size() {
    let d = Daemon::start();
    let reg = Hostile::start("127.0.0.1");
    let image = MemImage::of_files(&[("f", b"x")]);
    reg.serve("endless", "1", &image);
    let layer = image.layers[0].clone();
    let blob = &image.blobs[1].1;
    // The layer's bytes, then more, chunked (no Content-Length), until berthd hangs up.
    let mut piece = blob.clone();
    piece.resize(64 << 10, 0);
    reg.route(
        &format!("/v2/endless/blobs/{layer}"),
        Reply::Chunked {
            headers: vec![],
            piece,
            times: usize::MAX,
        },
    );
    let before = store_state(&d);
    let err = pull_fails(&d, &format!("{}/endless:1", reg.addr));
    assert!(
        err.contains(&format!(
            "blob {layer} is larger than its manifest says ({} bytes)",
            blob.len()
        )),
        "{err}"
    );
    assert_eq!(reg.requests(&layer).len(), 1, "retried");
    assert_eq!(store_state(&d), before);
    still_pulls(&d, &reg, "after-endless");
}

#[test]
fn malformed_and_oversized_manifests_are_refused_naming_the_reference() {
    const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    let d = Daemon::start();
    let reg = Hostile::start("127.0.0.1");
    let good = MemImage::of_files(&[("f", b"x")]);
    // The blobs are there: only the manifest is at fault.
    reg.serve("bad", "good", &good);
    let manifest: serde_json::Value = serde_json::from_slice(&good.manifest).unwrap();
    let mut bad_digest = manifest.clone();
    bad_digest["layers"][0]["digest"] = "sha256:../../../../../etc/passwd".into();
    // A manifest that says it is an index (CVE-2021-41190's type confusion): Docker
    // (containerd) refuses a document whose kind is not its Content-Type's.
    let mut says_index = manifest.clone();
    says_index["mediaType"] = OCI_INDEX.into();
    let chunked = vec![("Content-Type".to_string(), OCI_MANIFEST.to_string())];
    let cases: Vec<(&str, Reply, &str)> = vec![
        (
            "notjson",
            Reply::ok(OCI_MANIFEST, b"<html>502 Bad Gateway</html>"),
            "the manifest does not parse",
        ),
        (
            "shape",
            Reply::ok(
                OCI_MANIFEST,
                br#"{"schemaVersion":2,"config":"nope","layers":{}}"#,
            ),
            "the manifest does not parse",
        ),
        (
            "digest",
            Reply::ok(OCI_MANIFEST, bad_digest.to_string().as_bytes()),
            "unsupported digest \"sha256:../../../../../etc/passwd\"",
        ),
        (
            "says-index",
            Reply::ok(OCI_MANIFEST, says_index.to_string().as_bytes()),
            "expected manifest but found index",
        ),
        (
            "served-as-index",
            Reply::ok(OCI_INDEX, &good.manifest),
            "expected index but found manifest",
        ),
        (
            "big",
            Reply::ok(OCI_MANIFEST, &vec![b' '; 5 << 20]),
            "is too large (5242880 bytes, at most 4194304)",
        ),
        (
            "endless",
            Reply::Chunked {
                headers: chunked,
                piece: vec![b' '; 64 << 10],
                times: usize::MAX,
            },
            "the response is larger than 4194304 bytes",
        ),
    ];
    let before = store_state(&d);
    for (tag, reply, words) in cases {
        reg.route(&format!("/v2/bad/manifests/{tag}"), reply);
        let name = format!("{}/bad:{tag}", reg.addr);
        let err = pull_fails(&d, &name);
        assert!(
            err.starts_with(&format!("Error response from daemon: manifest for {name}")),
            "{tag}: {err}"
        );
        assert!(err.contains(words), "{tag}: {err}");
        assert_eq!(store_state(&d), before, "{tag} left something");
    }
    // Not one blob was asked for.
    assert_eq!(reg.requests("/blobs/").len(), 0);

    // An index without this platform: Docker's words.
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": good.digest(), "size": good.manifest.len(),
             "platform": {"os": "linux", "architecture": "s390x"}},
            {"mediaType": OCI_MANIFEST, "digest": good.digest(), "size": good.manifest.len(),
             "platform": {"os": "windows", "architecture": "amd64"}},
        ],
    });
    reg.route(
        "/v2/bad/manifests/elsewhere",
        Reply::ok(OCI_INDEX, index.to_string().as_bytes()),
    );
    let err = pull_fails(&d, &format!("{}/bad:elsewhere", reg.addr));
    let host = match std::env::consts::ARCH {
        "aarch64" => "linux/arm64/v8",
        _ => "linux/amd64",
    };
    assert_eq!(
        err,
        format!("Error response from daemon: no matching manifest for {host} in the manifest list entries\n")
    );
    assert_eq!(store_state(&d), before);
    still_pulls(&d, &reg, "after-bad");
}

#[test]
fn a_blob_redirected_to_another_host_arrives_without_the_registrys_credentials() {
    let d = Daemon::start();
    let reg = Hostile::start("127.0.0.1");
    // Another host (a blob store, as S3 behind a registry).
    let storage = Hostile::start("127.0.0.2");
    let tar = layer_tar(&[("hello", b"from storage\n")]);
    let image = MemImage::of_files(&[("hello", b"from storage\n")]);
    reg.route(
        "/v2/app/manifests/1",
        Reply::ok(OCI_MANIFEST, &image.manifest),
    );
    for (digest, bytes) in &image.blobs {
        let at = format!("/store/{}", digest.trim_start_matches("sha256:"));
        storage.route(&at, Reply::ok("application/octet-stream", bytes));
        reg.route(
            &format!("/v2/app/blobs/{digest}"),
            Reply::Redirect(format!("http://{}{at}?signature=abc", storage.addr)),
        );
    }
    reg.require("nurse", "s3cret");
    let (code, _, err) = d.cli_with_input(
        "berth",
        &["login", "-u", "nurse", "--password-stdin", &reg.addr],
        b"s3cret\n",
    );
    assert_eq!(code, 0, "{err}");

    let name = format!("{}/app:1", reg.addr);
    let out = d.ok(&["pull", &name]);
    assert!(
        out.contains(&format!("Digest: {}", image.digest())),
        "{out}"
    );
    let layers = d.ok(&["image", "inspect", "-f", "{{json .RootFS.Layers}}", &name]);
    assert_eq!(layers.trim(), format!(r#"["{}"]"#, sha256_of(&tar)));

    let basic = "Basic bnVyc2U6czNjcmV0";
    let asked = reg.requests("/blobs/");
    assert_eq!(asked.len(), 2, "{asked:?}");
    for r in &asked {
        assert_eq!(r.header("authorization"), Some(basic), "{r:?}");
    }
    let fetched = storage.requests("/store/");
    assert_eq!(fetched.len(), 2, "{fetched:?}");
    for r in &fetched {
        assert!(r.line.contains("?signature=abc"), "{r:?}");
        assert_eq!(r.header("authorization"), None, "credentials leaked: {r:?}");
    }
}

#[test]
fn a_redirect_loop_ends_the_pull_after_a_bounded_number_of_hops() {
    let d = Daemon::start();
    let a = Hostile::start("127.0.0.1");
    let b = Hostile::start("127.0.0.2");
    let image = MemImage::of_files(&[("f", b"x")]);
    a.serve("loop", "1", &image);
    let layer = image.layers[0].clone();
    // The layer bounces between the two hosts for ever.
    a.route(
        &format!("/v2/loop/blobs/{layer}"),
        Reply::Redirect(format!("http://{}/bounce", b.addr)),
    );
    b.route(
        "/bounce",
        Reply::Redirect(format!("http://{}/back", a.addr)),
    );
    a.route(
        "/back",
        Reply::Redirect(format!("http://{}/bounce", b.addr)),
    );
    let before = store_state(&d);

    let err = pull_fails(&d, &format!("{}/loop:1", a.addr));
    assert!(err.contains("stopped after 10 redirects"), "{err}");
    assert!(err.contains(&layer), "{err}");
    // The first request and ten redirects, once: a loop is no broken download to retry.
    let hops = a.requests(&layer).len() + a.requests("/back").len() + b.requests("/bounce").len();
    assert_eq!(hops, 11);
    assert_eq!(store_state(&d), before);
    still_pulls(&d, &a, "after-loop");
}

//! `berthd`: start-up (paths, pid file, image store, engine restore) and the listener.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Parser;

/// berthd serves the Docker Engine API on a unix socket.
#[derive(Debug, Parser)]
#[command(name = "berthd", version)]
struct Args {
    /// Where images, container records and logs live.
    #[arg(long, default_value = "/var/lib/berth")]
    root: PathBuf,
    /// Where live state (sockets, shim bundles) lives.
    #[arg(long, default_value = "/run/berth")]
    exec_root: PathBuf,
    /// The socket to serve, as unix://PATH.
    #[arg(
        short = 'H',
        long = "host",
        default_value = "unix:///run/berth/berth.sock"
    )]
    host: String,
    /// The berth-shim binary (default: beside berthd).
    #[arg(long)]
    shim: Option<PathBuf>,
    /// A static init binary for --init (default: tini-static or docker-init if installed).
    #[arg(long)]
    init_path: Option<PathBuf>,
    /// The container runtime inside the shims: berth's own, or libcontainer (the reference
    /// implementation, kept for comparison).
    #[arg(long, default_value = "berth")]
    runtime: berth_engine::Backend,
    /// The most one `docker load`, `docker import` or pull may decompress
    /// and write into the image store (its archive as stored plus the unpacked layers), e.g.
    /// `20g`; past it the request stops (a load or import with a 413) and what it wrote is
    /// removed. 0: no limit of its own (the free-space reserve still holds). Also refuses a
    /// larger `Content-Length` at once.
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "0")]
    max_ingest_size: u64,
    /// Free space a `load` or `import` leaves on the image store's filesystem, e.g. `5g`
    /// [default: 10 % of the filesystem or 2 GiB, whichever is less].
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    ingest_reserve: Option<u64>,
    /// The most the build cache keeps, e.g. `20g`; after each build the oldest cache goes
    /// until the rest fits. 0: no bound [default: 10 % of the filesystem holding --root, at
    /// most 20 GiB].
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    build_cache_max: Option<u64>,
    /// The key sequence that detaches a client from an attached container or exec when the
    /// client names none (docker's `--detach-keys` syntax; empty: never).
    #[arg(long, default_value = "ctrl-p,ctrl-q")]
    detach_keys: String,
    /// Log filter (e.g. info, debug).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// The default bridge, made when missing; `none`: no bridge, the default network is a
    /// namespace of the container's own with loopback only (Docker's `-b none`).
    #[arg(short = 'b', long, default_value = "berth0")]
    bridge: String,
    /// The default bridge's own address and prefix, e.g. `10.5.0.1/24` [default: the first
    /// of Docker's default pools, 172.18.0.0/16 on, that no route on the host overlaps].
    #[arg(long, value_parser = parse_bip)]
    bip: Option<(std::net::Ipv4Addr, u8)>,
    /// Where the default bridge's subnet is chosen from when there is no --bip, e.g.
    /// `base=10.10.0.0/16,size=24` (Docker's flag; repeatable) [default: Docker's pools,
    /// 172.18.0.0/16 to 172.31.0.0/16 then 192.168.0.0/16 in /20s].
    #[arg(long = "default-address-pool", value_parser = berth_engine::parse_pool)]
    default_address_pool: Vec<(berth_engine::Subnet, u8)>,
    /// Programs on the host connect to published TCP ports straight to the container
    /// (cgroup eBPF, pinned under /sys/fs/bpf), with no NAT; `false`: the DNAT path for
    /// them too, as for remote clients.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    socket_redirect: bool,
    /// How long the socket redirect of a port published on one of the host's addresses
    /// (not 127.0.0.1) holds unless berthd renews it, in seconds: if berthd is killed, an
    /// address that moves away meanwhile is redirected no longer than this (3 to 3600)
    /// [default: 90].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(3..=3600))]
    socket_redirect_lease: Option<u64>,
    /// A registry reached over plain HTTP, or whose certificate is not checked: `host:port`
    /// or a CIDR range (Docker's flag; repeatable). Loopback registries always are.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT|CIDR")]
    insecure_registry: Vec<String>,
    /// A mirror of Docker Hub, tried first for `docker.io` names (Docker's flag;
    /// repeatable), e.g. `https://mirror.example:5000`.
    #[arg(long = "registry-mirror", value_name = "URL", value_parser = parse_mirror)]
    registry_mirror: Vec<String>,
    /// Per-registry TLS files: `<dir>/<host:port>/` holds CA certificates (`*.crt`) and a
    /// client certificate (`*.cert` with its `*.key`), as `/etc/docker/certs.d`.
    #[arg(long, default_value = "/etc/berth/certs.d")]
    registry_certs_dir: PathBuf,
}

fn parse_mirror(s: &str) -> Result<String, String> {
    let u = url::Url::parse(s).map_err(|e| format!("invalid mirror {s:?}: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(format!(
            "invalid mirror {s:?}: expected http(s)://host[:port]"
        ));
    }
    if !matches!(u.path(), "" | "/") || u.query().is_some() {
        return Err(format!("invalid mirror {s:?}: a mirror has no path"));
    }
    Ok(u.to_string())
}

fn parse_bip(s: &str) -> Result<(std::net::Ipv4Addr, u8), String> {
    let (ip, prefix) = berth_engine::parse_cidr(s)?;
    if !(8..=30).contains(&prefix) {
        return Err(format!(
            "{s}: the bridge's prefix must be between /8 and /30"
        ));
    }
    Ok((ip, prefix))
}

/// `1234`, `512k`, `300m`, `20g`, `1t` (binary units, as Docker's sizes; a trailing `b`
/// or `ib` is allowed: `20gb`, `20GiB`).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let (digits, shift) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 10),
        Some('m') => (&t[..t.len() - 1], 20),
        Some('g') => (&t[..t.len() - 1], 30),
        Some('t') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| format!("invalid size {s:?} (e.g. 1073741824, 512m, 20g)"))
}

fn find_init(given: Option<PathBuf>) -> Option<PathBuf> {
    given.or_else(|| {
        [
            "/usr/bin/tini-static",
            "/usr/libexec/docker/docker-init",
            "/usr/bin/docker-init",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    })
}

fn main() -> anyhow::Result<()> {
    // Before anything is opened or spawned: descriptors berthd inherited stay out of its
    // shims (a launching shell's pipe held open by every shim kept `berthd ... | tee` from
    // ever ending, and reached each container init until its own close-on-exec sweep).
    if let Err(e) = berth_engine::close_inherited_descriptors() {
        eprintln!("berthd: marking inherited descriptors close-on-exec: {e}");
    }
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log_level))
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a log file or journald gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let socket = match args.host.strip_prefix("unix://") {
        Some(p) => PathBuf::from(p),
        None if args.host.starts_with('/') => PathBuf::from(&args.host),
        None => bail!("only unix:// hosts are supported: {}", args.host),
    };
    let shim = match args.shim {
        Some(s) => s,
        None => std::env::current_exe()
            .context("locating berthd")?
            .with_file_name("berth-shim"),
    };
    if !shim.exists() {
        bail!("berth-shim not found at {} (use --shim)", shim.display());
    }
    // The shims cache compiled seccomp filters under this daemon's exec-root, so that
    // daemons side by side (and tests) keep their state apart. Set before any thread runs.
    std::env::set_var("BERTH_SECCOMP_CACHE", args.exec_root.join("seccomp"));
    // Containers are cloned by the shim, never from these threads; two workers are enough
    // for a unix-socket API and keep the idle footprint small.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(256)
        .enable_all()
        .build()?;
    let detach_keys = berth_daemon::routes::stdio::parse_detach_keys(&args.detach_keys)
        .map_err(|e| anyhow::anyhow!("--detach-keys: {}", e.message))?;
    let limits = berth_image::IngestLimits {
        max_size: (args.max_ingest_size > 0).then_some(args.max_ingest_size),
        reserve: args.ingest_reserve,
    };
    rt.block_on(run(Settings {
        root: args.root,
        exec_root: args.exec_root,
        socket,
        shim,
        init: find_init(args.init_path),
        backend: args.runtime,
        limits,
        detach_keys,
        bridge: (args.bridge != "none").then(|| {
            let mut b = berth_engine::BridgeConfig::new(&args.bridge);
            b.bip = args.bip;
            if !args.default_address_pool.is_empty() {
                b.candidates = berth_engine::pool_candidates(&args.default_address_pool);
            }
            b
        }),
        socket_redirect: args.socket_redirect,
        socket_redirect_lease: match (args.socket_redirect, args.socket_redirect_lease) {
            (false, Some(_)) => {
                bail!("--socket-redirect-lease needs the socket redirect (--socket-redirect false was given)")
            }
            (_, lease) => std::time::Duration::from_secs(lease.unwrap_or(90)),
        },
        build_cache_max: args.build_cache_max,
        registry: berth_registry::RegistryConfig {
            insecure: args.insecure_registry,
            mirrors: args.registry_mirror,
            certs_dir: Some(args.registry_certs_dir),
        },
    }))
}

/// What `run` needs, from the command line.
struct Settings {
    root: PathBuf,
    exec_root: PathBuf,
    socket: PathBuf,
    shim: PathBuf,
    init: Option<PathBuf>,
    backend: berth_engine::Backend,
    limits: berth_image::IngestLimits,
    detach_keys: Vec<u8>,
    bridge: Option<berth_engine::BridgeConfig>,
    socket_redirect: bool,
    socket_redirect_lease: std::time::Duration,
    build_cache_max: Option<u64>,
    registry: berth_registry::RegistryConfig,
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let Settings {
        root,
        exec_root,
        socket,
        shim,
        init,
        backend,
        limits,
        detach_keys,
        bridge,
        socket_redirect,
        socket_redirect_lease,
        build_cache_max: args_build_cache_max,
        registry,
    } = settings;
    // Only root may enter: below these lie image layers with setuid files and device
    // nodes, container rootfs mounts, and records holding containers' environments
    // (secrets). Docker keeps its root 0710 and everything below it private, too.
    // One daemon per root and exec-root: a second one would clean up the first one's
    // ingests and half-made snapshots and monitor the same shims.
    let mut locks = Vec::new();
    for dir in [&root, &exec_root] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {} to root", dir.display()))?;
        let handle =
            std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
        if !lock_soon(&handle) {
            bail!(
                "{} is in use by another berthd (give each daemon its own --root and --exec-root)",
                dir.display()
            );
        }
        locks.push(handle);
    }
    let pid_file = exec_root.join("berthd.pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing {}", pid_file.display()))?;
    let images = Arc::new(
        berth_image::ImageStore::open_with(root.join("image"), limits)
            .context("opening the image store")?,
    );
    let mut cfg = berth_engine::EngineConfig::new(&root, &exec_root);
    cfg.init_binary = init;
    cfg.backend = backend;
    cfg.bridge = bridge;
    cfg.socket_redirect = socket_redirect;
    cfg.socket_redirect_lease = socket_redirect_lease;
    cfg.build_cache_max = match args_build_cache_max {
        Some(0) => None,
        Some(n) => Some(n),
        None => berth_engine::default_build_cache_max(&cfg.root),
    };
    // Once, here: the shims never parse the mount table for it.
    cfg.cgroup_layout = match berth_engine::CgroupLayout::detect() {
        Ok(layout) => Some(layout),
        Err(e) => {
            tracing::warn!("no cgroup filesystem found ({e}); containers will fail to start");
            None
        }
    };
    let runtime = Arc::new(berth_engine::ShimRuntime::new(&shim));
    let engine = berth_engine::Engine::open(cfg, images, runtime)
        .await
        .context("restoring containers")?;
    berth_build::clean_leftovers(&engine).await;
    let contexts = Arc::new(berth_build::ContextCache::new(&engine.config().root));
    let router = berth_daemon::router(berth_daemon::AppState {
        engine,
        contexts,
        shim_binary: shim,
        detach_keys,
        registry: Arc::new(berth_registry::Registry::new(registry)),
    });
    tracing::info!("serving the Docker API on unix://{}", socket.display());
    tokio::select! {
        r = berth_daemon::server::serve(router, &socket) => r.context("serving")?,
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate() => {}
    }
    // Containers keep running: their shims do not depend on berthd.
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&pid_file);
    drop(locks);
    Ok(())
}

/// Locks `dir` for this berthd, waiting up to 2 s. A berthd that was just killed (a crash,
/// `kill -9`, then a restart by systemd) can leave the lock held for a moment by a child it
/// was spawning: between the fork and the exec of a shim the child still holds the
/// descriptor (it is close-on-exec), and on a loaded machine that lasted long enough for an
/// immediate restart to be refused. A berthd that really runs holds it for good.
fn lock_soon(dir: &std::fs::File) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut waited = false;
    loop {
        if dir.try_lock().is_ok() {
            if waited {
                tracing::info!("the previous berthd's lock was released late");
            }
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        waited = true;
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

async fn terminate() {
    if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        s.recv().await;
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_like_dockers() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1234"), Ok(1234));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("300M"), Ok(300 << 20));
        assert_eq!(parse_size("20g"), Ok(20 << 30));
        assert_eq!(parse_size("20GiB"), Ok(20 << 30));
        assert_eq!(parse_size("2gb"), Ok(2 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999t").is_err());
    }
}

//! `berth-registry`: berth's own OCI Distribution registry (`serve`) and its garbage
//! collector (`gc`). `berth registry serve|gc` runs this binary, found beside `berth`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use berth_registry::server::{self, gc, AuthMode, ServeConfig, TokenOptions};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth-registry",
    version,
    about = "berth's OCI Distribution registry"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry API (without --htpasswd anyone reaching ADDR may push: listen on
    /// loopback, or behind TLS and auth)
    Serve {
        /// Address to listen on
        #[arg(long, default_value = "127.0.0.1:5000")]
        addr: SocketAddr,
        /// Directory of the registry's content
        #[arg(long)]
        root: PathBuf,
        /// htpasswd file of bcrypt entries: the users (Basic auth on every request unless
        /// --auth token)
        #[arg(long)]
        htpasswd: Option<PathBuf>,
        /// How requests are authorised [default: basic with --htpasswd, else none]
        #[arg(long, value_enum)]
        auth: Option<AuthMode>,
        /// Token mode: the service tokens are issued for [default: berth-registry]
        #[arg(long)]
        token_service: Option<String>,
        /// Token mode: the token endpoint's URL as clients reach it [default: this
        /// server's URL as each client reached it, /token]
        #[arg(long)]
        token_realm: Option<String>,
        /// Token mode: clients without credentials may pull every repository
        #[arg(long)]
        anonymous_pull: bool,
        /// Token mode: who may do what, lines of `<user|*> <repository glob>
        /// <pull,push,delete>` [default: every user may pull and push everything]
        #[arg(long)]
        access: Option<PathBuf>,
        /// TLS certificate chain (PEM)
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM)
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Refuse every write
        #[arg(long)]
        read_only: bool,
        /// Allow DELETE of manifests and blobs
        #[arg(long)]
        delete_enabled: bool,
    },
    /// Remove blobs no manifest refers to (safe while the server runs)
    Gc {
        /// Directory of the registry's content
        #[arg(long)]
        root: PathBuf,
        /// List what would be removed, remove nothing
        #[arg(long)]
        dry_run: bool,
        /// Keep unreferenced blobs younger than this (a push in progress)
        #[arg(long, default_value_t = 3600, hide = true)]
        grace_seconds: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::Serve {
            addr,
            root,
            htpasswd,
            auth,
            token_service,
            token_realm,
            anonymous_pull,
            access,
            tls_cert,
            tls_key,
            read_only,
            delete_enabled,
        } => {
            let config = ServeConfig {
                addr,
                root,
                htpasswd,
                auth,
                token: TokenOptions {
                    service: token_service,
                    realm: token_realm,
                    anonymous_pull,
                    access,
                },
                tls: tls_cert.zip(tls_key),
                read_only,
                delete_enabled,
            };
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .and_then(|rt| rt.block_on(server::serve(config)))
        }
        Command::Gc {
            root,
            dry_run,
            grace_seconds,
        } => gc::collect(&root, Duration::from_secs(grace_seconds), dry_run).map(|r| {
            let verb = if dry_run { "would remove" } else { "removed" };
            for (hex, size) in &r.blobs {
                println!("{verb} blob sha256:{hex} ({size} bytes)");
            }
            for link in &r.links {
                println!("{verb} link {link}");
            }
            println!(
                "{verb} {} blobs, {} links, {} stale uploads; {} bytes freed",
                r.blobs.len(),
                r.links.len(),
                r.uploads,
                if dry_run { 0 } else { r.bytes_freed() }
            );
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-registry: {e}");
            ExitCode::FAILURE
        }
    }
}

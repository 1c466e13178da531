//! `berth`: docker's command line over the Engine API, talking to `berthd` (or any
//! Docker-compatible daemon) through [`berth_client`].
//!
//! Owns flag parsing (clap), the conversion of `run`/`create` flags into a create request
//! ([`run::create_request`], pure), output formatting (docker's tables, `--format` Go-style
//! templates, human durations and sizes) and exit statuses (125 for daemon errors around
//! `run`, 126/127 for start failures, the container's own status otherwise, 1 for other
//! errors). Does not own the wire types (`berth-api`) or HTTP (`berth-client`).

mod build;
mod commit;
mod container;
mod cp;
mod df;
mod exec;
mod format;
mod human;
mod image;
mod mount;
mod network;
mod output;
mod registry;
mod registry_server;
mod run;
mod session;
mod stats;
mod system;
mod template;
mod tty;
mod update;
mod usage;
mod volume;

use std::io::Write;

use anyhow::Result;
use berth_client::Client;
use clap::{Parser, Subcommand};

use container::{
    InspectArgs, KillArgs, LogsArgs, PruneArgs, PsArgs, RenameArgs, RmArgs, StartArgs, StopArgs,
    Targets, TopArgs,
};
use image::{
    HistoryArgs, ImageInspectArgs, ImagePruneArgs, ImagesArgs, ImportArgs, LoadArgs, RmiArgs,
    SaveArgs, TagArgs,
};
use run::RunArgs;
use stats::StatsArgs;
use system::{EventsArgs, FormatArgs};

/// A self-sufficient runtime for containers
#[derive(Debug, Parser)]
#[command(name = "berth", disable_version_flag = true)]
struct Cli {
    /// Daemon socket to connect to
    #[arg(short = 'H', long = "host", env = "BERTH_HOST", default_value = berth_client::DEFAULT_HOST)]
    host: String,
    /// Print version information and quit
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create and run a new container from an image
    #[command(
        disable_help_flag = true,
        override_usage = "berth run [OPTIONS] IMAGE [COMMAND] [ARG...]"
    )]
    Run(RunArgs),
    /// Build an image from a Dockerfile
    #[command(override_usage = "berth build [OPTIONS] PATH | -")]
    Build(build::BuildArgs),
    /// Create a new container
    #[command(
        disable_help_flag = true,
        override_usage = "berth create [OPTIONS] IMAGE [COMMAND] [ARG...]"
    )]
    Create(RunArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Execute a command in a running container
    #[command(override_usage = "berth exec [OPTIONS] CONTAINER COMMAND [ARG...]")]
    Exec(exec::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(exec::AttachArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// List containers
    Ps(PsArgs),
    /// Return low-level information on Docker objects
    Inspect(InspectArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(Targets),
    /// Rename a container
    Rename(RenameArgs),
    /// Pause all processes within one or more containers
    Pause(Targets),
    /// Unpause all processes within one or more containers
    Unpause(Targets),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(commit::DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(commit::ExportArgs),
    /// Create a new image from a container's changes
    Commit(commit::CommitArgs),
    /// Update configuration of one or more containers
    Update(update::UpdateArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// List port mappings or a specific mapping for the container
    Port(network::PortArgs),
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Manage volumes
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCommand),
    /// List images
    Images(ImagesArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage builds
    #[command(subcommand)]
    Builder(BuilderCommand),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Download an image from a registry
    Pull(registry::PullArgs),
    /// Upload an image to a registry
    Push(registry::PushArgs),
    /// Authenticate to a registry
    Login(registry::LoginArgs),
    /// Log out from a registry
    Logout(registry::LogoutArgs),
    /// Run berth's own registry server (berth-registry)
    #[command(subcommand)]
    Registry(registry_server::RegistryCommand),
    /// Show the Docker version information
    Version(FormatArgs),
    /// Display system-wide information
    Info(FormatArgs),
    /// Get real time events from the server
    Events(EventsArgs),
    /// Manage Docker
    #[command(subcommand)]
    System(SystemCommand),
}

#[derive(Debug, Subcommand)]
enum SystemCommand {
    /// Show docker disk usage
    #[command(override_usage = "berth system df [OPTIONS]")]
    Df(df::DfArgs),
    /// Display system-wide information
    Info(FormatArgs),
    /// Get real time events from the server
    Events(EventsArgs),
}

#[derive(Debug, Subcommand)]
enum ContainerCommand {
    /// List containers
    #[command(visible_aliases = ["ps", "list"])]
    Ls(PsArgs),
    /// Create and run a new container from an image
    #[command(
        disable_help_flag = true,
        override_usage = "berth container run [OPTIONS] IMAGE [COMMAND] [ARG...]"
    )]
    Run(RunArgs),
    /// Create a new container
    #[command(
        disable_help_flag = true,
        override_usage = "berth container create [OPTIONS] IMAGE [COMMAND] [ARG...]"
    )]
    Create(RunArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Execute a command in a running container
    #[command(override_usage = "berth container exec [OPTIONS] CONTAINER COMMAND [ARG...]")]
    Exec(exec::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(exec::AttachArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Remove one or more containers
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Display detailed information on one or more containers
    Inspect(ContainerInspectArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(Targets),
    /// Rename a container
    Rename(RenameArgs),
    /// Pause all processes within one or more containers
    Pause(Targets),
    /// Unpause all processes within one or more containers
    Unpause(Targets),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(commit::DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(commit::ExportArgs),
    /// Create a new image from a container's changes
    Commit(commit::CommitArgs),
    /// Update configuration of one or more containers
    Update(update::UpdateArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Remove all stopped containers
    Prune(PruneArgs),
}

/// `container inspect` (the type is implied).
#[derive(Debug, Clone, clap::Args)]
struct ContainerInspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Display total file sizes (accepted, ignored)
    #[arg(short = 's', long)]
    size: bool,
    /// Containers
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum VolumeCommand {
    /// Create a volume
    #[command(override_usage = "berth volume create [OPTIONS] [VOLUME]")]
    Create(volume::VolumeCreateArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(volume::VolumeLsArgs),
    /// Display detailed information on one or more volumes
    #[command(override_usage = "berth volume inspect [OPTIONS] VOLUME [VOLUME...]")]
    Inspect(volume::VolumeInspectArgs),
    /// Remove one or more volumes
    #[command(
        visible_alias = "remove",
        override_usage = "berth volume rm [OPTIONS] VOLUME [VOLUME...]"
    )]
    Rm(volume::VolumeRmArgs),
    /// Remove unused local volumes
    #[command(override_usage = "berth volume prune [OPTIONS]")]
    Prune(volume::VolumePruneArgs),
    /// Write a volume's content as a tar archive (berth's own)
    #[command(override_usage = "berth volume export [OPTIONS] VOLUME")]
    Export(volume::VolumeExportArgs),
    /// Replace a volume's content with a tar archive's (berth's own)
    #[command(override_usage = "berth volume import [OPTIONS] VOLUME FILE|-")]
    Import(volume::VolumeImportArgs),
}

#[derive(Debug, Subcommand)]
enum NetworkCommand {
    /// List networks
    #[command(visible_alias = "list")]
    Ls(network::NetworkLsArgs),
    /// Display detailed information on one or more networks
    Inspect(network::NetworkInspectArgs),
    /// Create a network
    #[command(override_usage = "berth network create [OPTIONS] NETWORK")]
    Create(network::create::NetworkCreateArgs),
    /// Remove one or more networks
    #[command(
        visible_alias = "remove",
        override_usage = "berth network rm NETWORK [NETWORK...]"
    )]
    Rm(network::NetworkRmArgs),
    /// Remove all unused networks
    #[command(override_usage = "berth network prune [OPTIONS]")]
    Prune(network::NetworkPruneArgs),
    /// Connect a container to a network
    #[command(override_usage = "berth network connect [OPTIONS] NETWORK CONTAINER")]
    Connect(network::NetworkConnectArgs),
    /// Disconnect a container from a network
    #[command(override_usage = "berth network disconnect [OPTIONS] NETWORK CONTAINER")]
    Disconnect(network::NetworkDisconnectArgs),
}

#[derive(Debug, Subcommand)]
enum BuilderCommand {
    /// Remove build cache
    Prune(build::BuilderPruneArgs),
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// List images
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Display detailed information on one or more images
    Inspect(ImageInspectArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Remove unused images
    Prune(ImagePruneArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Save one or more images to a tar archive
    Save(SaveArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Download an image from a registry
    Pull(registry::PullArgs),
    /// Upload an image to a registry
    Push(registry::PushArgs),
    /// Build an image from a Dockerfile
    #[command(override_usage = "berth image build [OPTIONS] PATH | -")]
    Build(build::BuildArgs),
}

/// Prints one line on stdout, ignoring a closed pipe (`berth ps | head -1`).
pub(crate) fn outln(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{s}");
    let _ = o.flush();
}

/// Asks a yes/no question on stdout; only `y`/`yes` agree, as docker's prompt.
pub(crate) fn confirm(prompt: &str) -> bool {
    print!("{prompt}");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_lowercase().as_str(), "y" | "yes")
}

async fn dispatch(client: &Client, command: Command) -> Result<i32> {
    match command {
        Command::Run(a) => session::run_cmd(client, &a).await,
        Command::Build(a) => build::build(client, &a).await,
        Command::Create(a) => session::create_cmd(client, &a).await,
        Command::Start(a) => container::start(client, &a).await,
        Command::Exec(a) => exec::exec(client, &a).await,
        Command::Attach(a) => exec::attach(client, &a).await,
        Command::Stop(a) => container::stop(client, &a).await,
        Command::Kill(a) => container::kill(client, &a).await,
        Command::Restart(a) => container::restart(client, &a).await,
        Command::Rm(a) => container::rm(client, &a).await,
        Command::Ps(a) => container::ps(client, &a).await,
        Command::Inspect(a) => container::inspect(client, &a).await,
        Command::Logs(a) => container::logs(client, &a).await,
        Command::Wait(a) => container::wait(client, &a).await,
        Command::Rename(a) => container::rename(client, &a).await,
        Command::Pause(a) => container::pause(client, &a).await,
        Command::Unpause(a) => container::unpause(client, &a).await,
        Command::Top(a) => container::top(client, &a).await,
        Command::Stats(a) => stats::stats(client, &a).await,
        Command::Diff(a) => commit::diff(client, &a).await,
        Command::Export(a) => commit::export(client, &a).await,
        Command::Commit(a) => commit::commit(client, &a).await,
        Command::Update(a) => update::update(client, &a).await,
        Command::Cp(a) => cp::cp(client, &a).await,
        Command::Port(a) => network::port(client, &a).await,
        Command::Network(c) => dispatch_network(client, c).await,
        Command::Volume(c) => dispatch_volume(client, c).await,
        Command::Container(c) => dispatch_container(client, c).await,
        Command::Images(a) => image::images(client, &a).await,
        Command::Image(c) => dispatch_image(client, c).await,
        Command::Builder(BuilderCommand::Prune(a)) => build::prune(client, &a).await,
        Command::Tag(a) => image::tag(client, &a).await,
        Command::Rmi(a) => image::rmi(client, &a).await,
        Command::History(a) => image::history(client, &a).await,
        Command::Load(a) => image::load(client, &a).await,
        Command::Save(a) => image::save(client, &a).await,
        Command::Import(a) => image::import(client, &a).await,
        Command::Pull(a) => registry::pull_cmd(client, &a).await,
        Command::Push(a) => registry::push_cmd(client, &a).await,
        Command::Login(a) => registry::login_cmd(client, &a).await,
        Command::Logout(a) => registry::logout_cmd(&a).await,
        // Handled in main, before a client is made: it needs no daemon.
        Command::Registry(_) => unreachable!("berth registry runs berth-registry"),
        Command::Version(a) => system::version(client, &a).await,
        Command::Info(a) => system::info(client, &a).await,
        Command::Events(a) => system::events(client, &a).await,
        Command::System(SystemCommand::Df(a)) => df::df(client, &a).await,
        Command::System(SystemCommand::Info(a)) => system::info(client, &a).await,
        Command::System(SystemCommand::Events(a)) => system::events(client, &a).await,
    }
}

async fn dispatch_container(client: &Client, command: ContainerCommand) -> Result<i32> {
    let c = match command {
        ContainerCommand::Ls(a) => Command::Ps(a),
        ContainerCommand::Run(a) => Command::Run(a),
        ContainerCommand::Create(a) => Command::Create(a),
        ContainerCommand::Start(a) => Command::Start(a),
        ContainerCommand::Exec(a) => Command::Exec(a),
        ContainerCommand::Attach(a) => Command::Attach(a),
        ContainerCommand::Stop(a) => Command::Stop(a),
        ContainerCommand::Kill(a) => Command::Kill(a),
        ContainerCommand::Restart(a) => Command::Restart(a),
        ContainerCommand::Rm(a) => Command::Rm(a),
        ContainerCommand::Inspect(a) => Command::Inspect(InspectArgs {
            format: a.format,
            kind: Some("container".into()),
            size: a.size,
            names: a.containers,
        }),
        ContainerCommand::Logs(a) => Command::Logs(a),
        ContainerCommand::Wait(a) => Command::Wait(a),
        ContainerCommand::Rename(a) => Command::Rename(a),
        ContainerCommand::Pause(a) => Command::Pause(a),
        ContainerCommand::Unpause(a) => Command::Unpause(a),
        ContainerCommand::Top(a) => Command::Top(a),
        ContainerCommand::Stats(a) => Command::Stats(a),
        ContainerCommand::Diff(a) => Command::Diff(a),
        ContainerCommand::Export(a) => Command::Export(a),
        ContainerCommand::Commit(a) => Command::Commit(a),
        ContainerCommand::Update(a) => Command::Update(a),
        ContainerCommand::Cp(a) => Command::Cp(a),
        ContainerCommand::Prune(a) => return container::prune(client, &a).await,
    };
    Box::pin(dispatch(client, c)).await
}

async fn dispatch_volume(client: &Client, command: VolumeCommand) -> Result<i32> {
    match command {
        VolumeCommand::Create(a) => volume::create(client, &a).await,
        VolumeCommand::Ls(a) => volume::ls(client, &a).await,
        VolumeCommand::Inspect(a) => volume::inspect(client, &a).await,
        VolumeCommand::Rm(a) => volume::rm(client, &a).await,
        VolumeCommand::Prune(a) => volume::prune(client, &a).await,
        VolumeCommand::Export(a) => volume::export(client, &a).await,
        VolumeCommand::Import(a) => volume::import(client, &a).await,
    }
}

async fn dispatch_network(client: &Client, command: NetworkCommand) -> Result<i32> {
    match command {
        NetworkCommand::Ls(a) => network::ls(client, &a).await,
        NetworkCommand::Inspect(a) => network::inspect(client, &a).await,
        NetworkCommand::Create(a) => network::create::create(client, &a).await,
        NetworkCommand::Rm(a) => network::rm(client, &a).await,
        NetworkCommand::Prune(a) => network::prune(client, &a).await,
        NetworkCommand::Connect(a) => network::connect(client, &a).await,
        NetworkCommand::Disconnect(a) => network::disconnect(client, &a).await,
    }
}

async fn dispatch_image(client: &Client, command: ImageCommand) -> Result<i32> {
    match command {
        ImageCommand::Ls(a) => image::images(client, &a).await,
        ImageCommand::Inspect(a) => image::inspect(client, &a).await,
        ImageCommand::Tag(a) => image::tag(client, &a).await,
        ImageCommand::Rm(a) => image::rmi(client, &a).await,
        ImageCommand::History(a) => image::history(client, &a).await,
        ImageCommand::Prune(a) => image::prune(client, &a).await,
        ImageCommand::Load(a) => image::load(client, &a).await,
        ImageCommand::Save(a) => image::save(client, &a).await,
        ImageCommand::Import(a) => image::import(client, &a).await,
        ImageCommand::Pull(a) => registry::pull_cmd(client, &a).await,
        ImageCommand::Push(a) => registry::push_cmd(client, &a).await,
        ImageCommand::Build(a) => build::build(client, &a).await,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let argv: Vec<String> = std::env::args().collect();
            let mut root = <Cli as clap::CommandFactory>::command();
            root.build();
            if let Some((message, code)) = usage::report(&root, &e, &argv) {
                eprintln!("{message}");
                std::process::exit(code);
            }
            let code = if e.use_stderr() { usage::EXIT_USAGE } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if cli.version {
        outln(&format!("berth version {}", env!("CARGO_PKG_VERSION")));
        std::process::exit(0);
    }
    let Some(command) = cli.command else {
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        std::process::exit(0);
    };
    if let Command::Registry(r) = command {
        eprintln!("{}", registry_server::exec(r));
        std::process::exit(1);
    }
    let code = match Client::new(&cli.host) {
        Ok(client) => match dispatch(&client, command).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("{e}");
                1
            }
        },
        Err(e) => {
            eprintln!("{e}");
            1
        }
    };
    let _ = std::io::stdout().flush();
    // Exit at once: a stdin reader may still be blocked on a runtime thread.
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn global_host_and_short_flag_bundles() {
        let cli = Cli::try_parse_from(["berth", "-H", "unix:///x.sock", "ps", "-aq"]).unwrap();
        assert_eq!(cli.host, "unix:///x.sock");
        match cli.command {
            Some(Command::Ps(a)) => assert!(a.all && a.quiet),
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["berth", "container", "ls", "-a"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Container(ContainerCommand::Ls(_)))
        ));
        let cli =
            Cli::try_parse_from(["berth", "run", "--rm", "-h", "x", "busybox", "-h"]).unwrap();
        match cli.command {
            Some(Command::Run(a)) => {
                assert_eq!(a.hostname.as_deref(), Some("x"));
                assert_eq!(a.image_and_command, ["busybox", "-h"]);
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["berth", "stop", "-t", "0", "a", "b"]).unwrap();
        match cli.command {
            Some(Command::Stop(a)) => {
                assert_eq!(a.time, Some(0));
                assert_eq!(a.targets.containers, ["a", "b"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn network_verbs_parse_as_dockers() {
        let cli = Cli::try_parse_from(["berth", "network", "remove", "-f", "a", "b"]).unwrap();
        match cli.command {
            Some(Command::Network(NetworkCommand::Rm(a))) => {
                assert!(a.force);
                assert_eq!(a.networks, ["a", "b"]);
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from([
            "berth",
            "network",
            "create",
            "-d",
            "bridge",
            "--subnet",
            "10.1.0.0/24",
            "--ipv6",
            "n1",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Network(NetworkCommand::Create(a))) => {
                assert_eq!((a.name.as_str(), a.ipv6, a.ipv4), ("n1", Some(true), None));
            }
            other => panic!("{other:?}"),
        }
        let cli =
            Cli::try_parse_from(["berth", "run", "--network", "n1", "--net", "n2", "busybox"])
                .unwrap();
        match cli.command {
            Some(Command::Run(a)) => {
                let names: Vec<&str> = a.network.iter().map(|n| n.target.as_str()).collect();
                assert_eq!(names, ["n1", "n2"]);
            }
            other => panic!("{other:?}"),
        }
        for args in [
            &["berth", "network", "connect", "n1"][..],
            &["berth", "network", "disconnect", "n1", "c", "x"],
            &["berth", "network", "prune", "x"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn unknown_flags_are_usage_errors() {
        let e = Cli::try_parse_from(["berth", "ps", "--bogus"]).unwrap_err();
        assert!(e.use_stderr());
    }
}

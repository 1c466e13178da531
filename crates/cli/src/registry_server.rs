//! `berth registry serve|gc`: runs `berth-registry` (installed beside `berth`) with the
//! arguments as given. The server lives in its own binary so that the static CLI does not
//! link it.

use std::os::unix::process::CommandExt;

use clap::{Args, Subcommand};

/// `berth registry`.
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Serve berth's own OCI Distribution registry (berth-registry serve --help)
    #[command(disable_help_flag = true)]
    Serve(PassThrough),
    /// Remove the registry's unreferenced blobs (berth-registry gc --help)
    #[command(disable_help_flag = true)]
    Gc(PassThrough),
}

/// The arguments, handed to `berth-registry` untouched (its own `--help` included).
#[derive(Debug, Args)]
pub struct PassThrough {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<String>,
}

/// Replaces this process with `berth-registry <serve|gc> ARGS...`; returns only on failure.
pub fn exec(command: RegistryCommand) -> anyhow::Error {
    let (verb, args) = match command {
        RegistryCommand::Serve(a) => ("serve", a.args),
        RegistryCommand::Gc(a) => ("gc", a.args),
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e.with_file_name("berth-registry"),
        Err(e) => return anyhow::anyhow!("cannot find berth's own path: {e}"),
    };
    let e = std::process::Command::new(&exe).arg(verb).args(args).exec();
    anyhow::anyhow!(
        "cannot run {}: {e} (berth-registry is installed beside berth)",
        exe.display()
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: RegistryCommand,
    }

    #[test]
    fn registry_arguments_pass_through_untouched() {
        let cli = Cli::try_parse_from(["x", "serve", "--addr", "127.0.0.1:1", "--help"]).unwrap();
        match cli.command {
            RegistryCommand::Serve(a) => assert_eq!(a.args, ["--addr", "127.0.0.1:1", "--help"]),
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["x", "gc", "--root", "/r", "--dry-run"]).unwrap();
        assert!(
            matches!(cli.command, RegistryCommand::Gc(a) if a.args == ["--root", "/r", "--dry-run"])
        );
    }
}

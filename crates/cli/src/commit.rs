//! A container's filesystem: `diff`, `export`, `commit`.

use std::io::IsTerminal;

use anyhow::{bail, Result};
use berth_client::{Client, CommitOptions};
use clap::Args;

use crate::outln;

/// `diff`.
#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// Container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `commit`.
#[derive(Debug, Clone, Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, default_value = "true")]
    pub pause: bool,
    /// Container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// REPOSITORY[:TAG]
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// `diff`: one `K /path` line per change.
pub async fn diff(client: &Client, args: &DiffArgs) -> Result<i32> {
    let changes = client.container_changes(&args.container).await?;
    for c in changes.unwrap_or_default() {
        let kind = match c.kind {
            0 => "C",
            1 => "A",
            2 => "D",
            _ => "?",
        };
        outln(&format!("{kind} {}", c.path));
    }
    Ok(0)
}

/// `export`: refuses to write a tar to a terminal, as docker does; with `-o` the file
/// appears whole or not at all (written beside it, then renamed).
pub async fn export(client: &Client, args: &ExportArgs) -> Result<i32> {
    if args.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let stream = client.container_export(&args.container).await?;
    crate::image::write_stream(stream, args.output.as_deref(), "failed to export container")
        .await?;
    Ok(0)
}

/// `commit`: prints the new image's id.
pub async fn commit(client: &Client, args: &CommitArgs) -> Result<i32> {
    if args.reference.as_deref().is_some_and(|r| r.contains('@')) {
        bail!("refusing to create a tag with a digest reference");
    }
    let options = CommitOptions {
        // The daemon reads `repo` whole (`name[:tag]`) when no `tag` comes with it.
        repo: args.reference.clone(),
        tag: None,
        comment: args.message.clone().filter(|m| !m.is_empty()),
        author: args.author.clone().filter(|a| !a.is_empty()),
        changes: args.change.clone(),
        no_pause: !args.pause,
    };
    let id = client.container_commit(&args.container, &options).await?;
    outln(&id.id);
    Ok(0)
}

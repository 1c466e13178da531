//! Image verbs: images, inspect, tag, rmi, history, prune, load, save, import.

use std::io::{IsTerminal, Write};

use anyhow::{bail, Result};
use berth_api::image::DeleteItem;
use berth_client::{Client, ErrorKind, ImportOptions, JsonMessage, JsonStream};
use clap::Args;
use futures_util::StreamExt;
use serde_json::Value;

use crate::container::{parse_filters, print_raw};
use crate::format::Formatter;
use crate::output::{
    history_header, history_row, image_rows, images_header, HISTORY_TABLE, IMAGES_TABLE,
    IMAGES_TABLE_DIGESTS,
};
use crate::{confirm, outln};

/// `images` / `image ls`.
#[derive(Debug, Clone, Args)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

/// `image inspect`.
#[derive(Debug, Clone, Args)]
pub struct ImageInspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Images
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// `tag SOURCE TARGET`.
#[derive(Debug, Clone, Args)]
pub struct TagArgs {
    /// SOURCE_IMAGE[:TAG]
    pub source: String,
    /// TARGET_IMAGE[:TAG]
    pub target: String,
}

/// `rmi`.
#[derive(Debug, Clone, Args)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    /// Images
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// `history`.
#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Print sizes and dates in human readable format (accepted; always human)
    #[arg(short = 'H', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, default_value = "true")]
    pub human: bool,
    /// Image
    pub image: String,
}

/// `image prune`.
#[derive(Debug, Clone, Args)]
pub struct ImagePruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    pub filter: Vec<String>,
}

/// `load`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long)]
    pub input: Option<String>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `save`.
#[derive(Debug, Clone, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Images
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// `import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable (accepted, ignored)
    #[arg(long)]
    pub platform: Option<String>,
    /// file|URL|- to read from
    pub source: String,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

/// Splits `repo[:tag]` (a `:` after the last `/` is the tag); no tag gives `latest`.
pub fn split_reference(r: &str) -> (String, String) {
    let last = r.rfind('/').map(|i| i + 1).unwrap_or(0);
    match r[last..].rfind(':') {
        Some(i) => (r[..last + i].to_string(), r[last + i + 1..].to_string()),
        None => (r.to_string(), "latest".to_string()),
    }
}

/// `images`.
pub async fn images(client: &Client, args: &ImagesArgs) -> Result<i32> {
    let mut filters = parse_filters(&args.filter)?;
    if let Some(r) = &args.reference {
        filters.add("reference", r);
    }
    let list = client.image_list(args.all, &filters).await?;
    let default = if args.digests {
        IMAGES_TABLE_DIGESTS
    } else {
        IMAGES_TABLE
    };
    // docker's `-q` prints one id per row (an image with two tags twice); a custom --format
    // wins over it.
    let format = if args.quiet && quiet_applies(args.format.as_deref()) {
        Some("{{.ID}}")
    } else {
        args.format.as_deref()
    };
    let f = Formatter::new(format, default)?;
    let rows: Vec<Value> = list
        .iter()
        .flat_map(|i| image_rows(i, !args.no_trunc))
        .collect();
    print_raw(&f.render(&images_header(), &rows)?);
    Ok(0)
}

/// docker's image and history formatters honour `-q` only for the default (table) format.
fn quiet_applies(format: Option<&str>) -> bool {
    matches!(format, None | Some("") | Some("table"))
}

/// `image inspect`.
pub async fn inspect(client: &Client, args: &ImageInspectArgs) -> Result<i32> {
    let a = crate::container::InspectArgs {
        format: args.format.clone(),
        kind: Some("image".into()),
        size: false,
        names: args.images.clone(),
    };
    crate::container::inspect(client, &a).await
}

/// `tag`.
pub async fn tag(client: &Client, args: &TagArgs) -> Result<i32> {
    let (repo, tag) = split_reference(&args.target);
    client.image_tag(&args.source, &repo, &tag).await?;
    Ok(0)
}

fn print_deleted(items: &[DeleteItem], lower: bool) {
    for item in items {
        let (word, what) = match item {
            DeleteItem::Untagged(x) => ("Untagged", x),
            DeleteItem::Deleted(x) => ("Deleted", x),
        };
        let word = if lower {
            word.to_lowercase()
        } else {
            word.to_string()
        };
        outln(&format!("{word}: {what}"));
    }
}

/// `rmi`: with `-f`, a missing image is reported but does not fail (docker).
pub async fn rmi(client: &Client, args: &RmiArgs) -> Result<i32> {
    let mut status = 0;
    for img in &args.images {
        match client.image_remove(img, args.force, args.no_prune).await {
            Ok(items) => print_deleted(&items, false),
            Err(e) => {
                eprintln!("{e}");
                if !(args.force && e.kind() == ErrorKind::NotFound) {
                    status = 1;
                }
            }
        }
    }
    Ok(status)
}

/// `history`.
pub async fn history(client: &Client, args: &HistoryArgs) -> Result<i32> {
    let items = client.image_history(&args.image).await?;
    let format = if args.quiet && quiet_applies(args.format.as_deref()) {
        Some("{{.ID}}")
    } else {
        args.format.as_deref()
    };
    let f = Formatter::new(format, HISTORY_TABLE)?;
    let rows: Vec<Value> = items
        .iter()
        .map(|h| history_row(h, !args.no_trunc))
        .collect();
    print_raw(&f.render(&history_header(), &rows)?);
    Ok(0)
}

/// `image prune`.
pub async fn prune(client: &Client, args: &ImagePruneArgs) -> Result<i32> {
    let warning = if args.all {
        "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue? [y/N] "
    } else {
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] "
    };
    if !args.force && !confirm(warning) {
        return Ok(0);
    }
    let mut filters = parse_filters(&args.filter)?;
    filters.add("dangling", if args.all { "false" } else { "true" });
    let report = client.image_prune(&filters).await?;
    let deleted = report.images_deleted.unwrap_or_default();
    let mut space = 0;
    if !deleted.is_empty() {
        outln("Deleted Images:");
        print_deleted(&deleted, true);
        outln("");
        space = report.space_reclaimed;
    }
    outln(&format!(
        "Total reclaimed space: {}",
        crate::human::human_size(space as f64)
    ));
    Ok(0)
}

/// Prints a progress stream: `stream` text as is, statuses as lines; an in-band error
/// ends the command with status 1.
async fn print_progress(mut stream: JsonStream<JsonMessage>) -> Result<i32> {
    while let Some(msg) = stream.next().await {
        let msg = msg?;
        if let Some(err) = msg.failure() {
            eprintln!("{err}");
            return Ok(1);
        }
        if let Some(s) = &msg.stream {
            print_raw(s);
        } else if let Some(status) = &msg.status {
            let line = match (&msg.id, &msg.progress) {
                (Some(id), Some(p)) => format!("{id}: {status} {p}"),
                (Some(id), None) => format!("{id}: {status}"),
                (None, _) => status.clone(),
            };
            outln(&line);
        }
    }
    Ok(0)
}

/// `load`.
pub async fn load(client: &Client, args: &LoadArgs) -> Result<i32> {
    // docker asks for quiet output when stdout is not a terminal.
    let quiet = args.quiet || !std::io::stdout().is_terminal();
    let stream = match &args.input {
        Some(path) => {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| anyhow::anyhow!("open {path}: {}", io_reason(&e)))?;
            client.image_load(file, quiet).await?
        }
        None => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            client.image_load(tokio::io::stdin(), quiet).await?
        }
    };
    print_progress(stream).await
}

/// `save`: refuses to write an archive to a terminal.
pub async fn save(client: &Client, args: &SaveArgs) -> Result<i32> {
    if args.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let stream = client.image_save(&args.images).await?;
    write_stream(stream, args.output.as_deref(), "failed to save image").await?;
    Ok(0)
}

/// Writes `stream` (a `save` or an `export`) to the file `output`, next to it first and
/// renamed once whole, so a failure leaves no partial file (`failed: open X: reason`); or to
/// stdout. An `output` that is a device or a FIFO (`-o /dev/null`) is written to as it is:
/// renamed over, it would be replaced by a regular file.
pub(crate) async fn write_stream(
    mut stream: berth_client::ByteStream,
    output: Option<&str>,
    failed: &str,
) -> Result<()> {
    let special = output.is_some_and(|p| {
        std::fs::metadata(p).is_ok_and(|m| !m.file_type().is_file() && !m.file_type().is_dir())
    });
    match output {
        Some(path) if special => {
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| anyhow::anyhow!("{failed}: open {path}: {}", io_reason(&e)))?;
            while let Some(chunk) = stream.next().await {
                out.write_all(&chunk?)?;
            }
        }
        Some(path) => {
            let tmp = format!("{path}.berth-tmp");
            let mut file = std::fs::File::create(&tmp)
                .map_err(|e| anyhow::anyhow!("{failed}: open {tmp}: {}", io_reason(&e)))?;
            let result: Result<()> = async {
                while let Some(chunk) = stream.next().await {
                    file.write_all(&chunk?)?;
                }
                file.sync_all()?;
                Ok(())
            }
            .await;
            if let Err(e) = result {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("{failed}: {path}: {e}"))?;
        }
        None => {
            // Straight to descriptor 1: std's stdout is line-buffered, and would split each
            // binary chunk at its last newline.
            use std::os::fd::AsFd;
            let fd = std::io::stdout().as_fd().try_clone_to_owned()?;
            // A pipe's buffer of 1 MiB (best effort; anything but a pipe refuses it): an
            // archive goes to the next command in fewer, larger steps.
            let _ = rustix::pipe::fcntl_setpipe_size(&fd, 1 << 20);
            let mut out = std::fs::File::from(fd);
            while let Some(chunk) = stream.next().await {
                out.write_all(&chunk?)?;
            }
        }
    }
    Ok(())
}

/// `import`.
pub async fn import(client: &Client, args: &ImportArgs) -> Result<i32> {
    // docker sends the reference whole as `repo` (`repo=x%3A1`), no `tag`.
    let opts = ImportOptions {
        repo: args.reference.clone(),
        tag: None,
        changes: args.change.clone(),
        message: args.message.clone(),
    };
    let stream = if args.source == "-" {
        client.image_import(tokio::io::stdin(), &opts).await?
    } else {
        if args.source.starts_with("http://") || args.source.starts_with("https://") {
            bail!("importing from a URL is not supported by berth yet");
        }
        let file = tokio::fs::File::open(&args.source)
            .await
            .map_err(|e| anyhow::anyhow!("open {}: {}", args.source, io_reason(&e)))?;
        client.image_import(file, &opts).await?
    };
    print_progress(stream).await
}

pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_at_the_tag_colon_only() {
        assert_eq!(
            split_reference("busybox"),
            ("busybox".into(), "latest".into())
        );
        assert_eq!(split_reference("busybox:1"), ("busybox".into(), "1".into()));
        assert_eq!(
            split_reference("localhost:5000/x"),
            ("localhost:5000/x".into(), "latest".into())
        );
        assert_eq!(
            split_reference("localhost:5000/x:2"),
            ("localhost:5000/x".into(), "2".into())
        );
    }
}

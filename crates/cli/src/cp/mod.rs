//! `cp`: the docker CLI's `docker cp` (cli/command/container/cp.go), over `HEAD`, `GET` and
//! `PUT /containers/{id}/archive`. The daemon only stats, tars and untars a path in the
//! container; the rules for where a copy lands (a trailing `/` or `/.`, an existing file or
//! directory, a missing parent, `-L`) are the CLI's, made here on the local side
//! ([`local`]) exactly as docker makes them, with its messages.

mod local;

use std::io::{IsTerminal, Read, Write};
use std::os::unix::ffi::OsStrExt;

use anyhow::{bail, Result};
use berth_api::archive::gopath;
use berth_api::archive::{PathStat, MODE_DEVICE, MODE_IRREGULAR};
use berth_client::Client;
use clap::Args;
use futures_util::StreamExt;

use local::{CopyInfo, Rebase};

/// `cp`.
#[derive(Debug, Clone, Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long = "archive")]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Suppress progress output during copy. Progress output is automatically suppressed if
    /// no terminal is attached
    #[arg(short = 'q', long = "quiet", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub quiet: Option<bool>,
    /// CONTAINER:SRC_PATH, or a local SRC_PATH, or - (a tar on stdin)
    #[arg(value_name = "SRC", allow_hyphen_values = true)]
    pub source: String,
    /// a local DEST_PATH, or - (a tar on stdout), or CONTAINER:DEST_PATH
    #[arg(value_name = "DEST", allow_hyphen_values = true)]
    pub destination: String,
}

/// What the command needs after parsing.
struct Copy {
    follow_link: bool,
    copy_uid_gid: bool,
    quiet: bool,
    container: String,
    source: Vec<u8>,
    destination: Vec<u8>,
}

/// `docker cp` splits `CONTAINER:PATH` at the first `:`, unless the argument is an absolute
/// path or starts with `.` (`./file:name`).
fn split_cp_arg(arg: &str) -> (&str, &str) {
    if arg.starts_with('/') {
        return ("", arg);
    }
    match arg.split_once(':') {
        Some((container, path)) if !container.starts_with('.') => (container, path),
        _ => ("", arg),
    }
}

/// `docker cp`.
pub async fn cp(client: &Client, args: &CpArgs) -> Result<i32> {
    if args.source.is_empty() {
        bail!("source can not be empty");
    }
    if args.destination.is_empty() {
        bail!("destination can not be empty");
    }
    let (src_container, src_path) = split_cp_arg(&args.source);
    let (dst_container, dst_path) = split_cp_arg(&args.destination);
    let mut copy = Copy {
        follow_link: args.follow_link,
        copy_uid_gid: args.archive,
        // As docker 28: the summary line ("Successfully copied 2.05kB to ctr:/x", on
        // stderr) unless `-q`, and without a `-q` of either value only when stdout is a
        // terminal; `--quiet=false` asks for it. (Its progress display never shows: it
        // checks a wrapped stderr, which is never a terminal.)
        quiet: args
            .quiet
            .unwrap_or_else(|| !std::io::stdout().is_terminal()),
        container: String::new(),
        source: src_path.as_bytes().to_vec(),
        destination: dst_path.as_bytes().to_vec(),
    };
    match (src_container.is_empty(), dst_container.is_empty()) {
        (false, false) => bail!("copying between containers is not supported"),
        (true, true) => bail!("must specify at least one container source"),
        (false, true) => {
            copy.container = src_container.to_string();
            from_container(client, &copy).await?;
        }
        (true, false) => {
            copy.container = dst_container.to_string();
            to_container(client, &copy).await?;
        }
    }
    Ok(0)
}

/// `filepath.Abs` with the trailing `/.` or `/` kept (`resolveLocalPath`).
fn resolve_local_path(path: &[u8]) -> Result<Vec<u8>> {
    let abs = if path.starts_with(b"/") {
        gopath::clean(path)
    } else {
        let cwd = std::env::current_dir()?;
        gopath::join(cwd.as_os_str().as_bytes(), path)
    };
    Ok(gopath::preserve_trailing(&abs, path))
}

/// docker's `ValidateOutputPathFileMode`.
fn validate_file_mode(mode: u32) -> Result<(), &'static str> {
    if mode & MODE_DEVICE != 0 {
        return Err("got a device");
    }
    if mode & MODE_IRREGULAR != 0 {
        return Err("got an irregular file");
    }
    Ok(())
}

/// docker's `ValidateOutputPath`: the destination's directory exists, and the destination
/// is a directory or a regular file if it exists.
fn validate_output_path(path: &[u8]) -> Result<()> {
    let show = local::show;
    let dir = gopath::dir(&gopath::clean(path));
    let os = |p: &[u8]| std::path::PathBuf::from(std::ffi::OsStr::from_bytes(p));
    if dir != b"." && !dir.is_empty() {
        if let Err(e) = std::fs::metadata(os(&dir)) {
            if e.kind() == std::io::ErrorKind::NotFound {
                bail!(
                    "invalid output path: directory {:?} does not exist",
                    show(&dir)
                );
            }
        }
    }
    match std::fs::metadata(os(path)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(local::go_err("stat", path, &e)),
        Ok(m) if m.is_dir() || m.is_file() => Ok(()),
        Ok(m) => {
            use std::os::unix::fs::MetadataExt;
            let mode = berth_api::archive::go_file_mode(m.mode());
            match validate_file_mode(mode) {
                Ok(()) => Ok(()),
                Err(why) => bail!(
                    "invalid output path: {:?} must be a directory or a regular file: {why}",
                    show(path)
                ),
            }
        }
    }
}

/// A symlink's target as the docker CLI follows it: relative ones from the link's
/// directory.
fn link_target(path: &[u8], stat: &PathStat) -> Vec<u8> {
    let target = stat.link_target.as_bytes();
    if target.starts_with(b"/") {
        target.to_vec()
    } else {
        gopath::join(&gopath::split_dir_entry(path).0, target)
    }
}

/// `docker cp CONTAINER:SRC DEST|-`.
async fn from_container(client: &Client, copy: &Copy) -> Result<()> {
    let mut dst = copy.destination.clone();
    if dst != b"-" {
        dst = resolve_local_path(&dst)?;
    }
    validate_output_path(&dst)?;
    let mut src = copy.source.clone();
    let mut rebase_name = Vec::new();
    if copy.follow_link {
        let src_str = String::from_utf8_lossy(&src).into_owned();
        if let Ok(stat) = client.container_stat_path(&copy.container, &src_str).await {
            if stat.is_symlink() {
                let target = link_target(&src, &stat);
                let (resolved, rebase) = local::rebase_name(&src, &target);
                src = resolved;
                rebase_name = rebase;
            }
        }
    }
    let src_str = String::from_utf8_lossy(&src).into_owned();
    let (stat, mut stream) = client.container_archive(&copy.container, &src_str).await?;
    if dst == b"-" {
        let mut out = std::io::stdout().lock();
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk?)?;
        }
        out.flush()?;
        return Ok(());
    }
    let src_info = CopyInfo {
        path: src.clone(),
        exists: true,
        is_dir: stat.is_dir(),
        rebase_name: rebase_name.clone(),
    };
    // The archive is extracted on a blocking thread as it arrives.
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes_chunk::Chunk>(16);
    let dst_for_untar = dst.clone();
    let untar = tokio::task::spawn_blocking(move || -> Result<()> {
        let reader = bytes_chunk::ChannelReader::new(rx);
        // A followed symlink: its target's entries take the link's name first
        // (RebaseArchiveEntries in copyFromContainer).
        let reader: Box<dyn Read> = Box::new(reader);
        let dst_info = local::copy_info_destination_path(&dst_for_untar)?;
        let (dst_dir, rebase) = local::prepare_archive_copy(&src_info, &dst_info)?;
        let link_rebase = (!src_info.rebase_name.is_empty()).then(|| {
            let (_, src_base) = gopath::split_dir_entry(&src_info.path);
            Rebase::new(&src_base, &src_info.rebase_name)
        });
        let combined = compose(link_rebase, rebase);
        local::untar(reader, &dst_dir, combined.as_ref())
    });
    let mut copied: u64 = 0;
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                copied += bytes.len() as u64;
                if tx.send(Ok(bytes.to_vec())).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e.to_string())).await;
                failure = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let result = untar
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("extracting: {e}")));
    if !copy.quiet {
        eprintln!(
            "Successfully copied {} to {}",
            crate::human::human_size_precision(copied as f64, 3),
            local::show(&dst)
        );
    }
    if let Some(e) = failure {
        return Err(e.into());
    }
    result
}

/// Two renamings applied one after the other.
fn compose(first: Option<Rebase>, second: Option<Rebase>) -> Option<Rebase> {
    match (first, second) {
        (None, r) | (r, None) => r,
        (Some(a), Some(b)) => {
            // Both rename the archive's first element: the second sees the first's result.
            if b.from == a.to || b.from.is_empty() {
                Some(Rebase {
                    from: a.from,
                    to: b.apply(&a.to),
                })
            } else {
                Some(a)
            }
        }
    }
}

/// `docker cp SRC|- CONTAINER:DEST`.
async fn to_container(client: &Client, copy: &Copy) -> Result<()> {
    let mut src = copy.source.clone();
    if src != b"-" {
        src = resolve_local_path(&src)?;
    }
    let dst_path = copy.destination.clone();
    let mut dst_info = CopyInfo {
        path: dst_path.clone(),
        ..Default::default()
    };
    let dst_str = String::from_utf8_lossy(&dst_path).into_owned();
    let show_dst = format!("{}:{}", copy.container, dst_str);
    if let Ok(mut stat) = client.container_stat_path(&copy.container, &dst_str).await {
        let mut found = true;
        if stat.is_symlink() {
            let target = link_target(&dst_path, &stat);
            dst_info.path = target.clone();
            match client
                .container_stat_path(&copy.container, &String::from_utf8_lossy(&target))
                .await
            {
                Ok(s) => stat = s,
                Err(_) => found = false,
            }
        }
        if found {
            if let Err(why) = validate_file_mode(stat.mode) {
                bail!("destination {show_dst:?} must be a directory or a regular file: {why}");
            }
            dst_info.exists = true;
            dst_info.is_dir = stat.is_dir();
        }
    }
    let (counter_tx, mut counter_rx) = tokio::sync::watch::channel(0u64);
    let (resolved_dst, body): (Vec<u8>, Box<dyn tokio::io::AsyncRead + Send + Unpin>) =
        if src == b"-" {
            if !dst_info.is_dir {
                bail!("destination {show_dst:?} must be a directory");
            }
            (dst_info.path.clone(), Box::new(tokio::io::stdin()))
        } else {
            let src_info = local::copy_info_source_path(&src, copy.follow_link)?;
            let (dst_dir, rebase) = local::prepare_archive_copy(&src_info, &dst_info)?;
            let (reader, writer) = tokio::io::duplex(256 * 1024);
            let handle = tokio::runtime::Handle::current();
            std::thread::spawn(move || {
                let out = bytes_chunk::BlockingWriter::new(handle, writer, counter_tx);
                if let Err(e) = local::tar_resource(&src_info, rebase.as_ref(), out) {
                    eprintln!("{e}");
                }
            });
            (dst_dir, Box::new(reader))
        };
    let result = client
        .container_extract(
            &copy.container,
            &String::from_utf8_lossy(&resolved_dst),
            body,
            false,
            copy.copy_uid_gid,
        )
        .await;
    if !copy.quiet {
        let copied = *counter_rx.borrow_and_update();
        eprintln!(
            "Successfully copied {} to {}:{}",
            crate::human::human_size_precision(copied as f64, 3),
            copy.container,
            local::show(&dst_info.path)
        );
    }
    result?;
    Ok(())
}

/// Moving bytes between the async client and the blocking tar code.
mod bytes_chunk {
    use std::io::{self, Read, Write};

    /// A chunk of the archive, or the error that ended it.
    pub type Chunk = Result<Vec<u8>, String>;

    /// A blocking reader over chunks sent from the async side.
    pub struct ChannelReader {
        rx: tokio::sync::mpsc::Receiver<Chunk>,
        buf: Vec<u8>,
        pos: usize,
    }

    impl ChannelReader {
        pub fn new(rx: tokio::sync::mpsc::Receiver<Chunk>) -> Self {
            ChannelReader {
                rx,
                buf: Vec::new(),
                pos: 0,
            }
        }
    }

    impl Read for ChannelReader {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            while self.pos == self.buf.len() {
                match self.rx.blocking_recv() {
                    Some(Ok(chunk)) => {
                        self.buf = chunk;
                        self.pos = 0;
                    }
                    Some(Err(e)) => return Err(io::Error::other(e)),
                    None => return Ok(0),
                }
            }
            let n = out.len().min(self.buf.len() - self.pos);
            out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    /// A blocking writer into the async request body, counting what it wrote.
    pub struct BlockingWriter {
        handle: tokio::runtime::Handle,
        inner: tokio::io::DuplexStream,
        written: u64,
        counter: tokio::sync::watch::Sender<u64>,
    }

    impl BlockingWriter {
        pub fn new(
            handle: tokio::runtime::Handle,
            inner: tokio::io::DuplexStream,
            counter: tokio::sync::watch::Sender<u64>,
        ) -> Self {
            BlockingWriter {
                handle,
                inner,
                written: 0,
                counter,
            }
        }
    }

    impl Write for BlockingWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            use tokio::io::AsyncWriteExt;
            self.handle.block_on(self.inner.write_all(buf))?;
            self.written += buf.len() as u64;
            self.counter.send_replace(self.written);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Drop for BlockingWriter {
        fn drop(&mut self) {
            use tokio::io::AsyncWriteExt;
            let _ = self.handle.block_on(self.inner.shutdown());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_as_dockers() {
        assert_eq!(split_cp_arg("c:/x"), ("c", "/x"));
        assert_eq!(split_cp_arg("/abs:x"), ("", "/abs:x"));
        assert_eq!(split_cp_arg("./f:x"), ("", "./f:x"));
        assert_eq!(split_cp_arg("file"), ("", "file"));
        assert_eq!(split_cp_arg("-"), ("", "-"));
        assert_eq!(split_cp_arg("c:"), ("c", ""));
    }

    #[test]
    fn a_followed_link_is_renamed_before_the_copy_rename() {
        let link = Some(Rebase::new(b"target", b"link"));
        let copy = Some(Rebase::new(b"link", b"dest"));
        let both = compose(link, copy).unwrap();
        assert_eq!(both.apply(b"target/x"), b"dest/x");
    }
}

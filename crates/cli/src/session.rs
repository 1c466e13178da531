//! Attached sessions: `run` (docker's choreography), `start -a`, and the output pump.

use std::io::Write;

use anyhow::Result;
use berth_api::stream::StreamKind;
use berth_client::{AttachOptions, Client, ClientError, Hijacked, WaitFuture};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::run::{create_request, RunArgs};
use berth_api::stream::DEFAULT_DETACH_KEYS;

/// Exit status docker uses for its own failures around a container.
pub const EXIT_DAEMON: i32 = 125;

/// docker's `runStartContainerErr`: 127 when the command was not found, 126 when it could
/// not be executed, 125 otherwise (matched on the daemon's message text).
pub fn start_error_exit_code(message: &str) -> i32 {
    let m = message
        .strip_prefix("Error response from daemon: ")
        .unwrap_or(message);
    if m.contains("executable file not found")
        || m.contains("no such file or directory")
        || m.contains("system cannot find the file specified")
    {
        127
    } else if m.contains("permission denied") || m.contains("is a directory") {
        126
    } else {
        EXIT_DAEMON
    }
}

/// docker's `reportError` (CLI 28): `berth: <msg>`, a blank line and the help hint.
pub fn report_error(command: &str, message: &str) {
    eprintln!("berth: {message}\n\nRun 'berth {command} --help' for more information");
}

/// A refused `run`/`create` request as docker prints it: a bad flag value as cobra reports
/// it (the message, usage, and the help hint); a bad combination of flags (`conflicting
/// options: ...`, `network "x" is specified multiple times`) as `reportError` does.
fn report_flag_error(command: &str, message: &str) {
    let flag_error = [
        "invalid argument ",
        "unknown flag: ",
        "unknown shorthand flag: ",
    ]
    .iter()
    .any(|p| message.starts_with(p));
    if !flag_error {
        return report_error(command, message);
    }
    eprintln!(
        "{message}\n\nUsage:  berth {command} [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'berth {command} --help' for more information"
    );
}

/// `image` with `:latest` added when it names no tag or digest, as docker prints it.
pub fn tagged(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// Creates the container; on "No such image" prints docker's notice first. Errors are
/// reported (`berth: ...`) here; the returned code is the exit status.
async fn create(client: &Client, args: &RunArgs, command: &str) -> Result<String, i32> {
    let (name, mut request) = match create_request(args) {
        Ok(r) => r,
        Err(e) => {
            report_flag_error(command, &e);
            return Err(EXIT_DAEMON);
        }
    };
    // API >= 1.42 sizes the pty at creation; docker sends [0,0] without a terminal.
    let (h, w) = if args.tty && !args.detach {
        crate::tty::size().unwrap_or((0, 0))
    } else {
        (0, 0)
    };
    if let Some(hc) = request.host_config.as_mut() {
        hc.extra
            .insert("ConsoleSize".into(), serde_json::json!([h, w]));
    }
    let image = request.config.image.clone();
    let platform = args.platform.as_deref();
    let pull = |client: &Client| {
        let image = image.clone();
        let client = client.clone();
        let quiet = args.quiet;
        async move {
            let (name, tag) = crate::registry::split_for_run(&image);
            crate::registry::pull(&client, &name, Some(&tag), platform, quiet, true).await
        }
    };
    match args.pull.as_str() {
        "missing" | "never" => {}
        "always" => {
            if let Err(e) = pull(client).await {
                report_error(command, &format!("Error response from daemon: {e}"));
                return Err(EXIT_DAEMON);
            }
        }
        other => {
            report_flag_error(
                command,
                &format!(
                    "invalid pull option: '{other}': must be one of \"always\", \"missing\" or \"never\""
                ),
            );
            return Err(EXIT_DAEMON);
        }
    }
    let mut pulled = false;
    loop {
        match client
            .container_create(name.as_deref(), platform, &request)
            .await
        {
            Ok(resp) => {
                for w in &resp.warnings {
                    eprintln!("WARNING: {w}");
                }
                return Ok(resp.id);
            }
            Err(e) => {
                if e.is_not_found() && e.message().starts_with("No such image") && !pulled {
                    eprintln!("Unable to find image '{}' locally", tagged(&image));
                    if args.pull != "never" {
                        if let Err(pe) = pull(client).await {
                            report_error(command, &format!("Error response from daemon: {pe}"));
                            return Err(EXIT_DAEMON);
                        }
                        pulled = true;
                        continue;
                    }
                }
                report_error(command, &e.to_string());
                return Err(start_error_exit_code(&e.to_string()));
            }
        }
    }
}

/// `berth create`: prints the new id.
pub async fn create_cmd(client: &Client, args: &RunArgs) -> Result<i32> {
    match create(client, args, "create").await {
        Ok(id) => {
            crate::outln(&id);
            Ok(0)
        }
        Err(code) => Ok(code),
    }
}

/// `berth run`: create, attach (unless -d), wait (headers) with `next-exit` or `removed`,
/// start, stream output, exit with the container's status.
pub async fn run_cmd(client: &Client, args: &RunArgs) -> Result<i32> {
    // docker's check: a terminal session needs a terminal to read keys from.
    if args.tty
        && args.interactive
        && !args.detach
        && !std::io::IsTerminal::is_terminal(&std::io::stdin())
    {
        eprintln!("the input device is not a TTY");
        return Ok(1);
    }
    let detach_keys = match &args.detach_keys {
        Some(k) => match berth_api::stream::parse_detach_keys(k) {
            Ok(keys) => keys,
            Err(e) => {
                report_error("run", &e);
                return Ok(EXIT_DAEMON);
            }
        },
        None => DEFAULT_DETACH_KEYS.to_vec(),
    };
    let id = match create(client, args, "run").await {
        Ok(id) => id,
        Err(code) => return Ok(code),
    };
    // Attach and wait are independent (both only have to be in place before start): send
    // them together, saving a round trip on every `run`.
    let condition = if args.rm { "removed" } else { "next-exit" };
    let attach_opts = AttachOptions {
        stdin: args.interactive,
        stdout: true,
        stderr: true,
        stream: true,
        logs: false,
        detach_keys: args.detach_keys.clone(),
    };
    let attach_req = async {
        if args.detach {
            None
        } else {
            Some(client.container_attach(&id, attach_opts).await)
        }
    };
    let (attached, waited) = tokio::join!(attach_req, client.container_wait(&id, Some(condition)));
    let hijacked = match attached {
        Some(Ok(h)) => Some(h),
        Some(Err(e)) => {
            report_error("run", &e.to_string());
            return Ok(EXIT_DAEMON);
        }
        None => None,
    };
    let wait = match waited {
        Ok(w) => Some(w),
        Err(e) if args.detach => {
            // `run -d` drops the wait anyway; a failure here must not hide the start.
            let _ = e;
            None
        }
        Err(e) => {
            report_error("run", &e.to_string());
            return Ok(EXIT_DAEMON);
        }
    };
    if args.detach {
        // docker prints the id as soon as it has one, even if start then fails.
        crate::outln(&id);
    }
    if let Err(e) = client.container_start(&id).await {
        drop(hijacked);
        report_error("run", &e.to_string());
        if args.rm {
            if let Some(w) = wait {
                // With --rm the daemon removes the container; docker waits for that.
                let _ = w.await;
            }
        }
        return Ok(start_error_exit_code(&e.to_string()));
    }
    let Some(io) = hijacked else {
        return Ok(0);
    };
    // docker proxies signals in non-TTY mode only; with a TTY, ^C travels as a keystroke.
    let proxy = (args.sig_proxy && !args.tty)
        .then(|| tokio::spawn(forward_signals(client.clone(), id.clone())));
    let resize = (args.tty && crate::tty::size().is_some())
        .then(|| tokio::spawn(monitor_tty_size(client.clone(), id.clone())));
    let raw = if args.tty && args.interactive {
        crate::tty::RawMode::enable()
    } else {
        None
    };
    let streamed = pump(io, args.tty, args.interactive, &detach_keys).await;
    drop(raw);
    if matches!(streamed, Ok(Pumped::Detached)) {
        for task in [proxy, resize].into_iter().flatten() {
            task.abort();
        }
        return Ok(0);
    }
    let status = finish(wait, streamed.map(drop)).await;
    for task in [proxy, resize].into_iter().flatten() {
        task.abort();
    }
    Ok(status)
}

/// Waits for the exit status once output has ended. A broken stream ends the command
/// with status 1 without waiting, as docker's does.
async fn finish(wait: Option<WaitFuture>, streamed: Result<(), ClientError>) -> i32 {
    if let Err(e) = streamed {
        eprintln!("{e}");
        return 1;
    }
    match wait {
        Some(w) => match w.await {
            Ok(r) => match r.error {
                Some(err) if !err.message.is_empty() => {
                    eprintln!("Error waiting for container: {}", err.message);
                    EXIT_DAEMON
                }
                _ => r.status_code as i32,
            },
            Err(e) => {
                eprintln!("Error waiting for container: {}", e.message());
                EXIT_DAEMON
            }
        },
        None => 0,
    }
}

/// `berth start -a ID`: inspect for the TTY, wait next-exit, attach, start, stream.
pub async fn start_attached(client: &Client, target: &str, interactive: bool) -> Result<i32> {
    let inspect = client.container_inspect(target).await?;
    let id = inspect.id.clone();
    let wait = client.container_wait(&id, Some("next-exit")).await?;
    let opts = AttachOptions {
        stdin: interactive,
        stdout: true,
        stderr: true,
        stream: true,
        logs: false,
        detach_keys: None,
    };
    let io = client.container_attach(&id, opts).await?;
    if let Err(e) = client.container_start(&id).await {
        eprintln!("{e}");
        return Ok(1);
    }
    let raw = if inspect.config.tty && interactive {
        crate::tty::RawMode::enable()
    } else {
        None
    };
    let streamed = pump(io, inspect.config.tty, interactive, DEFAULT_DETACH_KEYS).await;
    drop(raw);
    if matches!(streamed, Ok(Pumped::Detached)) {
        return Ok(0);
    }
    Ok(finish(Some(wait), streamed.map(drop)).await)
}

/// How an attached session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Pumped {
    /// The daemon closed the stream (the process's output ended).
    Ended,
    /// The user typed the detach sequence: the container runs on.
    Detached,
}

/// Copies stdin to the container (or half-closes at once without `-i`) and the
/// container's output to our stdout/stderr until the daemon closes the stream. With a
/// terminal the input is watched for the detach keys (as docker's CLI and daemon do).
pub async fn pump(
    io: Hijacked,
    tty: bool,
    stdin: bool,
    detach_keys: &[u8],
) -> Result<Pumped, ClientError> {
    use tokio::io::AsyncReadExt;
    let (read, mut write) = tokio::io::split(io);
    let keys = if tty {
        detach_keys.to_vec()
    } else {
        Vec::new()
    };
    let (detached_tx, mut detached_rx) = tokio::sync::oneshot::channel::<()>();
    let input = tokio::spawn(async move {
        if stdin {
            let mut inp = tokio::io::stdin();
            let mut buf = vec![0u8; 32 * 1024];
            let mut matched = 0;
            'copy: loop {
                let n = match inp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let mut send = Vec::with_capacity(n);
                for &b in &buf[..n] {
                    if !keys.is_empty() && b == keys[matched] {
                        matched += 1;
                        if matched == keys.len() {
                            let _ = write.write_all(&send).await;
                            let _ = detached_tx.send(());
                            return write;
                        }
                        continue;
                    }
                    send.extend_from_slice(&keys[..matched]);
                    matched = 0;
                    if !keys.is_empty() && b == keys[0] {
                        matched = 1;
                    } else {
                        send.push(b);
                    }
                }
                if write.write_all(&send).await.is_err() {
                    break 'copy;
                }
            }
        }
        // Half-close: the daemon reads stdin EOF and keeps streaming output.
        let _ = write.shutdown().await;
        write
    });
    let mut chunks = berth_client::log_chunks(berth_client::reader_bytes(read), tty);
    let mut result = Ok(Pumped::Ended);
    // The input side ended without detaching (its sender is gone).
    let mut input_quiet = false;
    loop {
        tokio::select! {
            chunk = chunks.next() => match chunk {
                Some(Ok(c)) => write_chunk(c.kind, &c.data),
                Some(Err(e)) => {
                    result = Err(e);
                    break;
                }
                None => break,
            },
            r = &mut detached_rx, if !input_quiet => match r {
                Ok(()) => return Ok(Pumped::Detached),
                Err(_) => input_quiet = true,
            },
        }
    }
    // stdin may still be blocked in a read: the process ends when the container does.
    if !stdin {
        let _ = input.await;
    }
    result
}

/// Writes one chunk of container output to the matching stream, flushed.
pub fn write_chunk(kind: StreamKind, data: &[u8]) {
    if kind == StreamKind::Stderr {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(data);
        let _ = e.flush();
    } else {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(data);
        let _ = o.flush();
    }
}

/// Sends the terminal size after start (retrying briefly: the process may not exist yet)
/// and again on every SIGWINCH, as docker's `MonitorTtySize`.
pub(crate) async fn monitor_tty_size(client: Client, id: String) {
    monitor_size(client, id, false).await
}

/// [`monitor_tty_size`] for a container (`exec` false) or an exec instance.
pub(crate) async fn monitor_size(client: Client, id: String, exec: bool) {
    use tokio::signal::unix::{signal, SignalKind};
    let resize = |client: Client, id: String| async move {
        match crate::tty::size() {
            Some((h, w)) if exec => client.exec_resize(&id, h, w).await.is_ok(),
            Some((h, w)) => client.container_resize(&id, h, w).await.is_ok(),
            None => true,
        }
    };
    let mut delay = std::time::Duration::from_millis(10);
    for _ in 0..10 {
        if resize(client.clone(), id.clone()).await {
            break;
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    let Ok(mut winch) = signal(SignalKind::window_change()) else {
        return;
    };
    while winch.recv().await.is_some() {
        resize(client.clone(), id.clone()).await;
    }
}

/// docker's sig-proxy: signals received while attached are sent to the container.
pub(crate) async fn forward_signals(client: Client, id: String) {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        (SignalKind::interrupt(), "INT"),
        (SignalKind::terminate(), "TERM"),
        (SignalKind::hangup(), "HUP"),
        (SignalKind::quit(), "QUIT"),
        (SignalKind::user_defined1(), "USR1"),
        (SignalKind::user_defined2(), "USR2"),
    ];
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    for (kind, name) in kinds {
        let Ok(mut s) = signal(kind) else { continue };
        let tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send(name).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    while let Some(name) = rx.recv().await {
        let _ = client.container_kill(&id, Some(name)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_map_to_dockers_exit_codes() {
        let notfound = "Error response from daemon: failed to create task: exec: \"nosuch\": executable file not found in $PATH";
        assert_eq!(start_error_exit_code(notfound), 127);
        assert_eq!(
            start_error_exit_code("stat /nosuchcmd: no such file or directory: unknown"),
            127
        );
        assert_eq!(
            start_error_exit_code("exec: \"/etc/passwd\": permission denied"),
            126
        );
        assert_eq!(start_error_exit_code("exec: \"/tmp\": is a directory"), 126);
        assert_eq!(start_error_exit_code("network nosuch not found"), 125);
    }

    #[test]
    fn image_names_get_latest_for_the_notice() {
        assert_eq!(tagged("busybox"), "busybox:latest");
        assert_eq!(tagged("busybox:1.36"), "busybox:1.36");
        assert_eq!(tagged("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(tagged("x@sha256:ab"), "x@sha256:ab");
    }
}

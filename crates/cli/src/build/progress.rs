//! The build's answer on the terminal. Plain: every `stream` text as it comes, as docker's
//! `jsonstream.Display` prints it. On a terminal: a compact live view (the running step,
//! its time, the last lines of its output) redrawn in place below one finished line per
//! step, then the builder's closing lines (`Successfully built`, tags, warnings) whole.
//! With `-q` nothing is printed until the end: the daemon's answer (the image id), or on
//! failure everything it said, on stderr.

use std::collections::VecDeque;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Result;
use berth_client::{JsonMessage, JsonStream};
use futures_util::StreamExt;

/// How many lines of the running step's output the live view shows.
const TAIL: usize = 6;

/// How the build ended.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The exit status of a failed build (`errorDetail.code`, else 1).
    pub failed: Option<i32>,
    /// `aux.ID`: the image built.
    pub image_id: Option<String>,
}

/// Where the text goes.
trait Sink {
    fn text(&mut self, s: &str);
    fn status(&mut self, line: &str);
    /// The build is over; `failed` when it failed. Called once; returns what a quiet build
    /// prints at its end.
    fn end(&mut self, failed: bool) -> Option<String>;
    fn tick(&mut self) {}
    /// The context went whole to the daemon: its size, as go-units writes it.
    fn context_sent(&mut self, size: &str);
}

/// Prints the build's stream; returns how it ended.
pub async fn show(
    mut stream: JsonStream<JsonMessage>,
    quiet: bool,
    tty: bool,
    sent: &super::Sent,
) -> Result<Outcome> {
    let mut sink: Box<dyn Sink> = if quiet {
        Box::new(Quiet::default())
    } else if tty {
        Box::new(Live::new())
    } else {
        Box::new(Plain)
    };
    let mut out = Outcome::default();
    let mut told_sent = false;
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = ticker.tick() => {
                sink.tick();
                continue;
            }
        };
        if !told_sent {
            if let Some(bytes) = sent.whole() {
                told_sent = true;
                sink.context_sent(&crate::human::human_size(bytes as f64));
            }
        }
        let Some(msg) = msg else { break };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                let _ = sink.end(true);
                return Err(e.into());
            }
        };
        if let Some(err) = msg.failure() {
            let _ = sink.end(true);
            eprintln!("{err}");
            let code = msg
                .error_detail
                .as_ref()
                .and_then(|d| d.code)
                .filter(|c| *c != 0)
                .unwrap_or(1);
            out.failed = Some(i32::try_from(code).unwrap_or(1));
            return Ok(out);
        }
        if let Some(id) = msg
            .aux
            .as_ref()
            .and_then(|a| a.get("ID"))
            .and_then(|v| v.as_str())
        {
            out.image_id = Some(id.to_string());
            sink.status("");
        }
        if let Some(s) = &msg.stream {
            sink.text(s);
        } else if let Some(status) = &msg.status {
            let line = match (&msg.id, &msg.progress) {
                (Some(id), Some(p)) => format!("{id}: {status} {p}"),
                (Some(id), None) => format!("{id}: {status}"),
                (None, _) => status.clone(),
            };
            sink.status(&line);
        }
    }
    let said = sink.end(false);
    if quiet {
        // Docker prints what the daemon said (the id and a newline) when there is any.
        match (said, &out.image_id) {
            (Some(text), _) => crate::container::print_raw(&text),
            (None, Some(id)) => crate::outln(id),
            (None, None) => {}
        }
    }
    Ok(out)
}

struct Plain;

impl Sink for Plain {
    fn text(&mut self, s: &str) {
        crate::container::print_raw(s);
    }
    fn status(&mut self, line: &str) {
        if !line.is_empty() {
            crate::outln(line);
        }
    }
    fn end(&mut self, _failed: bool) -> Option<String> {
        None
    }
    fn context_sent(&mut self, size: &str) {
        // docker's bytes exactly: its progress line, ended as its last update ends it.
        crate::container::print_raw(&format!(
            "Sending build context to Docker daemon {size:>8}\r\r\n"
        ));
    }
}

#[derive(Default)]
struct Quiet {
    text: String,
}

impl Sink for Quiet {
    fn text(&mut self, s: &str) {
        self.text.push_str(s);
    }
    fn status(&mut self, line: &str) {
        if !line.is_empty() {
            self.text.push_str(line);
            self.text.push('\n');
        }
    }
    fn end(&mut self, failed: bool) -> Option<String> {
        let text = std::mem::take(&mut self.text);
        if failed {
            eprint!("{text}");
            return None;
        }
        Some(text).filter(|t| !t.is_empty())
    }
    fn context_sent(&mut self, _size: &str) {}
}

/// One step of the live view.
struct Step {
    line: String,
    started: Instant,
    cached: bool,
    tail: VecDeque<String>,
}

/// The terminal's live view.
struct Live {
    started: Instant,
    step: Option<Step>,
    /// Text of the current line not yet ended by a newline.
    partial: String,
    /// The steps are over (`aux` came): what follows is printed whole.
    closing: bool,
    /// Lines of the live area on the screen now.
    drawn: usize,
    last_draw: Option<Instant>,
}

impl Live {
    fn new() -> Live {
        Live {
            started: Instant::now(),
            step: None,
            partial: String::new(),
            closing: false,
            drawn: 0,
            last_draw: None,
        }
    }

    fn width() -> usize {
        crate::tty::size().map_or(80, |(_, w)| usize::from(w).max(20))
    }

    /// Prints `lines` above the live area, which is drawn again below them.
    fn permanent(&mut self, lines: &[String]) {
        let mut o = std::io::stdout().lock();
        let _ = write!(o, "{}", clear(self.drawn));
        self.drawn = 0;
        for l in lines {
            let _ = writeln!(o, "{l}");
        }
        let _ = o.flush();
        drop(o);
        self.draw(true);
    }

    fn draw(&mut self, force: bool) {
        let now = Instant::now();
        if !force
            && self
                .last_draw
                .is_some_and(|t| now - t < Duration::from_millis(80))
        {
            return;
        }
        self.last_draw = Some(now);
        let width = Live::width();
        let mut lines = Vec::new();
        if let Some(step) = &self.step {
            let time = format!(" {:.1}s", step.started.elapsed().as_secs_f64());
            lines.push(format!(
                "{}{time}",
                fit(
                    &format!(" => {}", step.line),
                    width.saturating_sub(time.len() + 1)
                )
            ));
            let mut tail: Vec<&str> = step.tail.iter().map(String::as_str).collect();
            let partial = printable(&self.partial);
            if !partial.is_empty() {
                tail.push(&partial);
                if tail.len() > TAIL {
                    tail.remove(0);
                }
                lines.extend(tail.iter().map(|l| fit(&format!("    {l}"), width - 1)));
            } else {
                lines.extend(tail.iter().map(|l| fit(&format!("    {l}"), width - 1)));
            }
            let elapsed = format!("[+] Building {:.1}s", self.started.elapsed().as_secs_f64());
            lines.insert(0, fit(&elapsed, width - 1));
        }
        let mut o = std::io::stdout().lock();
        let _ = write!(o, "{}", clear(self.drawn));
        for l in &lines {
            let _ = writeln!(o, "{l}");
        }
        let _ = o.flush();
        self.drawn = lines.len();
    }

    /// Ends the running step with its one line (and, when it failed, its output).
    fn finish_step(&mut self, failed: bool) {
        let Some(step) = self.step.take() else {
            return;
        };
        let mut lines = vec![if failed {
            format!(" => ERROR {}", step.line)
        } else if step.cached {
            format!(" => CACHED {}", step.line)
        } else {
            format!(
                " => {} {:.1}s",
                step.line,
                step.started.elapsed().as_secs_f64()
            )
        }];
        if failed {
            lines.extend(step.tail.iter().map(|l| format!("    {l}")));
            let partial = printable(&std::mem::take(&mut self.partial));
            if !partial.is_empty() {
                lines.push(format!("    {partial}"));
            }
        }
        self.permanent(&lines);
    }

    fn line(&mut self, line: &str) {
        if self.closing {
            self.permanent(&[line.to_string()]);
            return;
        }
        if line.starts_with("Step ") && line.contains(" : ") {
            self.finish_step(false);
            self.step = Some(Step {
                line: printable(line),
                started: Instant::now(),
                cached: false,
                tail: VecDeque::new(),
            });
            self.draw(true);
            return;
        }
        let Some(step) = self.step.as_mut() else {
            self.permanent(&[line.to_string()]);
            return;
        };
        if let Some(rest) = line.strip_prefix(" ---> ") {
            step.cached |= rest == "Using cache";
            return;
        }
        if line.starts_with("Removing intermediate container ") {
            return;
        }
        step.tail.push_back(printable(line));
        if step.tail.len() > TAIL {
            step.tail.pop_front();
        }
        self.draw(false);
    }
}

impl Sink for Live {
    fn text(&mut self, s: &str) {
        self.partial.push_str(s);
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            self.line(line.trim_end_matches('\n'));
        }
        self.draw(false);
    }

    fn status(&mut self, line: &str) {
        if line.is_empty() {
            // `aux`: the steps are done.
            self.finish_step(false);
            self.closing = true;
        } else {
            self.permanent(&[line.to_string()]);
        }
    }

    fn end(&mut self, failed: bool) -> Option<String> {
        if !failed && !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.line(&rest);
        }
        self.finish_step(failed);
        let mut o = std::io::stdout().lock();
        let _ = write!(o, "{}", clear(self.drawn));
        let _ = o.flush();
        self.drawn = 0;
        None
    }

    fn context_sent(&mut self, size: &str) {
        self.permanent(&[format!("Sending build context to Docker daemon  {size}")]);
    }

    fn tick(&mut self) {
        if self.step.is_some() {
            self.draw(true);
        }
    }
}

/// Moves up over `n` lines drawn before and clears from there down.
fn clear(n: usize) -> String {
    if n == 0 {
        "\r\x1b[J".into()
    } else {
        format!("\x1b[{n}A\r\x1b[J")
    }
}

/// What a line shows: the text after its last carriage return (progress bars redraw that
/// way), control characters (escape sequences) dropped, tabs as spaces.
fn printable(line: &str) -> String {
    let shown = line.trim_end_matches('\r');
    let shown = shown.rsplit('\r').next().unwrap_or("");
    shown
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .filter(|c| !c.is_control())
        .collect()
}

/// `s` cut to `width` characters (the live area must not wrap, or redrawing would drift).
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut cut: String = s.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_lines_are_printable_and_fit() {
        assert_eq!(printable("10%\r50%\r100%"), "100%");
        assert_eq!(printable("a\x1b[31mb\tc"), "a[31mb c");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
        assert_eq!(clear(2), "\x1b[2A\r\x1b[J");
    }
}

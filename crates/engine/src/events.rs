//! The engine's event log: what `GET /events` replays and streams, in Docker's words.
//!
//! Lifecycle operations call [`Engine::emit_container`] (create, start, die, kill, stop,
//! restart, pause, unpause, rename, destroy, oom, prune) and the image wrappers in
//! `images.rs` call [`Engine::emit_image`] (import, load, save, tag, untag, delete, prune).
//! Under one lock, an event goes
//! - into a ring in memory, bounded by count and by bytes (the oldest make room): what
//!   `since`/`until` replay;
//! - to `<root>/events.jsonl`, one JSON line appended with one `write`: a crash can cut only
//!   the last line, which the next load skips. When the file holds twice the ring's bound it
//!   is replaced (temp file, rename) by the ring's content, so it stays bounded too.
//!   [`EventLog::open`] (from `Engine::open`) loads it: a restart of berthd keeps the recent
//!   history;
//! - to a broadcast channel for live subscribers. A subscriber that falls more than
//!   [`LIVE_BACKLOG`] events behind loses the ones it missed, as Docker drops events for a
//!   slow subscriber.
//!
//! [`EventLog::subscribe`] takes the replay and the live receiver under that same lock, so
//! no event falls between them or comes twice. [`EventFilter`] is Docker's event filter
//! (`daemon/events/filter.go`): fuzzy names for containers and the like, exact types and
//! actions, labels matched against all attributes.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_api::events::{Actor, Message};
use berth_api::filters::Filters;
use tokio::sync::broadcast;

use crate::error::{EngineError, Result};

/// How many events a live subscriber may fall behind before it loses some.
pub const LIVE_BACKLOG: usize = 1024;

/// What the ring keeps (the file keeps up to twice as much before it is compacted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Events kept.
    pub events: usize,
    /// Bytes of their JSON lines (the newest event is kept whatever its size).
    pub bytes: usize,
}

impl Default for Bounds {
    /// 4096 events, 8 MiB: Docker keeps 256 events; a few thousand cover a busy hour here.
    fn default() -> Self {
        Bounds {
            events: 4096,
            bytes: 8 << 20,
        }
    }
}

/// One event with the length of its JSON line (for the byte bound).
struct Entry {
    message: Arc<Message>,
    line_len: usize,
}

struct State {
    ring: VecDeque<Entry>,
    ring_bytes: usize,
    /// The file, open for appending; `None` after an error (logged; memory goes on).
    file: Option<std::fs::File>,
    file_events: usize,
    file_bytes: u64,
}

/// The ring, the file and the live channel (see the module doc).
pub struct EventLog {
    state: Mutex<State>,
    live: broadcast::Sender<Arc<Message>>,
    path: PathBuf,
    bounds: Bounds,
}

impl EventLog {
    /// Loads the events at `path` (skipping lines that do not parse) and opens it for
    /// appending. Never fails: a file that cannot be read or written is logged, and the log
    /// then lives in memory only.
    pub fn open(path: PathBuf, bounds: Bounds) -> EventLog {
        let (live, _) = broadcast::channel(LIVE_BACKLOG);
        let log = EventLog {
            state: Mutex::new(State {
                ring: VecDeque::new(),
                ring_bytes: 0,
                file: None,
                file_events: 0,
                file_bytes: 0,
            }),
            live,
            path,
            bounds,
        };
        let mut st = log.state.lock().expect("events lock");
        let loaded = match log.load(&mut st) {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::warn!("events: reading {}: {e}", log.path.display());
                Loaded {
                    clean: false,
                    lines: 0,
                    bytes: 0,
                }
            }
        };
        if loaded.clean {
            st.file_events = loaded.lines;
            st.file_bytes = loaded.bytes;
            st.file = log.open_append();
        } else {
            // Bad lines, a cut last line, an oversized file: write what was kept anew.
            log.compact(&mut st);
        }
        drop(st);
        log
    }

    /// Reads the file into the ring. At most twice the byte bound is read (from the end):
    /// berth never writes more, so anything larger was not written by it.
    fn load(&self, st: &mut State) -> std::io::Result<Loaded> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Loaded {
                    clean: true,
                    lines: 0,
                    bytes: 0,
                })
            }
            Err(e) => return Err(e),
        };
        let size = f.metadata()?.len();
        let limit = self.file_byte_limit();
        let mut clean = size <= limit;
        if !clean {
            f.seek(std::io::SeekFrom::Start(size - limit))?;
        }
        let mut reader = std::io::BufReader::new(f.take(limit));
        if size > limit {
            // The first line read is a tail of one.
            reader.read_until(b'\n', &mut Vec::new())?;
        }
        let mut lines = 0;
        let mut skipped = 0;
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            lines += 1;
            let whole = line.last() == Some(&b'\n');
            match serde_json::from_slice::<Message>(&line) {
                Ok(m) if whole => self.push(st, Arc::new(m), line.len()),
                _ => {
                    skipped += 1;
                    clean = false;
                }
            }
        }
        if skipped > 0 {
            tracing::warn!(
                "events: skipped {skipped} damaged line(s) of {}",
                self.path.display()
            );
        }
        Ok(Loaded {
            clean,
            lines,
            bytes: size,
        })
    }

    fn file_byte_limit(&self) -> u64 {
        2 * self.bounds.bytes as u64
    }

    fn open_append(&self) -> Option<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
        {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!("events: opening {}: {e}", self.path.display());
                None
            }
        }
    }

    /// Adds to the ring, dropping the oldest beyond the bounds.
    fn push(&self, st: &mut State, message: Arc<Message>, line_len: usize) {
        st.ring.push_back(Entry { message, line_len });
        st.ring_bytes += line_len;
        while st.ring.len() > 1
            && (st.ring.len() > self.bounds.events || st.ring_bytes > self.bounds.bytes)
        {
            if let Some(old) = st.ring.pop_front() {
                st.ring_bytes -= old.line_len;
            }
        }
    }

    /// Replaces the file by the ring's content (temp file, rename), then appends to it.
    fn compact(&self, st: &mut State) {
        st.file = None;
        let mut bytes = Vec::with_capacity(st.ring_bytes);
        for e in &st.ring {
            line_of(&e.message, &mut bytes);
        }
        match crate::fsutil::replace(&self.path, &bytes) {
            Ok(()) => {
                st.file_events = st.ring.len();
                st.file_bytes = bytes.len() as u64;
                st.file = self.open_append();
            }
            Err(e) => tracing::error!("events: rewriting: {e}"),
        }
    }

    /// Records an event now and hands it to live subscribers.
    pub fn publish(&self, kind: &str, action: &str, actor: Actor) {
        let mut st = self.state.lock().expect("events lock");
        // The time is taken under the lock: the ring and the file are in time order.
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        let message = Arc::new(Message::new(kind, action, actor, now));
        let mut line = Vec::new();
        line_of(&message, &mut line);
        tracing::debug!(kind, action, id = %message.actor.id, "event");
        self.push(&mut st, message.clone(), line.len());
        if let Some(f) = st.file.as_mut() {
            // One write per line: a crash cuts at most this line.
            if let Err(e) = f.write_all(&line) {
                tracing::error!("events: writing {}: {e}", self.path.display());
                st.file = None;
            } else {
                st.file_events += 1;
                st.file_bytes += line.len() as u64;
            }
        }
        if st.file_events > 2 * self.bounds.events || st.file_bytes > self.file_byte_limit() {
            self.compact(&mut st);
        }
        // No receivers is not an error.
        let _ = self.live.send(message);
    }

    /// The recorded events from `since` to `until` (unix nanoseconds, both included) that
    /// pass `filter`, and a receiver of every event from now on. Nothing is replayed when
    /// neither bound is given (Docker's rule).
    pub fn subscribe(
        &self,
        since: Option<i64>,
        until: Option<i64>,
        filter: &EventFilter,
    ) -> (Vec<Arc<Message>>, broadcast::Receiver<Arc<Message>>) {
        let st = self.state.lock().expect("events lock");
        let past = if since.is_none() && until.is_none() {
            Vec::new()
        } else {
            st.ring
                .iter()
                .map(|e| &e.message)
                .filter(|m| since.is_none_or(|s| m.time_nano >= s))
                .filter(|m| until.is_none_or(|u| m.time_nano <= u))
                .filter(|m| filter.matches(m))
                .cloned()
                .collect()
        };
        (past, self.live.subscribe())
    }

    /// How many live subscribers there are (a client that went away must leave none).
    pub fn subscribers(&self) -> usize {
        self.live.receiver_count()
    }

    /// The events in the ring, oldest first.
    pub fn recorded(&self) -> Vec<Arc<Message>> {
        let st = self.state.lock().expect("events lock");
        st.ring.iter().map(|e| e.message.clone()).collect()
    }
}

struct Loaded {
    /// Every line parsed and the file is within its bound.
    clean: bool,
    lines: usize,
    bytes: u64,
}

fn line_of(m: &Message, out: &mut Vec<u8>) {
    // A Message always serializes.
    let _ = serde_json::to_writer(&mut *out, m);
    out.push(b'\n');
}

/// The filter keys Docker's `/events` takes; each is applied.
const FILTER_KEYS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

/// Types whose filter key matches an event's actor by id or name prefix, of any type.
const NAME_KEYS: &[&str] = &[
    "daemon",
    "container",
    "plugin",
    "volume",
    "network",
    "service",
    "node",
    "secret",
    "config",
];

/// Docker's event filter (moby `daemon/events/filter.go`). Values of one key are OR-ed,
/// keys AND-ed.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    filters: Filters,
}

impl EventFilter {
    /// Refuses a key Docker's `/events` does not know with Docker's 400 wording.
    pub fn new(filters: Filters) -> Result<EventFilter> {
        filters
            .validate(FILTER_KEYS)
            .map_err(|e| EngineError::Invalid(e.0))?;
        Ok(EventFilter { filters })
    }

    /// Whether `m` passes.
    pub fn matches(&self, m: &Message) -> bool {
        let name = m.actor.attributes.get("name").map(String::as_str);
        self.event_matches(&m.action)
            && self.exact("type", &m.kind)
            && self.exact("scope", &m.scope)
            && NAME_KEYS
                .iter()
                .all(|key| self.fuzzy(key, &m.actor.id) || name.is_some_and(|n| self.fuzzy(key, n)))
            && self.image_matches(m)
            && self.labels_match(&m.actor.attributes)
    }

    fn values(&self, key: &str) -> &[String] {
        self.filters.get(key)
    }

    /// Go's `Args.ExactMatch`: no values for the key passes everything.
    fn exact(&self, key: &str, source: &str) -> bool {
        let v = self.values(key);
        v.is_empty() || v.iter().any(|x| x == source)
    }

    /// Go's `Args.FuzzyMatch`: exact, or a value is a prefix of `source`.
    fn fuzzy(&self, key: &str, source: &str) -> bool {
        let v = self.values(key);
        v.is_empty() || v.iter().any(|x| source.starts_with(x.as_str()))
    }

    /// `exec_start`, `exec_create` and `health_status` also match their longer actions
    /// (`exec_start: sh -c x`, `health_status: healthy`).
    fn event_matches(&self, action: &str) -> bool {
        let prefixes = ["health_status", "exec_create", "exec_start"];
        if self
            .values("event")
            .iter()
            .any(|v| prefixes.contains(&v.as_str()))
        {
            self.fuzzy("event", action)
        } else {
            self.exact("event", action)
        }
    }

    /// An image's events by id or name, a container's by its image; with or without tag.
    fn image_matches(&self, m: &Message) -> bool {
        if self.values("image").is_empty() {
            return true;
        }
        let attr = if m.kind == berth_api::events::IMAGE {
            "name"
        } else {
            "image"
        };
        let name = m
            .actor
            .attributes
            .get(attr)
            .map(String::as_str)
            .unwrap_or("");
        [&m.actor.id, name]
            .into_iter()
            .any(|s| self.exact("image", s) || self.exact("image", &strip_tag(s)))
    }

    /// Go's `Args.MatchKVList` over all the attributes: every `k` or `k=v` must hold.
    fn labels_match(&self, attributes: &BTreeMap<String, String>) -> bool {
        let wanted = self.values("label");
        if wanted.is_empty() {
            return true;
        }
        wanted.iter().all(|w| match w.split_once('=') {
            Some((k, v)) => attributes.get(k).is_some_and(|x| x == v),
            None => attributes.contains_key(w.as_str()),
        })
    }
}

/// `busybox` of `busybox:latest` or `docker.io/library/busybox`: the familiar name (what
/// Docker's `stripTag` gives); anything that does not parse as a reference, unchanged.
fn strip_tag(s: &str) -> String {
    berth_image::normalize_reference(s)
        .map(|(name, _, _)| name)
        .unwrap_or_else(|_| s.to_string())
}

/// The attributes of a container's event, as Docker's `LogContainerEventWithAttributes`
/// makes them: the action's own, then the labels over them, then `image` and `name`.
pub(crate) fn container_attributes(
    own: &[(&str, String)],
    labels: Option<&std::collections::HashMap<String, String>>,
    image: &str,
    name: &str,
) -> BTreeMap<String, String> {
    let mut a: BTreeMap<String, String> = own
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    for (k, v) in labels.into_iter().flatten() {
        a.insert(k.clone(), v.clone());
    }
    if !image.is_empty() {
        a.insert("image".into(), image.to_string());
    }
    a.insert("name".into(), name.to_string());
    a
}

/// The attributes of an image's event (Docker's `LogImageEvent`): the image's labels, if it
/// still exists, then `name` (a reference, or the id).
pub(crate) fn image_attributes(
    labels: Option<&BTreeMap<String, String>>,
    name: &str,
) -> BTreeMap<String, String> {
    let mut a = labels.cloned().unwrap_or_default();
    if !name.is_empty() {
        a.insert("name".into(), name.to_string());
    }
    a
}

/// The default place of the file under the engine's root.
pub(crate) fn file_path(root: &Path) -> PathBuf {
    root.join("events.jsonl")
}

impl crate::Engine {
    /// The event log (`GET /events` subscribes here).
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// Records a container event: `action` is Docker's (`start`, `exec_start: sh -c x`),
    /// `attributes` the action's own (`exitCode`, `signal`); the container's labels, image
    /// and name are added as Docker adds them. Call it without holding the record's lock.
    pub fn emit_container(
        &self,
        c: &crate::Container,
        action: &str,
        attributes: &[(&str, String)],
    ) {
        let attributes = {
            let rec = c.record();
            container_attributes(
                attributes,
                rec.config.labels.as_ref(),
                &rec.config.image,
                &rec.name,
            )
        };
        self.events.publish(
            berth_api::events::CONTAINER,
            action,
            Actor {
                id: c.id.clone(),
                attributes,
            },
        );
    }

    /// Records an image event about image `id` (`sha256:...`): `name` is the reference it
    /// concerns (`busybox:v2` for a tag) or the id; the image's labels are added while the
    /// store still has it (Docker's `LogImageEvent`).
    pub fn emit_image(&self, id: &str, name: &str, action: &str) {
        let labels = self
            .images
            .resolve(id)
            .ok()
            .and_then(|r| r.config.config.labels);
        self.emit_image_with(id, name, action, labels.as_ref());
    }

    /// [`Engine::emit_image`] with labels read before the image went away.
    pub(crate) fn emit_image_with(
        &self,
        id: &str,
        name: &str,
        action: &str,
        labels: Option<&BTreeMap<String, String>>,
    ) {
        self.events.publish(
            berth_api::events::IMAGE,
            action,
            Actor {
                id: id.to_string(),
                attributes: image_attributes(labels, name),
            },
        );
    }

    /// Docker's `prune` event of a type: no actor id, the space reclaimed.
    pub(crate) fn emit_prune(&self, kind: &str, reclaimed: u64) {
        let mut attributes = BTreeMap::new();
        attributes.insert("reclaimed".to_string(), reclaimed.to_string());
        self.events.publish(
            kind,
            "prune",
            Actor {
                id: String::new(),
                attributes,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(id: &str, pairs: &[(&str, &str)]) -> Actor {
        Actor {
            id: id.into(),
            attributes: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn small() -> Bounds {
        Bounds {
            events: 4,
            bytes: 1 << 20,
        }
    }

    fn actions(log: &EventLog) -> Vec<String> {
        log.recorded().iter().map(|m| m.action.clone()).collect()
    }

    fn all() -> EventFilter {
        EventFilter::default()
    }

    #[test]
    fn the_ring_keeps_the_newest_events_by_count() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path().join("events.jsonl"), small());
        for i in 0..7 {
            log.publish("container", &format!("a{i}"), actor("c", &[]));
        }
        assert_eq!(actions(&log), ["a3", "a4", "a5", "a6"]);
    }

    #[test]
    fn the_ring_keeps_the_newest_events_by_bytes_and_always_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let bounds = Bounds {
            events: 100,
            bytes: 600,
        };
        let log = EventLog::open(dir.path().join("events.jsonl"), bounds);
        let big = "x".repeat(250);
        for i in 0..5 {
            log.publish("container", &format!("a{i}"), actor("c", &[("l", &big)]));
        }
        // About 400 bytes each: one fits in 600.
        assert_eq!(actions(&log), ["a4"]);
        let huge = "y".repeat(2000);
        log.publish("container", "huge", actor("c", &[("l", &huge)]));
        assert_eq!(actions(&log), ["huge"]);
    }

    #[test]
    fn events_survive_a_reopen_and_the_file_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let log = EventLog::open(path.clone(), small());
        for i in 0..50 {
            log.publish("container", &format!("a{i}"), actor("c", &[]));
            let lines = std::fs::read_to_string(&path).unwrap().lines().count();
            assert!(lines <= 2 * small().events, "{lines} lines after {i}");
        }
        drop(log);
        let log = EventLog::open(path.clone(), small());
        assert_eq!(actions(&log), ["a46", "a47", "a48", "a49"]);
    }

    #[test]
    fn a_damaged_file_loses_only_its_damaged_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let log = EventLog::open(path.clone(), small());
        log.publish("container", "start", actor("c", &[]));
        log.publish("container", "die", actor("c", &[]));
        drop(log);
        // Garbage in the middle and a last line cut short by a crash.
        let mut text = std::fs::read_to_string(&path).unwrap();
        let (first, second) = text.split_once('\n').unwrap();
        let (first, second) = (first.to_string(), second.to_string());
        text = format!("{first}\nnot json\n{second}{{\"Type\":\"container\",\"Act");
        std::fs::write(&path, text).unwrap();
        let log = EventLog::open(path.clone(), small());
        assert_eq!(actions(&log), ["start", "die"]);
        // The file was rewritten clean: a new line is not glued to the cut one.
        log.publish("container", "destroy", actor("c", &[]));
        drop(log);
        let log = EventLog::open(path.clone(), small());
        assert_eq!(actions(&log), ["start", "die", "destroy"]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
    }

    #[test]
    fn an_oversized_file_is_read_from_its_end_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let bounds = Bounds {
            events: 1000,
            bytes: 2000,
        };
        let mut text = String::new();
        for i in 0..100 {
            let m = Message::new("container", &format!("a{i}"), actor("c", &[]), i);
            text.push_str(&serde_json::to_string(&m).unwrap());
            text.push('\n');
        }
        std::fs::write(&path, &text).unwrap();
        let log = EventLog::open(path.clone(), bounds);
        let got = actions(&log);
        assert_eq!(got.last().map(String::as_str), Some("a99"));
        assert!(got.len() < 100);
        assert!(std::fs::metadata(&path).unwrap().len() <= 2000);
    }

    #[test]
    fn replay_takes_since_and_until_inclusive_and_the_filter() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path().join("events.jsonl"), Bounds::default());
        log.publish("container", "start", actor("c1", &[("name", "one")]));
        log.publish("image", "tag", actor("sha256:1", &[("name", "x:1")]));
        log.publish("container", "die", actor("c1", &[("name", "one")]));
        let t: Vec<i64> = log.recorded().iter().map(|m| m.time_nano).collect();
        let (none, _) = log.subscribe(None, None, &all());
        assert!(none.is_empty(), "no bound, no replay");
        let (past, _) = log.subscribe(Some(t[1]), None, &all());
        assert_eq!(past.len(), 2);
        let (past, _) = log.subscribe(Some(t[0]), Some(t[1]), &all());
        assert_eq!(past.len(), 2);
        let f = Filters::parse(r#"{"type":["container"]}"#).unwrap();
        let (past, _) = log.subscribe(Some(0), None, &EventFilter::new(f).unwrap());
        assert_eq!(past.len(), 2);
    }

    #[tokio::test]
    async fn live_subscribers_get_what_comes_after_the_replay() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path().join("events.jsonl"), Bounds::default());
        log.publish("container", "create", actor("c", &[]));
        let (past, mut live) = log.subscribe(Some(0), None, &all());
        assert_eq!(past.len(), 1);
        assert_eq!(log.subscribers(), 1);
        log.publish("container", "start", actor("c", &[]));
        assert_eq!(live.recv().await.unwrap().action, "start");
        drop(live);
        assert_eq!(log.subscribers(), 0);
    }

    fn filter(json: &str) -> EventFilter {
        EventFilter::new(Filters::parse(json).unwrap()).unwrap()
    }

    fn container_event(action: &str) -> Message {
        Message::new(
            "container",
            action,
            actor(
                "4dfddfadf547aa",
                &[("name", "web"), ("image", "busybox:latest"), ("team", "a")],
            ),
            1,
        )
    }

    #[test]
    fn filters_follow_dockers_rules() {
        let c = container_event("start");
        let img = Message::new(
            "image",
            "tag",
            actor("sha256:feed", &[("name", "busybox:v2")]),
            1,
        );
        assert!(filter(r#"{"container":["web"]}"#).matches(&c));
        assert!(filter(r#"{"container":["we"]}"#).matches(&c), "prefix");
        assert!(filter(r#"{"container":["4dfd"]}"#).matches(&c), "id prefix");
        assert!(!filter(r#"{"container":["db"]}"#).matches(&c));
        assert!(!filter(r#"{"container":["web"]}"#).matches(&img));
        assert!(filter(r#"{"container":["db","web"]}"#).matches(&c), "OR");
        assert!(filter(r#"{"type":["container"],"event":["start"]}"#).matches(&c));
        assert!(!filter(r#"{"type":["container"],"event":["die"]}"#).matches(&c));
        assert!(!filter(r#"{"type":["image"]}"#).matches(&c));
        assert!(
            filter(r#"{"image":["busybox"]}"#).matches(&c),
            "tag stripped"
        );
        assert!(filter(r#"{"image":["busybox"]}"#).matches(&img));
        assert!(filter(r#"{"image":["sha256:feed"]}"#).matches(&img));
        assert!(!filter(r#"{"image":["alpine"]}"#).matches(&c));
        assert!(filter(r#"{"label":["team"]}"#).matches(&c));
        assert!(filter(r#"{"label":["team=a","name=web"]}"#).matches(&c));
        assert!(!filter(r#"{"label":["team=b"]}"#).matches(&c));
        assert!(!filter(r#"{"label":["team"]}"#).matches(&img));
        assert!(filter(r#"{"scope":["local"]}"#).matches(&c));
        assert!(!filter(r#"{"daemon":["x"]}"#).matches(&c));
        let exec = container_event("exec_start: sh -c true");
        assert!(filter(r#"{"event":["exec_start"]}"#).matches(&exec));
        assert!(!filter(r#"{"event":["exec"]}"#).matches(&exec));
    }

    #[test]
    fn an_unknown_filter_key_is_refused_in_dockers_words() {
        let f = Filters::parse(r#"{"bogus":["x"]}"#).unwrap();
        assert_eq!(
            EventFilter::new(f).unwrap_err().to_string(),
            "invalid filter 'bogus'"
        );
    }

    #[test]
    fn container_attributes_put_name_and_image_over_labels() {
        let mut labels = std::collections::HashMap::new();
        labels.insert("name".to_string(), "label-name".to_string());
        labels.insert("exitCode".to_string(), "label".to_string());
        labels.insert("team".to_string(), "a".to_string());
        let a = container_attributes(&[("exitCode", "3".into())], Some(&labels), "busybox", "web");
        assert_eq!(a["name"], "web");
        assert_eq!(a["image"], "busybox");
        assert_eq!(
            a["exitCode"], "label",
            "Docker copies labels over the action's own"
        );
        assert_eq!(a["team"], "a");
    }
}

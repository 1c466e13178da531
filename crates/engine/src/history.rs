//! A container's recent lifecycle actions, named as Docker names its container events
//! (`start`, `die`, `kill`, `stop`, `restart`). This is the hook the events subsystem
//! (`GET /events`, not built yet) will read and subscribe to; for now each entry is also
//! logged at debug level. In memory and bounded: the oldest entries make room.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

/// How many entries a container keeps.
pub const KEPT: usize = 64;

/// One of Docker's container event actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The container's process was started (by the user or by its restart policy).
    Start,
    /// Its process exited (attributes: `exitCode`, `execDuration` in seconds).
    Die,
    /// The user sent a signal (attribute: `signal`).
    Kill,
    /// The user stopped it.
    Stop,
    /// It was restarted: by `docker restart`, or by its restart policy after the backoff
    /// (attribute `restartPolicy` then, with `restartCount`).
    Restart,
}

impl Action {
    /// Docker's event action name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Die => "die",
            Action::Kill => "kill",
            Action::Stop => "stop",
            Action::Restart => "restart",
        }
    }
}

/// One recorded action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub time: DateTime<Utc>,
    pub action: Action,
    /// Docker's event attributes for the action (beyond name, image and labels).
    pub attributes: Vec<(String, String)>,
}

/// The bounded list.
#[derive(Debug, Default)]
pub struct History {
    entries: VecDeque<Entry>,
}

impl History {
    /// Appends an entry, dropping the oldest beyond [`KEPT`].
    pub fn push(&mut self, entry: Entry) {
        if self.entries.len() == KEPT {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_newest_entries() {
        let mut h = History::default();
        for i in 0..(KEPT + 3) {
            h.push(Entry {
                time: Utc::now(),
                action: Action::Die,
                attributes: vec![("exitCode".into(), i.to_string())],
            });
        }
        let e = h.entries();
        assert_eq!(e.len(), KEPT);
        assert_eq!(e[0].attributes[0].1, "3");
        assert_eq!(e[KEPT - 1].attributes[0].1, (KEPT + 2).to_string());
    }
}

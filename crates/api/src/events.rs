//! `GET /events`: Docker's event message (`EventMessage` in the API spec).
//!
//! The fields are in the order of Go's `events.Message`, so that a message serialized here
//! reads like dockerd's: the legacy `status`, `id` and `from` first (still sent below API
//! 1.52 for container and image events), then `Type`, `Action`, `Actor`, `scope`, `time`
//! and `timeNano`. Attributes are a sorted map, as Go's encoder writes a map.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The object an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// A container's full id, an image's `sha256:` id.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// `name`, `image`, the object's labels and the action's own (`exitCode`, `signal`).
    #[serde(rename = "Attributes", default)]
    pub attributes: BTreeMap<String, String>,
}

/// One event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Legacy: the action, for container and image events.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Legacy: the actor's id, for container and image events.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Legacy: the container's image, for container events.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    /// `container`, `image`, `network`, `volume`, `daemon`, ...
    #[serde(rename = "Type", default)]
    pub kind: String,
    /// `create`, `start`, `die`, `tag`, ... (`exec_start: sh -c x` carries the command).
    #[serde(rename = "Action", default)]
    pub action: String,
    /// What the event is about.
    #[serde(rename = "Actor", default)]
    pub actor: Actor,
    /// `local` for an engine's events (`swarm` for a cluster's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Unix seconds.
    #[serde(default)]
    pub time: i64,
    /// Unix nanoseconds.
    #[serde(rename = "timeNano", default)]
    pub time_nano: i64,
}

/// `Type` of a container's events.
pub const CONTAINER: &str = "container";
/// `Type` of an image's events.
pub const IMAGE: &str = "image";
/// `Type` of a network's events.
pub const NETWORK: &str = "network";
/// `Type` of a volume's events.
pub const VOLUME: &str = "volume";

impl Message {
    /// A local event at `time_nano` (unix nanoseconds), with the legacy fields Docker still
    /// fills for container and image events.
    pub fn new(kind: &str, action: &str, actor: Actor, time_nano: i64) -> Message {
        let (status, id, from) = match kind {
            CONTAINER => (
                action.to_string(),
                actor.id.clone(),
                actor.attributes.get("image").cloned().unwrap_or_default(),
            ),
            IMAGE => (action.to_string(), actor.id.clone(), String::new()),
            _ => Default::default(),
        };
        Message {
            status,
            id,
            from,
            kind: kind.to_string(),
            action: action.to_string(),
            actor,
            scope: "local".into(),
            time: time_nano.div_euclid(1_000_000_000),
            time_nano,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_events_carry_the_legacy_fields_in_gos_order() {
        let mut attributes = BTreeMap::new();
        attributes.insert("name".to_string(), "web".to_string());
        attributes.insert("image".to_string(), "busybox".to_string());
        let m = Message::new(
            CONTAINER,
            "start",
            Actor {
                id: "abc".into(),
                attributes,
            },
            1_795_345_379_003_371_510,
        );
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"status":"start","id":"abc","from":"busybox","Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"image":"busybox","name":"web"}},"scope":"local","time":1795345379,"timeNano":1795345379003371510}"#
        );
        let back: Message = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn other_types_have_no_legacy_fields() {
        let m = Message::new("network", "connect", Actor::default(), 5_000_000_001);
        let v = serde_json::to_value(&m).unwrap();
        assert!(v.get("status").is_none() && v.get("id").is_none());
        assert_eq!(v["time"], 5);
    }
}

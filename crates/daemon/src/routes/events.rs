//! `GET /events`: the engine's recorded events from `since` to `until`, then (unless
//! `until` has passed) the live ones until `until` or until the client goes away.
//! Newline-delimited JSON, one chunk per event.
//!
//! The body is a stream polled by the connection: when the client disconnects, hyper drops
//! it and the live receiver with it; no task is left behind.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;
use tokio::sync::broadcast;

use berth_api::events::Message;
use berth_engine::EventFilter;

use crate::error::{ApiError, ApiResult};
use crate::query::Query;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

async fn events(State(st): State<AppState>, q: Query) -> ApiResult<Response> {
    let since = timestamp(&q, "since")?;
    let until = timestamp(&q, "until")?;
    if let Some(u) = until {
        if since.is_some_and(|s| u < s) {
            return Err(ApiError::bad_request(format!(
                "`since` time ({}) cannot be after `until` time ({})",
                q.get("since").unwrap_or(""),
                q.get("until").unwrap_or("")
            )));
        }
    }
    let filter = EventFilter::new(q.filters()?)?;
    let (past, live) = st.engine.events().subscribe(since, until, &filter);
    let replay = futures_util::stream::iter(past).map(|m| Ok::<_, Infallible>(line(&m)));
    let only_past = until.is_some_and(|u| u < now_nanos());
    let body = if only_past {
        drop(live);
        Body::from_stream(replay)
    } else {
        Body::from_stream(replay.chain(live_events(live, filter, until)))
    };
    let mut resp = Response::new(body);
    // Docker's type below API 1.52 (the body is JSON lines all the same).
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// The live events that pass `filter`, until `until` (unix nanoseconds) if given.
fn live_events(
    live: broadcast::Receiver<Arc<Message>>,
    filter: EventFilter,
    until: Option<i64>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    let deadline = until.map(|u| {
        let wait = u.saturating_sub(now_nanos()).max(0) as u64;
        tokio::time::Instant::now() + std::time::Duration::from_nanos(wait)
    });
    futures_util::stream::unfold(
        (live, filter, deadline),
        move |(mut live, filter, deadline)| async move {
            loop {
                let next = match deadline {
                    Some(d) => tokio::select! {
                        r = live.recv() => r,
                        _ = tokio::time::sleep_until(d) => return None,
                    },
                    None => live.recv().await,
                };
                match next {
                    Ok(m) if filter.matches(&m) && until.is_none_or(|u| m.time_nano <= u) => {
                        return Some((Ok(line(&m)), (live, filter, deadline)));
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("events: a slow subscriber missed {n} event(s)");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    )
}

fn line(m: &Message) -> Bytes {
    let mut bytes = serde_json::to_vec(m).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// `since`/`until` as Docker takes them: unix seconds with an optional fraction of up to 9
/// digits (`1795345063`, `1795345063.5`, `1795345063.000000001`), in unix nanoseconds.
/// Absent or empty: no bound (`0` is 1970, as for Docker).
fn timestamp(q: &Query, key: &str) -> ApiResult<Option<i64>> {
    let Some(value) = q.get(key).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    parse_timestamp(value)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("invalid value for '{key}': {e}")))
}

fn parse_timestamp(value: &str) -> Result<i64, String> {
    let invalid = |why: String| format!("invalid timestamp {value:?}: {why}");
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let secs: i64 = secs
        .parse()
        .map_err(|_| invalid(format!("invalid seconds {secs:?}: invalid syntax")))?;
    if frac.len() > 20 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("invalid nanoseconds".into()));
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nanos: i64 = digits.parse().unwrap_or(0);
    secs.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nanos))
        .ok_or_else(|| invalid("out of range".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_take_seconds_and_a_fraction() {
        assert_eq!(parse_timestamp("12").unwrap(), 12_000_000_000);
        assert_eq!(parse_timestamp("12.5").unwrap(), 12_500_000_000);
        assert_eq!(parse_timestamp("12.000000001").unwrap(), 12_000_000_001);
        assert_eq!(parse_timestamp("12.0000000019").unwrap(), 12_000_000_001);
        assert_eq!(parse_timestamp("0").unwrap(), 0);
        assert!(parse_timestamp("x").is_err());
        assert!(parse_timestamp("1.-5").is_err());
        assert!(parse_timestamp("99999999999999999").is_err());
    }
}

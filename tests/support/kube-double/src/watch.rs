//! WATCH: newline-delimited JSON events, replayed from the history then live.

use crate::kinds::Kind;
use crate::respond::{self, Body};
use crate::selector::Selector;
use crate::state::Shared;
use crate::status::ApiError;
use bytes::Bytes;
use hyper::Response;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK.
const BOOKMARK_EVERY: Duration = Duration::from_secs(2);

struct WatchRequest {
    kind: Kind,
    namespace: String,
    selector: Selector,
    /// `None`: synthetic ADDED of the current objects first.
    from: Option<u64>,
    deadline: Option<Instant>,
    bookmarks: bool,
    initial_events_end: bool,
}

fn line(event_type: &str, object: &Value) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({"type": event_type, "object": object})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn bookmark(kind: Kind, rv: u64, initial_end: bool) -> Bytes {
    let mut object = json!({"kind": kind.kind(), "apiVersion": kind.api_version(),
        "metadata": {"resourceVersion": rv.to_string()}});
    if initial_end {
        object["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line("BOOKMARK", &object)
}

/// Starts a watch stream for a collection GET with `watch=true`.
pub fn start(
    shared: &Arc<Shared>,
    kind: Kind,
    namespace: &str,
    selector: Selector,
    query: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let rv = query
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or("");
    let from = match rv {
        "" | "0" => None,
        s => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}")))?,
        ),
    };
    let timeout = match query.get("timeoutSeconds") {
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {s:?}")))?,
        ),
        None => None,
    };
    let truthy = |k: &str| query.get(k).is_some_and(|v| v == "true" || v == "1");
    let request = WatchRequest {
        kind,
        namespace: namespace.to_string(),
        selector,
        from,
        deadline: timeout.map(|t| Instant::now() + Duration::from_secs(t)),
        bookmarks: truthy("allowWatchBookmarks"),
        initial_events_end: truthy("sendInitialEvents"),
    };
    let (tx, rx) = mpsc::channel(256);
    shared.handle.spawn(run(shared.clone(), request, tx));
    Ok(respond::stream(rx, "application/json"))
}

async fn send_all(tx: &mpsc::Sender<Bytes>, lines: Vec<Bytes>) -> bool {
    for l in lines {
        if tx.send(l).await.is_err() {
            return false;
        }
    }
    true
}

async fn run(shared: Arc<Shared>, w: WatchRequest, tx: mpsc::Sender<Bytes>) {
    let (mut changes, epoch, mut cursor, first) = {
        let st = shared.lock();
        let mut changes = st.store.subscribe();
        changes.borrow_and_update();
        let mut first = Vec::new();
        let cursor = match w.from {
            Some(n) => n,
            None => {
                for object in st.store.list(w.kind, &w.namespace) {
                    if w.selector.matches_object(object) {
                        first.push(line("ADDED", object));
                    }
                }
                if w.initial_events_end {
                    first.push(bookmark(w.kind, st.store.rv(), true));
                }
                st.store.rv()
            }
        };
        (changes, st.store.epoch(), cursor, first)
    };
    if !send_all(&tx, first).await {
        return;
    }
    let mut tick = tokio::time::interval_at(Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
    loop {
        let (lines, end) = {
            let st = shared.lock();
            changes.borrow_and_update();
            let result = if st.store.epoch() != epoch {
                Err(ApiError::expired())
            } else {
                st.store.changes_after(w.kind, &w.namespace, cursor)
            };
            match result {
                Err(e) => (vec![line("ERROR", &e.body())], true),
                Ok(found) => {
                    let lines = found
                        .into_iter()
                        .filter(|c| w.selector.matches_object(&c.object))
                        .map(|c| line(c.event_type, &c.object))
                        .collect();
                    cursor = cursor.max(st.store.rv());
                    (lines, false)
                }
            }
        };
        if !send_all(&tx, lines).await || end {
            return;
        }
        let deadline = async {
            match w.deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = deadline => return,
            _ = tick.tick() => if w.bookmarks && tx.send(bookmark(w.kind, cursor, false)).await.is_err() { return },
            _ = tx.closed() => return,
        }
    }
}

//! Watch streams: `GET ...?watch=true` answered with newline-delimited JSON events.
//!
//! Owns turning a [`WatchStart`] and the live event broadcast into the chunked body of a
//! watch response: one `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":...}`
//! line per event. Semantics, as the real server:
//!
//! - Without a resourceVersion (or with `"0"`), the current objects come first as ADDED;
//!   with `sendInitialEvents=true` a BOOKMARK annotated `k8s.io/initial-events-end`
//!   follows them. With a version, the history after it is replayed.
//! - A version older than the history, or a watcher too slow for the broadcast buffer,
//!   gets one ERROR event with a 410 `Expired` Status and the stream ends (clients relist).
//! - With selectors, an object that starts matching is ADDED and one that stops matching
//!   is DELETED.
//! - The stream ends after `timeoutSeconds` (default 30 minutes, as the real server's
//!   maximum), when the server stops, or when the history is compacted. With
//!   `allowWatchBookmarks`, a BOOKMARK carrying the current version is sent when the
//!   stream is idle every [`BOOKMARK_INTERVAL`] and just before a timeout.
//!
//! The stream runs in a task of the runtime the server was started on; with a paused
//! tokio clock the timeouts elapse whenever that runtime is idle.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::http::Shared;
use crate::meta;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Event, EventType, WatchStart};
use crate::write::{Target, View};

/// How often an idle watch with bookmarks enabled gets one.
pub(crate) const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

/// The parameters of one watch request.
#[derive(Debug, Clone)]
pub(crate) struct WatchParams {
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
    pub(crate) send_initial_events: bool,
    pub(crate) bookmarks: bool,
    pub(crate) timeout: Duration,
    pub(crate) view: View,
}

/// The body of a watch response; the events are produced by a spawned task.
pub(crate) fn body(
    shared: Arc<Shared>,
    target: Target,
    params: WatchParams,
    start: WatchStart,
) -> Body {
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(run(shared, target, params, start, tx));
    Body::from_stream(futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|line| line.map(Ok::<_, std::convert::Infallible>))
    }))
}

struct Watch {
    shared: Arc<Shared>,
    target: Target,
    params: WatchParams,
    tx: mpsc::Sender<Bytes>,
}

async fn run(
    shared: Arc<Shared>,
    target: Target,
    params: WatchParams,
    start: WatchStart,
    tx: mpsc::Sender<Bytes>,
) {
    let mut epoch = shared.watch_epoch.subscribe();
    let watch = Watch {
        shared,
        target,
        params,
        tx,
    };
    let (snapshot, events, mut receiver, current) = match start {
        WatchStart::Expired { requested, floor } => {
            let status = ApiError::Expired {
                requested,
                oldest: floor,
            }
            .to_status();
            watch.send("ERROR", status).await;
            return;
        }
        WatchStart::Replay {
            snapshot,
            events,
            receiver,
            current,
        } => (snapshot, events, receiver, current),
    };
    for obj in snapshot.into_iter().filter(|o| watch.matches(o)) {
        if !watch
            .send("ADDED", watch.target.present_as(obj, watch.params.view))
            .await
        {
            return;
        }
    }
    if watch.params.send_initial_events
        && !watch.send("BOOKMARK", watch.bookmark(current, true)).await
    {
        return;
    }
    for event in events {
        if !watch.forward(&event).await {
            return;
        }
    }
    let deadline = tokio::time::Instant::now() + watch.params.timeout;
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + BOOKMARK_INTERVAL,
        BOOKMARK_INTERVAL,
    );
    loop {
        tokio::select! {
            received = receiver.recv() => match received {
                Ok(event) => {
                    if !watch.forward(&event).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let status = ApiError::Expired { requested: current, oldest: current }.to_status();
                    watch.send("ERROR", status).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            () = tokio::time::sleep_until(deadline) => {
                watch.idle_bookmark(&receiver).await;
                return;
            }
            _ = ticker.tick() => {
                if !watch.idle_bookmark(&receiver).await {
                    return;
                }
            }
            _ = epoch.changed() => return,
            () = watch.tx.closed() => return,
        }
    }
}

impl Watch {
    fn matches(&self, obj: &Value) -> bool {
        let namespace_ok = self
            .target
            .namespace
            .as_deref()
            .is_none_or(|ns| meta::meta_str(obj, "namespace") == Some(ns));
        namespace_ok && self.params.labels.matches(obj) && self.params.fields.matches(obj)
    }

    /// Sends one event line; false when the client is gone.
    async fn send(&self, kind: &str, object: Value) -> bool {
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        self.tx.send(Bytes::from(line)).await.is_ok()
    }

    /// Sends a stored change if this watch sees it; false when the client is gone.
    async fn forward(&self, event: &Event) -> bool {
        if event.resource != self.target.key() {
            return true;
        }
        let now = self.matches(&event.object);
        let before = event.previous.as_deref().is_some_and(|p| self.matches(p));
        let kind = match (event.kind, before, now) {
            (EventType::Added, _, true) => "ADDED",
            (EventType::Modified, true, true) => "MODIFIED",
            (EventType::Modified, false, true) => "ADDED",
            (EventType::Modified, true, false) => "DELETED",
            (EventType::Deleted, b, n) if b || n => "DELETED",
            _ => return true,
        };
        self.send(
            kind,
            self.target
                .present_as((*event.object).clone(), self.params.view),
        )
        .await
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Value {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let (kind, api_version) = match self.params.view {
            View::Full => (self.target.rt.kind.clone(), self.target.api_version()),
            View::Metadata => (
                "PartialObjectMetadata".to_owned(),
                "meta.k8s.io/v1".to_owned(),
            ),
        };
        json!({"kind": kind, "apiVersion": api_version, "metadata": metadata})
    }

    /// Sends a bookmark at the current version if bookmarks are on and every event up to
    /// it has been sent; false when the client is gone.
    async fn idle_bookmark(&self, receiver: &broadcast::Receiver<Arc<Event>>) -> bool {
        if !self.params.bookmarks {
            return true;
        }
        let rv = {
            let state = self.shared.lock();
            // Events are broadcast under the lock: an empty receiver now means none is
            // pending up to the current version.
            receiver.is_empty().then(|| state.rv())
        };
        match rv {
            Some(rv) => self.send("BOOKMARK", self.bookmark(rv, false)).await,
            None => true,
        }
    }
}

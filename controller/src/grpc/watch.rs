//! The client side of the metadata watch: a background task that follows the
//! controller's WatchMetadata stream and publishes each image on a
//! `tokio::sync::watch` channel, which [`RemoteControlPlane::watch_metadata`] hands out.
//!
//! The task starts on the first `watch_metadata` call. It opens the stream, takes the
//! snapshot, applies each delta to the image last received on that stream, and
//! publishes the result. When the stream breaks (the controller restarted, the network
//! failed, an update did not decode or did not fit) it waits (a backoff doubling from
//! [`ClientOptions::reconnect_backoff`] to its max, reset by every snapshot), moves to
//! the next endpoint, and starts again from a fresh snapshot.
//!
//! Invariant: the published image never goes back to an older version of the same
//! cluster (a controller that restarted from older state, or a lagging standby, is
//! followed silently until it passes what was published); a different cluster id is
//! published whatever its version. The channel's placeholder value, there until the
//! first snapshot, is never handed out. The task ends once nobody holds a receiver.
//!
//! [`RemoteControlPlane::watch_metadata`]: super::RemoteControlPlane
//! [`ClientOptions::reconnect_backoff`]: super::ClientOptions::reconnect_backoff

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::client::{ClientOptions, Controller, Controllers};
use super::delta::{DeltaError, MetadataDelta, apply};
use super::invalid::InvalidMessage;
use super::pb::{self, metadata_update};
use super::status;
use crate::controller::ControllerError;
use crate::metadata::ClusterMetadata;

type Images = watch::Sender<Arc<ClusterMetadata>>;

/// The published images and, until the first `receiver` call, the task that will
/// publish them.
#[derive(Debug)]
pub(crate) struct MetadataWatch {
    follower: Mutex<Option<Follower>>,
    images: watch::Receiver<Arc<ClusterMetadata>>,
    placeholder: Arc<ClusterMetadata>,
    last_error: Arc<Mutex<Option<String>>>,
    controllers: Arc<Controllers>,
    first_image_timeout: Duration,
}

impl MetadataWatch {
    pub(crate) fn new(controllers: Arc<Controllers>, options: &ClientOptions) -> MetadataWatch {
        let placeholder = Arc::new(ClusterMetadata::empty(String::new(), 0));
        let (publish, images) = watch::channel(placeholder.clone());
        let last_error = Arc::new(Mutex::new(None));
        let follower = Follower {
            controllers: controllers.clone(),
            images: publish,
            placeholder: placeholder.clone(),
            last_error: last_error.clone(),
            request_timeout: options.request_timeout,
            backoff: Backoff::new(options.reconnect_backoff, options.reconnect_backoff_max),
        };
        MetadataWatch {
            follower: Mutex::new(Some(follower)),
            images,
            placeholder,
            last_error,
            controllers,
            first_image_timeout: options.first_image_timeout,
        }
    }

    /// A receiver of the published images, once there is one: the first call starts
    /// the task and waits up to `first_image_timeout` for the first snapshot.
    pub(crate) async fn receiver(
        &self,
    ) -> Result<watch::Receiver<Arc<ClusterMetadata>>, ControllerError> {
        self.start();
        let mut images = self.images.clone();
        let placeholder = &self.placeholder;
        let first = async {
            let seen = images
                .wait_for(|image| !Arc::ptr_eq(image, placeholder))
                .await;
            seen.map(drop)
        };
        match tokio::time::timeout(self.first_image_timeout, first).await {
            Ok(Ok(())) => Ok(images),
            // The task holds the sender until every receiver, this one included, is gone.
            Ok(Err(_closed)) => Err(self.no_image("the metadata watch task stopped")),
            Err(_elapsed) => Err(self.no_image(&format!(
                "no metadata snapshot within {} ms",
                self.first_image_timeout.as_millis()
            ))),
        }
    }

    fn start(&self) {
        let follower = self
            .follower
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(follower) = follower {
            tokio::spawn(follower.run());
        }
    }

    fn no_image(&self, what: &str) -> ControllerError {
        let last = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let reason = match last {
            Some(last) => format!("{what}; last failure: {last}"),
            None => what.to_owned(),
        };
        status::unreachable(&self.controllers.addresses(), &reason)
    }
}

/// Why the task stopped following one stream.
#[derive(Debug, thiserror::Error)]
enum StreamEnd {
    #[error(transparent)]
    Open(ControllerError),
    #[error("the controller at {address} ended the metadata stream")]
    Ended { address: String },
    #[error("the metadata stream from the controller at {address} broke: {reason}")]
    Broken { address: String, reason: String },
    #[error("the controller at {address} sent an update without a snapshot or delta")]
    EmptyUpdate { address: String },
    #[error("the controller at {address} sent a malformed metadata update: {source}")]
    Malformed {
        address: String,
        #[source]
        source: InvalidMessage,
    },
    #[error("the controller at {address} sent a delta before any snapshot")]
    DeltaBeforeSnapshot { address: String },
    #[error("the controller at {address} sent a delta that does not fit: {source}")]
    Misfit {
        address: String,
        #[source]
        source: DeltaError,
    },
}

/// Waits before reconnecting: doubling from `initial` up to `max`.
#[derive(Debug)]
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        wait
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// The background task's state.
#[derive(Debug)]
struct Follower {
    controllers: Arc<Controllers>,
    images: Images,
    placeholder: Arc<ClusterMetadata>,
    last_error: Arc<Mutex<Option<String>>>,
    request_timeout: Duration,
    backoff: Backoff,
}

impl Follower {
    async fn run(mut self) {
        loop {
            let (index, controller) = self.controllers.current();
            let end = tokio::select! {
                end = follow(&self.images, &self.placeholder, controller, self.request_timeout, &mut self.backoff) => end,
                () = self.images.closed() => return,
            };
            *self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(end.to_string());
            self.controllers.failed(index);
            let wait = self.backoff.next();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.images.closed() => return,
            }
        }
    }
}

/// Follows one stream from `controller` until it ends, publishing each image.
async fn follow(
    images: &Images,
    placeholder: &Arc<ClusterMetadata>,
    controller: &Controller,
    request_timeout: Duration,
    backoff: &mut Backoff,
) -> StreamEnd {
    let address = &controller.address;
    let mut client = controller.client();
    let opened = tokio::time::timeout(
        request_timeout,
        client.watch_metadata(pb::WatchMetadataRequest {}),
    )
    .await;
    let mut stream = match opened {
        Ok(Ok(response)) => response.into_inner(),
        Ok(Err(status)) => {
            return StreamEnd::Open(status::into_controller_error(
                &status,
                address,
                "WatchMetadata",
            ));
        }
        Err(_elapsed) => {
            return StreamEnd::Open(status::timed_out(address, "WatchMetadata", request_timeout));
        }
    };
    let mut image: Option<Arc<ClusterMetadata>> = None;
    loop {
        let update = match stream.message().await {
            Ok(Some(update)) => update,
            Ok(None) => {
                return StreamEnd::Ended {
                    address: address.clone(),
                };
            }
            Err(status) => {
                return StreamEnd::Broken {
                    address: address.clone(),
                    reason: status::describe(&status),
                };
            }
        };
        let next = match next_image(address, image.as_deref(), update) {
            Ok((next, is_snapshot)) => {
                if is_snapshot {
                    backoff.reset();
                }
                Arc::new(next)
            }
            Err(end) => return end,
        };
        publish(images, placeholder, &next);
        image = Some(next);
    }
}

/// The image an update leads to, and whether it was a snapshot.
fn next_image(
    address: &str,
    image: Option<&ClusterMetadata>,
    update: pb::MetadataUpdate,
) -> Result<(ClusterMetadata, bool), StreamEnd> {
    let malformed = |source: InvalidMessage| StreamEnd::Malformed {
        address: address.to_owned(),
        source,
    };
    match update.kind {
        None => Err(StreamEnd::EmptyUpdate {
            address: address.to_owned(),
        }),
        Some(metadata_update::Kind::Snapshot(snapshot)) => {
            let next =
                ClusterMetadata::try_from(snapshot).map_err(|err| malformed(err.at("snapshot")))?;
            Ok((next, true))
        }
        Some(metadata_update::Kind::Delta(delta)) => {
            let delta = MetadataDelta::try_from(delta).map_err(|err| malformed(err.at("delta")))?;
            let image = image.ok_or_else(|| StreamEnd::DeltaBeforeSnapshot {
                address: address.to_owned(),
            })?;
            let next = apply(image, delta).map_err(|source| StreamEnd::Misfit {
                address: address.to_owned(),
                source,
            })?;
            Ok((next, false))
        }
    }
}

/// Publishes `next` unless that would take the image back; see the module docs.
fn publish(images: &Images, placeholder: &Arc<ClusterMetadata>, next: &Arc<ClusterMetadata>) {
    images.send_if_modified(|published| {
        let current = (!Arc::ptr_eq(published, placeholder)).then_some(published.as_ref());
        let newer = should_publish(current, next);
        if newer {
            *published = next.clone();
        }
        newer
    });
}

/// Whether a watcher that has `published` should move to `next`.
fn should_publish(published: Option<&ClusterMetadata>, next: &ClusterMetadata) -> bool {
    match published {
        None => true,
        Some(published) => {
            published.cluster_id != next.cluster_id || next.version > published.version
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(cluster_id: &str, version: u64) -> ClusterMetadata {
        ClusterMetadata::empty(cluster_id, version)
    }

    #[test]
    fn the_published_image_never_goes_back_within_a_cluster() {
        assert!(should_publish(None, &image("a", 0)));
        assert!(should_publish(Some(&image("a", 5)), &image("a", 6)));
        assert!(!should_publish(Some(&image("a", 5)), &image("a", 5)));
        assert!(!should_publish(Some(&image("a", 5)), &image("a", 4)));
        assert!(should_publish(Some(&image("a", 5)), &image("b", 1)));
    }

    #[test]
    fn publish_skips_older_images_and_replaces_the_placeholder() {
        let placeholder = Arc::new(image("", 0));
        let (images, mut seen) = watch::channel(placeholder.clone());
        publish(&images, &placeholder, &Arc::new(image("a", 0)));
        assert!(seen.has_changed().unwrap());
        assert_eq!(seen.borrow_and_update().cluster_id, "a");
        publish(&images, &placeholder, &Arc::new(image("a", 3)));
        publish(&images, &placeholder, &Arc::new(image("a", 2)));
        assert_eq!(seen.borrow_and_update().version, 3);
        publish(&images, &placeholder, &Arc::new(image("a", 3)));
        assert!(!seen.has_changed().unwrap());
    }

    #[test]
    fn backoff_doubles_up_to_its_max_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(150));
        let waits: Vec<u128> = (0..4).map(|_| backoff.next().as_millis()).collect();
        assert_eq!(waits, vec![50, 100, 150, 150]);
        backoff.reset();
        assert_eq!(backoff.next(), Duration::from_millis(50));
    }

    #[test]
    fn a_delta_before_any_snapshot_ends_the_stream() {
        let update = pb::MetadataUpdate {
            kind: Some(metadata_update::Kind::Delta(pb::MetadataDelta::default())),
        };
        let end = next_image("http://c", None, update).unwrap_err();
        assert!(
            matches!(end, StreamEnd::DeltaBeforeSnapshot { .. }),
            "{end}"
        );
    }
}

//! Helpers shared by the controller's integration tests.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use weir_controller::{
    BrokerEpoch, BrokerId, ClusterMetadata, Controller, Heartbeat, Listener, MemoryMetadataStore,
    MetadataStore, RegisterBroker, StoreError,
};

pub fn registration(controller_cluster: &str, id: i32, rack: Option<&str>) -> RegisterBroker {
    RegisterBroker {
        id: BrokerId(id),
        incarnation: uuid::Uuid::new_v4(),
        cluster_id: controller_cluster.to_owned(),
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: format!("broker-{id}"),
            port: 9092,
        }],
        rack: rack.map(str::to_owned),
    }
}

/// Registers broker `id` (a new incarnation) and unfences it with a heartbeat at `now`.
pub async fn join<S: MetadataStore>(
    controller: &mut Controller<S>,
    id: i32,
    now: Instant,
) -> BrokerEpoch {
    let request = registration(&controller.metadata().cluster_id, id, None);
    let epoch = controller.register_broker(request).await.unwrap();
    let heartbeat = Heartbeat {
        broker: BrokerId(id),
        broker_epoch: epoch,
    };
    let reply = controller.broker_heartbeat(heartbeat, now).await.unwrap();
    assert!(!reply.fenced);
    epoch
}

/// A controller over a memory store with brokers `0..n` registered and unfenced at `now`.
pub async fn cluster_at(
    n: i32,
    now: Instant,
) -> (Controller<MemoryMetadataStore>, MemoryMetadataStore) {
    let store = MemoryMetadataStore::new();
    let mut controller = Controller::open(store.clone(), now).await.unwrap();
    for id in 0..n {
        join(&mut controller, id, now).await;
    }
    (controller, store)
}

/// A store whose saves can be made to fail, and which counts them.
#[derive(Clone, Default)]
pub struct FlakyStore {
    pub inner: MemoryMetadataStore,
    pub fail: Arc<AtomicBool>,
    pub saves: Arc<AtomicUsize>,
}

impl FlakyStore {
    pub fn saves(&self) -> usize {
        self.saves.load(Ordering::SeqCst)
    }

    pub fn set_failing(&self, failing: bool) {
        self.fail.store(failing, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl MetadataStore for FlakyStore {
    async fn load(&self) -> Result<Option<ClusterMetadata>, StoreError> {
        self.inner.load().await
    }

    async fn save(
        &self,
        metadata: &ClusterMetadata,
        expected: Option<u64>,
    ) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Io {
                path: "flaky".into(),
                source: std::io::Error::other("disk on fire"),
            });
        }
        self.saves.fetch_add(1, Ordering::SeqCst);
        self.inner.save(metadata, expected).await
    }
}

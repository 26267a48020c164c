//! Properties of the metadata watch's deltas, over generated images: applying the
//! diff of two images to the first gives the second, also after the delta went
//! through protobuf bytes; snapshots survive protobuf unchanged; a delta applies only
//! to the version it was made from.
//!
//! The generators draw names, ids and brokers from small pools, so that two images
//! share most topics and brokers and differ in the ways deltas must handle: a topic
//! changed in place, deleted, re-created under its name with a new id; a broker added,
//! changed, removed; scalars changed or not.

use std::collections::BTreeMap;

use proptest::collection::{btree_map, btree_set, vec};
use proptest::option;
use proptest::prelude::*;
use prost::Message;
use weir_controller::grpc::{DeltaError, MetadataDelta, apply, diff, pb};
use weir_controller::{
    BrokerEpoch, BrokerId, BrokerInfo, ClusterMetadata, Listener, PartitionState, TopicId,
    TopicMetadata, TopicName,
};

const TOPIC_NAMES: [&str; 4] = ["orders", "payments", "__consumer_offsets", "a.b-c_d"];

fn broker_ids() -> impl Strategy<Value = Vec<BrokerId>> {
    vec((0..5i32).prop_map(BrokerId), 0..4)
}

fn partition(index: i32) -> impl Strategy<Value = PartitionState> {
    (
        broker_ids(),
        broker_ids(),
        option::of((0..5i32).prop_map(BrokerId)),
        0..3i32,
        0..3i32,
        broker_ids(),
        broker_ids(),
    )
        .prop_map(
            move |(replicas, isr, leader, leader_epoch, partition_epoch, adding, removing)| {
                PartitionState {
                    partition: index,
                    replicas,
                    isr,
                    leader,
                    leader_epoch,
                    partition_epoch,
                    adding_replicas: adding,
                    removing_replicas: removing,
                }
            },
        )
}

fn topic(name: &'static str) -> impl Strategy<Value = TopicMetadata> {
    let configs = btree_map(
        prop::sample::select(vec!["retention.ms", "cleanup.policy", "segment.bytes"]),
        prop::sample::select(vec!["1", "compact", "delete,compact"]),
        0..3,
    );
    (1u128..4, 1..4i32, configs)
        .prop_flat_map(move |(id, count, configs)| {
            let partitions: Vec<_> = (0..count).map(partition).collect();
            (Just(id), partitions, Just(configs))
        })
        .prop_map(move |(id, partitions, configs)| TopicMetadata {
            name: TopicName::new(name).unwrap(),
            id: TopicId(uuid::Uuid::from_u128(id)),
            partitions,
            configs: configs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        })
}

/// Up to three listeners with distinct names (none for brokers stored before listeners had
/// to be registered).
fn listeners() -> impl Strategy<Value = Vec<Listener>> {
    (
        prop::sample::subsequence(vec!["PLAINTEXT", "INTERNAL", "EXTERNAL"], 0..=3),
        prop::sample::select(vec!["127.0.0.1", "broker-0.weir"]),
        any::<u16>(),
    )
        .prop_map(|(names, host, port)| {
            names
                .into_iter()
                .enumerate()
                .map(|(i, name)| Listener::new(name, host, port.wrapping_add(i as u16)))
                .collect()
        })
}

fn broker(id: i32) -> impl Strategy<Value = BrokerInfo> {
    (
        option::of(prop::sample::select(vec!["r1", "r2"])),
        listeners(),
        0..4i64,
        option::of(1u128..3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            move |(rack, listeners, epoch, incarnation, fenced, in_controlled_shutdown)| {
                BrokerInfo {
                    id: BrokerId(id),
                    rack: rack.map(str::to_owned),
                    listeners,
                    epoch: BrokerEpoch(epoch),
                    incarnation: incarnation.map(uuid::Uuid::from_u128),
                    fenced,
                    in_controlled_shutdown,
                }
            },
        )
}

fn image() -> impl Strategy<Value = ClusterMetadata> {
    let topics = btree_set(prop::sample::select(TOPIC_NAMES.to_vec()), 0..=4)
        .prop_flat_map(|names| names.into_iter().map(topic).collect::<Vec<_>>());
    let brokers = btree_set(0..5i32, 0..=5)
        .prop_flat_map(|ids| ids.into_iter().map(broker).collect::<Vec<_>>());
    (
        prop::sample::select(vec!["cluster-a", "cluster-b"]),
        0..6u64,
        topics,
        brokers,
        prop::sample::select(vec![0i64, 1000, 2000]),
        0..4i64,
    )
        .prop_map(
            |(cluster_id, version, topics, brokers, next_producer_id, last_broker_epoch)| {
                ClusterMetadata {
                    cluster_id: cluster_id.to_owned(),
                    version,
                    topics: topics
                        .into_iter()
                        .map(|t| (t.name.to_string(), t))
                        .collect::<BTreeMap<_, _>>(),
                    brokers: brokers.into_iter().map(|b| (b.id, b)).collect(),
                    next_producer_id,
                    last_broker_epoch: BrokerEpoch(last_broker_epoch),
                }
            },
        )
}

/// `delta` as the watch sends it: to protobuf, to bytes, and back.
fn through_the_wire(delta: &MetadataDelta) -> MetadataDelta {
    let bytes = pb::MetadataDelta::from(delta).encode_to_vec();
    let decoded = pb::MetadataDelta::decode(bytes.as_slice()).unwrap();
    MetadataDelta::try_from(decoded).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn applying_the_diff_of_two_images_gives_the_second(prev in image(), next in image()) {
        let delta = diff(&prev, &next);
        prop_assert_eq!(apply(&prev, delta.clone()), Ok(next.clone()));
        prop_assert_eq!(apply(&prev, through_the_wire(&delta)), Ok(next));
    }

    #[test]
    fn a_delta_applies_only_to_the_version_it_was_made_from(
        prev in image(),
        next in image(),
        other_version in 0..6u64,
    ) {
        prop_assume!(other_version != prev.version);
        let stale = ClusterMetadata { version: other_version, ..prev.clone() };
        prop_assert_eq!(
            apply(&stale, diff(&prev, &next)),
            Err(DeltaError::VersionMismatch {
                image_version: other_version,
                from_version: prev.version,
            })
        );
    }

    #[test]
    fn an_image_diffed_with_itself_gives_an_empty_delta(image in image()) {
        prop_assert!(diff(&image, &image).is_empty());
    }

    #[test]
    fn snapshots_survive_protobuf_unchanged(image in image()) {
        let bytes = pb::MetadataImage::from(&image).encode_to_vec();
        let decoded = pb::MetadataImage::decode(bytes.as_slice()).unwrap();
        prop_assert_eq!(ClusterMetadata::try_from(decoded), Ok(image));
    }
}

#[test]
fn a_broker_from_a_controller_before_listeners_decodes_as_one_plaintext_listener() {
    let old = pb::Broker {
        id: 2,
        host: "pod-2.weir.svc".into(),
        port: 9092,
        ..pb::Broker::default()
    };
    let broker = BrokerInfo::try_from(old).unwrap();
    assert_eq!(
        broker.listeners,
        [Listener::new("PLAINTEXT", "pod-2.weir.svc", 9092)]
    );

    // A current broker message also fills host and port, with its first listener, for
    // watchers from before listeners.
    let listeners = vec![
        Listener::new("INTERNAL", "pod-2.weir.svc", 9092),
        Listener::new("EXTERNAL", "kafka-2.example.com", 31002),
    ];
    let current = pb::Broker::from(&BrokerInfo::new(BrokerId(2), None, listeners.clone()));
    assert_eq!(
        (current.host.as_str(), current.port),
        ("pod-2.weir.svc", 9092)
    );
    assert_eq!(BrokerInfo::try_from(current).unwrap().listeners, listeners);

    let out_of_range = pb::Broker {
        listeners: vec![pb::Listener {
            name: "EXTERNAL".into(),
            host: "h".into(),
            port: 70_000,
        }],
        ..pb::Broker::default()
    };
    let err = BrokerInfo::try_from(out_of_range).unwrap_err();
    assert!(err.to_string().contains("listeners[0].port"), "{err}");
}

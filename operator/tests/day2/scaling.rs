//! 3. Scaling. Up 3 → 4 with `rebalance.onScaleUp` (on in `examples/cluster.yaml`): the
//!    new broker joins and replicas move onto it through reassignment. Down 4 → 3: the
//!    leaving broker's replicas are drained first and the StatefulSet shrinks only after.
//!    Down 3 → 2, below the topics' replication factor: refused with a condition saying
//!    why. An acks=all producer runs throughout and loses nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use weir_operator::crd::Topic;

use crate::env::{CLUSTER, Env, NS, condition, report, wait_for};
use crate::traffic::{Traffic, check_no_loss, read_all};

/// Replicas per broker over every Topic's partitions.
async fn replicas_per_broker(topics: &Api<Topic>) -> BTreeMap<i32, usize> {
    let mut per_broker = BTreeMap::new();
    for topic in topics.list(&ListParams::default()).await.unwrap().items {
        for p in topic.status.map(|s| s.partitions).unwrap_or_default() {
            for r in p.replicas {
                *per_broker.entry(r).or_default() += 1;
            }
        }
    }
    per_broker
}

fn patch_brokers(env: &Env, brokers: i32) {
    env.kubectl(&[
        "patch",
        "cluster",
        CLUSTER,
        "-n",
        NS,
        "--type",
        "merge",
        "-p",
        &format!(r#"{{"spec":{{"brokers":{brokers}}}}}"#),
    ]);
}

async fn sts_replicas(statefulsets: &Api<StatefulSet>) -> Option<i32> {
    statefulsets
        .get(&format!("{CLUSTER}-broker"))
        .await
        .ok()?
        .spec?
        .replicas
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_rebalances_up_drains_down_and_refuses_below_the_replication_factor() {
    let (env, bootstrap) = Env::serving().await;
    let traffic = Traffic::start(&bootstrap, "orders", 200);
    traffic.wait_flowing(200, Duration::from_secs(30)).await;
    let topics = env.topics();
    let statefulsets: Api<StatefulSet> = Api::namespaced(env.client.clone(), NS);

    // Up: 3 → 4, and the replicas spread onto broker 3.
    let started = Instant::now();
    patch_brokers(&env, 4);
    let balanced = wait_for(
        "broker 3 Ready and the replicas balanced onto it",
        Duration::from_secs(180),
        || {
            let topics = topics.clone();
            let env = &env;
            async move {
                let cluster = env.clusters().get(CLUSTER).await.ok()?;
                if !crate::env::cluster_ready(&cluster) || cluster.spec.brokers != 4 {
                    return None;
                }
                let per_broker = replicas_per_broker(&topics).await;
                let (min, max) = (per_broker.values().min()?, per_broker.values().max()?);
                (per_broker.len() == 4 && max - min <= 1).then_some(per_broker)
            }
        },
    )
    .await;
    report(format!(
        "scale 3 → 4 with rebalance: broker 3 joined and replicas balanced {balanced:?} in \
         {:.1?}",
        started.elapsed()
    ));
    env.wait_topic_in_sync("orders", 12, 3, Duration::from_secs(60))
        .await;

    // Down: 4 → 3. The StatefulSet must not shrink while broker 3 holds a replica.
    let shrunk_with: Arc<Mutex<Option<BTreeMap<i32, usize>>>> = Arc::default();
    let watch = {
        let shrunk_with = shrunk_with.clone();
        let statefulsets = statefulsets.clone();
        let topics = topics.clone();
        tokio::spawn(async move {
            let mut events = watcher(statefulsets, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(Ok(sts)) = events.next().await {
                if sts.spec.and_then(|s| s.replicas) == Some(3) {
                    let per_broker = replicas_per_broker(&topics).await;
                    *shrunk_with.lock().unwrap() = Some(per_broker);
                    return;
                }
            }
        })
    };
    let started = Instant::now();
    patch_brokers(&env, 3);
    wait_for(
        "the StatefulSet shrunk to 3 after the drain",
        Duration::from_secs(180),
        || async { (sts_replicas(&statefulsets).await? == 3).then_some(()) },
    )
    .await;
    let drained_at = started.elapsed();
    let _ = tokio::time::timeout(Duration::from_secs(10), watch).await;
    let at_shrink = shrunk_with
        .lock()
        .unwrap()
        .clone()
        .expect("the StatefulSet watch saw the shrink");
    assert_eq!(
        at_shrink.get(&3),
        None,
        "broker 3 still held replicas when the StatefulSet shrank: {at_shrink:?}"
    );
    env.wait_cluster_ready(Duration::from_secs(120)).await;
    wait_for(
        "broker 3 unregistered once its pod is gone",
        Duration::from_secs(30),
        || async {
            let cluster = env.clusters().get(CLUSTER).await.ok()?;
            let status = cluster.status?;
            let registered: Vec<i64> = status
                .metadata
                .as_ref()?
                .brokers
                .iter()
                .filter_map(|b| b["id"].as_i64())
                .collect();
            (status.brokers.len() == 3 && registered == [0, 1, 2]).then_some(())
        },
    )
    .await;
    let claim = format!("data-{CLUSTER}-broker-3");
    wait_for(
        "broker 3's volume deleted (whenScaled: Delete)",
        Duration::from_secs(60),
        || async {
            let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
                Api::namespaced(env.client.clone(), NS);
            claims.get_opt(&claim).await.ok()?.is_none().then_some(())
        },
    )
    .await;
    report(format!(
        "scale 4 → 3: drained, StatefulSet shrunk after {drained_at:.1?}, Ready after {:.1?}",
        started.elapsed()
    ));

    // Below the replication factor: refused, with the reason, and nothing shrinks.
    patch_brokers(&env, 2);
    let blocked = wait_for(
        "a ScaleDownBlocked condition",
        Duration::from_secs(30),
        || async {
            let cluster = env.clusters().get(CLUSTER).await.ok()?;
            let status = cluster.status?;
            let ready = condition(&status.conditions, "Ready")?.clone();
            (ready.status == "False" && ready.reason == "ScaleDownBlocked").then_some(ready)
        },
    )
    .await;
    report(format!("scale 3 → 2 refused: {}", blocked.message));
    assert!(
        blocked.message.contains("replication factor 3"),
        "{}",
        blocked.message
    );
    assert_eq!(sts_replicas(&statefulsets).await, Some(3));
    patch_brokers(&env, 3);
    env.wait_cluster_ready(Duration::from_secs(60)).await;

    traffic.wait_flowing(200, Duration::from_secs(30)).await;
    let produced = traffic.stop().await;
    let read = tokio::task::block_in_place(|| read_all(&bootstrap, "orders", 12));
    check_no_loss("scaling", &produced, &read);
    env.stop().await;
}

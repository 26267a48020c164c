//! 4. A broker process crashes (SIGKILL, no controlled shutdown): the controller fences
//!    it when its session times out and elects new leaders from the ISR; the kubelet
//!    restarts the container, the broker catches up and rejoins every ISR; an acks=all
//!    producer running throughout loses nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

use crate::env::{CLUSTER, Env, NS, pod_ready, report, wait_for};
use crate::traffic::{Traffic, check_no_loss, read_all};

/// Partition → leader of `topic`, as clients see it (Metadata); -1 for none.
pub(crate) fn leaders(bootstrap: &str, topic: &str) -> Option<BTreeMap<i32, i32>> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .ok()?;
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(2))
        .ok()?;
    let topic = metadata.topics().first()?;
    Some(
        topic
            .partitions()
            .iter()
            .map(|p| (p.id(), p.leader()))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_broker_is_replaced_as_leader_restarts_and_catches_up() {
    let (env, bootstrap) = Env::serving().await;
    let traffic = Traffic::start(&bootstrap, "orders", 200);
    traffic.wait_flowing(200, Duration::from_secs(30)).await;

    let before = tokio::task::block_in_place(|| leaders(&bootstrap, "orders")).expect("Metadata");
    let victim = 1;
    let led: Vec<i32> = before
        .iter()
        .filter(|(_, l)| **l == victim)
        .map(|(p, _)| *p)
        .collect();
    assert!(!led.is_empty(), "broker {victim} leads nothing: {before:?}");
    let pod = format!("{CLUSTER}-broker-{victim}");
    let killed = Instant::now();
    assert!(env.kubelet().kill(NS, &pod), "{pod} is running");

    let after = wait_for(
        "new leaders for the crashed broker's partitions",
        Duration::from_secs(60),
        || {
            let bootstrap = bootstrap.clone();
            let led = led.clone();
            async move {
                let now = tokio::task::block_in_place(|| leaders(&bootstrap, "orders"))?;
                led.iter()
                    .all(|p| now.get(p).is_some_and(|l| *l >= 0 && *l != victim))
                    .then_some(now)
            }
        },
    )
    .await;
    let failover = killed.elapsed();
    report(format!(
        "broker kill → new leaders for its {} partitions (client Metadata): {failover:.1?}",
        led.len()
    ));

    let pods = env.pods(NS);
    let restarted = wait_for(
        "the crashed broker's container restarted and Ready",
        Duration::from_secs(60),
        || {
            let pods = pods.clone();
            let pod = pod.clone();
            async move {
                let p = pods.get_opt(&pod).await.ok()??;
                let restarts = p
                    .status
                    .as_ref()?
                    .container_statuses
                    .as_ref()?
                    .first()?
                    .restart_count;
                (restarts >= 1 && pod_ready(&p)).then_some(restarts)
            }
        },
    )
    .await;
    env.wait_topic_in_sync("orders", 12, 3, Duration::from_secs(120))
        .await;
    env.wait_cluster_ready(Duration::from_secs(60)).await;
    report(format!(
        "broker kill → restarted ({restarted} restart) and back in every ISR: {:.1?}",
        killed.elapsed()
    ));
    traffic.wait_flowing(200, Duration::from_secs(30)).await;
    let produced = traffic.stop().await;
    let read = tokio::task::block_in_place(|| read_all(&bootstrap, "orders", 12));
    check_no_loss("broker crash", &produced, &read);
    assert!(
        after.values().all(|l| *l >= 0),
        "every partition has a leader: {after:?}"
    );
    env.stop().await;
}

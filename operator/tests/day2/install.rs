//! 1. `kubectl apply -f examples/` → a Ready cluster that real clients use through the
//!    bootstrap address, with leaders and ISRs visible through the API.

use std::time::{Duration, Instant};

use crate::env::{Env, NS, report, wait_for};
use crate::traffic::{Traffic, check_no_loss, produce_one, read_all};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_apply_to_a_serving_cluster() {
    let env = Env::install().await;
    let applied = Instant::now();
    env.apply_examples();
    let bootstrap = env.bootstrap().await;
    wait_for(
        "a first record acknowledged on orders",
        Duration::from_secs(90),
        || async { produce_one(&bootstrap, "orders").await.ok() },
    )
    .await;
    report(format!(
        "apply → first successful produce: {:.1?}",
        applied.elapsed()
    ));
    env.wait_cluster_ready(Duration::from_secs(60)).await;
    report(format!("apply → Cluster Ready: {:.1?}", applied.elapsed()));
    env.wait_topic_in_sync("orders", 12, 3, Duration::from_secs(60))
        .await;
    env.wait_topic_in_sync("customer-profiles", 6, 3, Duration::from_secs(60))
        .await;
    report(format!(
        "apply → both Topics Ready and in sync: {:.1?}",
        applied.elapsed()
    ));

    // A real producer and consumer through the bootstrap Service.
    let traffic = Traffic::start(&bootstrap, "orders", 200);
    traffic.wait_flowing(400, Duration::from_secs(30)).await;
    let produced = traffic.stop().await;
    let read = tokio::task::block_in_place(|| read_all(&bootstrap, "orders", 12));
    check_no_loss("examples", &produced, &read);

    // What the user sees: kubectl lists both kinds, and every partition's leader and ISR.
    let listed = env.kubectl(&["get", "clusters,topics", "-n", NS]);
    report(format!("kubectl get clusters,topics:\n{listed}"));
    for name in ["demo", "orders", "customer-profiles"] {
        assert!(listed.contains(name), "{name} missing from:\n{listed}");
    }
    let partitions = env.kubectl(&[
        "get",
        "topic",
        "orders",
        "-n",
        NS,
        "-o",
        r#"jsonpath={range .status.partitions[*]}{.partition} leader={.leader} isr={.isr}{"\n"}{end}"#,
    ]);
    report(format!(
        "orders partitions (kubectl jsonpath):\n{partitions}"
    ));
    let lines: Vec<&str> = partitions.lines().collect();
    assert_eq!(lines.len(), 12, "{partitions}");
    for line in lines {
        assert!(
            line.contains(" leader=") && !line.contains("leader= ") && line.contains("isr=["),
            "a partition without a leader or ISR: {line}"
        );
        let isr = line.split("isr=").nth(1).unwrap_or_default();
        assert_eq!(isr.matches(',').count(), 2, "ISR of three: {line}");
    }
    env.stop().await;
}

//! 2. A config change restarts the brokers one at a time, each only once every broker is
//!    back in every ISR, while an acks=all producer runs: no partition drops below
//!    `min.insync.replicas`, nothing acknowledged is lost, and the Cluster's status
//!    reports the progress.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::Api;

use crate::env::{CLUSTER, Env, NS, pod_ready, report, wait_for};
use crate::observe::Observer;
use crate::traffic::{Traffic, check_no_loss, read_all};

const REVISION_LABEL: &str = "controller-revision-hash";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_change_restarts_brokers_one_at_a_time_without_loss() {
    let (env, bootstrap) = Env::serving().await;
    let statefulsets: Api<StatefulSet> = Api::namespaced(env.client.clone(), NS);
    let sts_name = format!("{CLUSTER}-broker");
    let old_revision = statefulsets
        .get(&sts_name)
        .await
        .unwrap()
        .status
        .and_then(|s| s.update_revision)
        .expect("the StatefulSet has a revision");

    let traffic = Traffic::start(&bootstrap, "orders", 200);
    traffic.wait_flowing(200, Duration::from_secs(30)).await;
    let observer = Observer::start(&env.client);
    let started = Instant::now();
    env.kubectl(&[
        "patch",
        "cluster",
        CLUSTER,
        "-n",
        NS,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"config":{"log.retention.hours":"72"}}}"#,
    ]);
    let new_revision = wait_for(
        "a new StatefulSet revision",
        Duration::from_secs(30),
        || async {
            let sts = statefulsets.get(&sts_name).await.ok()?;
            let revision = sts.status?.update_revision?;
            (revision != old_revision).then_some(revision)
        },
    )
    .await;
    let pods = env.pods(NS);
    wait_for(
        "every broker restarted on the new revision and Ready",
        Duration::from_secs(240),
        || {
            let pods = pods.clone();
            let new_revision = new_revision.clone();
            async move {
                let list = pods.list(&Default::default()).await.ok()?.items;
                let brokers: Vec<_> = list
                    .iter()
                    .filter(|p| {
                        p.metadata
                            .name
                            .as_deref()
                            .unwrap_or_default()
                            .contains("-broker-")
                    })
                    .collect();
                let done = brokers.len() == 3
                    && brokers.iter().all(|p| {
                        pod_ready(p)
                            && p.metadata
                                .labels
                                .as_ref()
                                .and_then(|l| l.get(REVISION_LABEL))
                                == Some(&new_revision)
                    });
                done.then_some(())
            }
        },
    )
    .await;
    env.wait_cluster_ready(Duration::from_secs(60)).await;
    let duration = started.elapsed();
    traffic.wait_flowing(200, Duration::from_secs(30)).await;
    let observed = observer.stop();
    report(format!(
        "3-broker rolling restart: {duration:.1?} (patch → every broker on the new revision, \
         Ready and in sync); order {:?}; at most {} broker(s) down at once",
        observed.taken_down, observed.max_unready
    ));
    for line in &observed.progress {
        report(format!("  status: {line}"));
    }
    let produced = traffic.stop().await;
    let read = tokio::task::block_in_place(|| read_all(&bootstrap, "orders", 12));
    check_no_loss("rolling restart", &produced, &read);

    assert_eq!(
        observed.taken_down,
        [2, 1, 0].map(|i| format!("{CLUSTER}-broker-{i}")),
        "one restart per broker, highest ordinal first"
    );
    assert_eq!(observed.max_unready, 1, "one broker at a time");
    let below = observed.below(2);
    assert!(
        below.is_empty(),
        "partitions below min.insync.replicas=2: {below:?}"
    );
    assert!(
        observed.progress.iter().any(|p| p.contains("restart")),
        "the status reported the rollout: {:?}",
        observed.progress
    );
    env.stop().await;
}

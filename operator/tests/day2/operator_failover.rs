//! 5. The operator leader dies with its node (pod force-deleted, process SIGKILLed: it
//!    cannot release the Lease): the standby takes the Lease once it expires, hosts the Cluster's controller from the
//!    resources, the brokers re-register with it, and clients see no failure — the data
//!    path never goes through the operator.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt as _;
use kube::api::Api;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

use crate::env::{Env, LEASE, OPERATOR_NS, report, wait_for};
use crate::traffic::{Traffic, check_no_loss, read_all};

async fn lease(env: &Env) -> Lease {
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), OPERATOR_NS);
    leases.get(LEASE).await.expect("the Lease")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_operator_takes_over_when_the_leader_dies() {
    let (env, bootstrap) = Env::serving().await;
    let traffic = Traffic::start(&bootstrap, "orders", 200);
    traffic.wait_flowing(200, Duration::from_secs(30)).await;

    let before = lease(&env).await.spec.expect("Lease spec");
    let leader = before.holder_identity.clone().expect("a holder");
    let transitions = before.lease_transitions.unwrap_or(0);
    let killed = Instant::now();
    // The node is lost with the leader on it: the pod is force-deleted and its process
    // SIGKILLed, so it never releases the Lease. (A container that merely crashes restarts
    // in its pod under the same identity and renews its own Lease within a second or two.)
    env.kubectl(&[
        "delete",
        "pod",
        &leader,
        "-n",
        OPERATOR_NS,
        "--grace-period=0",
        "--force",
    ]);
    let holder = wait_for(
        "another operator pod holds the Lease",
        Duration::from_secs(60),
        || async {
            let spec = lease(&env).await.spec?;
            let holder = spec.holder_identity.filter(|h| *h != leader)?;
            (spec.lease_transitions.unwrap_or(0) > transitions).then_some(holder)
        },
    )
    .await;
    let takeover = killed.elapsed();
    report(format!(
        "operator leader {leader} killed → {holder} holds the Lease: {takeover:.1?} \
         (lease duration 15 s)"
    ));

    // The new leader hosts the controller from the resources; the brokers carry on with
    // it, heartbeating with the epochs they registered (as KRaft brokers do after a
    // controller failover). A broker that did not reach it would be fenced when its
    // session ran out, so the Cluster is still Ready with every broker registered after
    // a session timeout (9 s) under the new leader, and an admin request that needs the
    // controller and all three brokers succeeds.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let cluster = env.wait_cluster_ready(Duration::from_secs(60)).await;
    let status = cluster.status.expect("status");
    assert!(
        status.brokers.iter().all(|b| b.registered) && status.brokers.len() == 3,
        "every broker registered and unfenced under the new leader: {:?}",
        status.brokers
    );
    report(format!(
        "operator leader killed → Cluster Ready under the new leader after a broker session \
         timeout: {:.1?}",
        killed.elapsed()
    ));
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new(
                "after-failover",
                3,
                TopicReplication::Fixed(3),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let topic = env
        .wait_topic_in_sync("after-failover", 3, 3, Duration::from_secs(30))
        .await;
    report(format!(
        "operator leader killed → a topic created through Kafka is Ready as Topic {}: {:.1?}",
        topic.name_any(),
        killed.elapsed()
    ));
    traffic.wait_flowing(200, Duration::from_secs(30)).await;
    let produced = traffic.stop().await;
    let read = tokio::task::block_in_place(|| read_all(&bootstrap, "orders", 12));
    check_no_loss("operator failover", &produced, &read);
    env.stop().await;
}

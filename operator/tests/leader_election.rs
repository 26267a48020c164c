//! Operator leader election across two instances, against the API server double: one
//! holds the Lease, the other follows; when the leader stops renewing, the follower
//! takes over after the lease duration; a released Lease is taken at once; and two
//! whole operator processes (`run`) elect exactly one leader, which hands over on
//! shutdown.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use tokio::sync::watch;
use weir_operator::leader::{ElectionConfig, Elector};
use weir_operator::run::{RunConfig, run};

use common::{api_server, eventually};

fn fast(identity: &str) -> ElectionConfig {
    let mut config = ElectionConfig::new("weir-system", "weir-operator", identity);
    config.lease_duration = Duration::from_secs(2);
    config.renew_deadline = Duration::from_millis(1000);
    config.retry_period = Duration::from_millis(100);
    config
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("weir-operator")
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[tokio::test]
async fn one_candidate_leads_and_the_other_takes_over_when_it_stops_renewing() {
    let server = api_server().await;
    let client = server.client();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "weir-system");

    let (a_tx, mut a_leading) = watch::channel(false);
    let a = tokio::spawn(Elector::new(client.clone(), fast("a")).run(a_tx));
    tokio::time::timeout(Duration::from_secs(10), a_leading.wait_for(|l| *l))
        .await
        .unwrap()
        .unwrap();
    let (b_tx, b_leading) = watch::channel(false);
    let b = tokio::spawn(Elector::new(client.clone(), fast("b")).run(b_tx));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!*b_leading.borrow(), "b must follow while a renews");
    assert_eq!(holder(&leases).await.as_deref(), Some("a"));

    // a dies without releasing: b waits out the lease duration, then takes over.
    a.abort();
    let stopped_renewing = tokio::time::Instant::now();
    let mut b_leading = b_leading;
    tokio::time::timeout(Duration::from_secs(10), b_leading.wait_for(|l| *l))
        .await
        .unwrap()
        .unwrap();
    assert!(
        stopped_renewing.elapsed() >= Duration::from_millis(1400),
        "took over before the lease expired"
    );
    assert_eq!(holder(&leases).await.as_deref(), Some("b"));
    let lease = leases.get("weir-operator").await.unwrap().spec.unwrap();
    assert_eq!(lease.lease_transitions, Some(1));
    b.abort();
    server.stop().await;
}

#[tokio::test]
async fn a_released_lease_is_taken_without_waiting() {
    let server = api_server().await;
    let client = server.client();
    let mut a = Elector::new(client.clone(), fast("a"));
    assert!(a.step().await.unwrap());
    let mut b = Elector::new(client.clone(), fast("b"));
    assert!(!b.step().await.unwrap());
    a.release().await.unwrap();
    assert!(b.step().await.unwrap(), "a released Lease is free");
    assert!(!a.step().await.unwrap());
    server.stop().await;
}

fn operator(identity: &str) -> RunConfig {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    RunConfig {
        watch_namespace: None,
        http_listener: any,
        controller_listener: any,
        controller_address: "weir-operator-controller.weir-system.svc:9093".to_owned(),
        broker_image: "weir-broker:test".to_owned(),
        namespace: "weir-system".to_owned(),
        identity: identity.to_owned(),
        lease_name: "weir-operator".to_owned(),
    }
}

#[tokio::test]
async fn two_operators_elect_one_leader_which_hands_over_on_shutdown() {
    let server = api_server().await;
    let client = server.client();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "weir-system");
    let (stop_first, first_stopped) = tokio::sync::oneshot::channel::<()>();
    let first = tokio::spawn(run(client.clone(), operator("operator-0"), async {
        let _ = first_stopped.await;
    }));
    let first_holder =
        eventually(Duration::from_secs(10), || async { holder(&leases).await }).await;
    assert_eq!(first_holder, "operator-0");
    let (stop_second, second_stopped) = tokio::sync::oneshot::channel::<()>();
    let second = tokio::spawn(run(client.clone(), operator("operator-1"), async {
        let _ = second_stopped.await;
    }));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        holder(&leases).await.as_deref(),
        Some("operator-0"),
        "the standby must not take a held Lease"
    );

    // SIGTERM to the leader: it releases the Lease and the standby leads well before the
    // 15 s lease duration would have run out.
    let handover = tokio::time::Instant::now();
    stop_first.send(()).unwrap();
    first.await.unwrap().unwrap();
    let next = eventually(Duration::from_secs(10), || async {
        holder(&leases).await.filter(|h| h == "operator-1")
    })
    .await;
    assert_eq!(next, "operator-1");
    assert!(handover.elapsed() < Duration::from_secs(10));
    stop_second.send(()).unwrap();
    second.await.unwrap().unwrap();
    server.stop().await;
}

#[tokio::test]
async fn a_deposed_leader_stops_so_it_can_restart_as_a_standby() {
    let server = api_server().await;
    let client = server.client();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "weir-system");
    let leader = tokio::spawn(run(
        client.clone(),
        operator("operator-0"),
        std::future::pending(),
    ));
    eventually(Duration::from_secs(10), || async {
        holder(&leases).await.filter(|h| h == "operator-0")
    })
    .await;

    // Another replica takes the Lease over (as after a network partition healed).
    let mut lease = leases.get("weir-operator").await.unwrap();
    let spec = lease.spec.as_mut().unwrap();
    spec.holder_identity = Some("operator-1".to_owned());
    spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    leases
        .replace("weir-operator", &Default::default(), &lease)
        .await
        .unwrap();

    let outcome = tokio::time::timeout(Duration::from_secs(10), leader)
        .await
        .expect("a deposed leader must stop")
        .unwrap();
    let error = outcome
        .expect_err("losing the Lease is an error exit")
        .to_string();
    assert!(error.contains("Lease"), "{error}");
    assert_eq!(holder(&leases).await.as_deref(), Some("operator-1"));
    server.stop().await;
}

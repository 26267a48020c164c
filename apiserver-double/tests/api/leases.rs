//! Leases as leader election uses them: optimistic concurrency between two clients.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::api::{Api, ObjectMeta, PostParams};
use weir_apiserver_double::ApiServer;

use crate::common::{api_code, api_reason};

fn lease(holder: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some("weir-controller".into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }),
    }
}

fn holder(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

#[tokio::test]
async fn two_clients_racing_for_a_lease_one_wins_and_one_conflicts() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let alice: Api<Lease> = Api::default_namespaced(server.client());
    let bob: Api<Lease> = Api::default_namespaced(server.client());
    let pp = PostParams::default();

    let created = alice.create(&pp, &lease("alice")).await?;
    let lost_create = bob.create(&pp, &lease("bob")).await.unwrap_err();
    assert_eq!(api_reason(&lost_create), "AlreadyExists");

    // Both read the same version and both try to take the lease.
    let seen_by_alice = alice.get("weir-controller").await?;
    let seen_by_bob = bob.get("weir-controller").await?;
    assert_eq!(
        seen_by_alice.metadata.resource_version,
        created.metadata.resource_version
    );
    let mut alice_renews = seen_by_alice.clone();
    alice_renews.spec.get_or_insert_default().lease_transitions = Some(1);
    let mut bob_takes = seen_by_bob.clone();
    bob_takes.spec = lease("bob").spec;

    let (a, b) = tokio::join!(
        alice.replace("weir-controller", &pp, &alice_renews),
        bob.replace("weir-controller", &pp, &bob_takes)
    );
    let (winner, loser) = match (a, b) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
        (a, b) => panic!("expected exactly one winner, got {a:?} and {b:?}"),
    };
    assert_eq!(
        (api_code(&loser), api_reason(&loser).as_str()),
        (409, "Conflict")
    );
    let stored = alice.get("weir-controller").await?;
    assert_eq!(holder(&stored), holder(&winner));
    assert_ne!(
        stored.metadata.resource_version,
        created.metadata.resource_version
    );
    Ok(())
}

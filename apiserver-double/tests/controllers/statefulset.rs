//! The StatefulSet controller: identities, claims, scaling in both pod management
//! policies, both update strategies, replacement of deleted and ended pods.

use kube::api::DeleteParams;
use serde_json::{Value, json};

use crate::{
    SetSpec, claim, create_set, eventually, hold, is_terminating, make_ready, patch_set, pod,
    pod_names, revision_of, set_phase, set_status, settled, start, uid, writes,
};

fn parallel_on_delete(replicas: i32) -> SetSpec {
    SetSpec {
        replicas,
        parallel: true,
        on_delete: true,
        retention: None,
    }
}

fn names(ordinals: &[i32]) -> Vec<String> {
    ordinals.iter().map(|o| format!("web-{o}")).collect()
}

/// Checks everything the controller puts on pod `web-<ordinal>` and its claim.
fn assert_identity(pod: &Value, claim: &Value, ordinal: i32, revision: &str) {
    let name = format!("web-{ordinal}");
    let meta = &pod["metadata"];
    assert_eq!(meta["labels"]["app"], "web", "template labels");
    assert_eq!(meta["annotations"]["note"], "v1", "template annotations");
    assert_eq!(
        meta["labels"]["statefulset.kubernetes.io/pod-name"],
        name.as_str()
    );
    assert_eq!(
        meta["labels"]["apps.kubernetes.io/pod-index"],
        ordinal.to_string()
    );
    assert_eq!(meta["labels"]["controller-revision-hash"], revision);
    let owner = &meta["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["name"], &owner["controller"]),
        (&json!("StatefulSet"), &json!("web"), &json!(true))
    );
    assert_eq!(pod["spec"]["hostname"], name.as_str());
    assert_eq!(pod["spec"]["subdomain"], "web-headless");
    let claim_name = format!("data-web-{ordinal}");
    assert_eq!(
        pod["spec"]["volumes"],
        json!([
            {"name": "data", "persistentVolumeClaim": {"claimName": claim_name}},
            {"name": "scratch", "emptyDir": {}},
        ])
    );
    assert_eq!(
        claim["metadata"]["labels"],
        json!({"tier": "storage", "app": "web"})
    );
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
    assert_eq!(claim["status"]["phase"], "Bound");
    assert_eq!(
        claim["spec"]["volumeName"],
        format!("pvc-{}", uid(claim)).as_str()
    );
    assert!(
        claim["metadata"].get("ownerReferences").is_none(),
        "Retain/Retain leaves claims unowned: {claim}"
    );
}

#[tokio::test]
async fn on_delete_parallel_scales_3_4_2_with_identities_claims_and_revisions() -> anyhow::Result<()>
{
    let (server, controllers, client) = start().await;
    create_set(&client, parallel_on_delete(3)).await?;
    eventually("three pods and a status", || {
        pod_names(&server, "web-") == names(&[0, 1, 2]) && set_status(&server)["replicas"] == 3
    })
    .await;
    let status = set_status(&server);
    let revision = status["updateRevision"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        revision.starts_with("web-") && revision.len() > 4,
        "{revision}"
    );
    assert_eq!(status["currentRevision"], revision.as_str());
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["collisionCount"], 0);
    assert_eq!(
        (&status["readyReplicas"], &status["updatedReplicas"]),
        (&json!(0), &json!(3))
    );
    for ordinal in 0..3 {
        eventually("the claim is bound", || {
            claim(&server, &format!("data-web-{ordinal}"))
                .is_some_and(|c| c["status"]["phase"] == "Bound")
        })
        .await;
        let p = pod(&server, &format!("web-{ordinal}")).unwrap_or_default();
        let c = claim(&server, &format!("data-web-{ordinal}")).unwrap_or_default();
        assert_identity(&p, &c, ordinal, &revision);
    }

    for name in names(&[0, 1, 2]) {
        make_ready(&client, &name).await?;
    }
    eventually("readyReplicas 3", || {
        set_status(&server)["readyReplicas"] == 3
    })
    .await;
    assert_eq!(set_status(&server)["availableReplicas"], 3);

    patch_set(&client, json!({"replicas": 4})).await?;
    eventually("a fourth pod with its claim", || {
        pod_names(&server, "web-") == names(&[0, 1, 2, 3])
            && claim(&server, "data-web-3").is_some_and(|c| c["status"]["phase"] == "Bound")
    })
    .await;
    let fourth = pod(&server, "web-3").unwrap_or_default();
    assert_identity(
        &fourth,
        &claim(&server, "data-web-3").unwrap_or_default(),
        3,
        &revision,
    );

    patch_set(&client, json!({"replicas": 2})).await?;
    eventually("two pods left and status replicas 2", || {
        pod_names(&server, "web-") == names(&[0, 1]) && set_status(&server)["replicas"] == 2
    })
    .await;
    let status = set_status(&server);
    assert_eq!(
        status["updateRevision"],
        revision.as_str(),
        "scaling is no new revision"
    );
    assert_eq!(status["observedGeneration"], 3);
    assert_eq!(status["readyReplicas"], 2);
    for ordinal in 0..4 {
        assert!(
            claim(&server, &format!("data-web-{ordinal}")).is_some(),
            "claims are retained by default (data-web-{ordinal})"
        );
    }
    server.clear_requests();
    settled(&server).await;
    assert_eq!(
        writes(&server),
        Vec::<String>::new(),
        "a settled set makes no writes"
    );
    controllers.stop().await;
    Ok(())
}

#[tokio::test]
async fn on_delete_keeps_old_pods_until_deleted_and_recreates_on_the_update_revision()
-> anyhow::Result<()> {
    let (server, _controllers, client) = start().await;
    create_set(&client, parallel_on_delete(2)).await?;
    eventually("two pods", || pod_names(&server, "web-").len() == 2).await;
    let old = set_status(&server)["updateRevision"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let first = pod(&server, "web-0").unwrap_or_default();

    patch_set(
        &client,
        json!({"template": {"metadata": {"annotations": {"note": "v2"}}}}),
    )
    .await?;
    eventually("a new update revision", || {
        let s = set_status(&server);
        s["updateRevision"] != old.as_str() && s["observedGeneration"] == 2
    })
    .await;
    let new = set_status(&server)["updateRevision"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    settled(&server).await;
    let status = set_status(&server);
    assert_eq!(status["currentRevision"], old.as_str());
    assert_eq!(
        (&status["currentReplicas"], &status["updatedReplicas"]),
        (&json!(2), &json!(0))
    );
    for name in ["web-0", "web-1"] {
        assert_eq!(
            revision_of(&pod(&server, name).unwrap_or_default()),
            old,
            "{name} untouched"
        );
    }

    sets_delete_pod(&client, "web-1").await?;
    eventually("web-1 recreated on the new revision", || {
        pod(&server, "web-1").is_some_and(|p| revision_of(&p) == new)
    })
    .await;
    let recreated = pod(&server, "web-1").unwrap_or_default();
    assert_eq!(recreated["metadata"]["annotations"]["note"], "v2");
    eventually("status counts one updated pod", || {
        let s = set_status(&server);
        s["updatedReplicas"] == 1 && s["currentReplicas"] == 1
    })
    .await;
    assert_eq!(set_status(&server)["currentRevision"], old.as_str());
    assert_eq!(
        uid(&pod(&server, "web-0").unwrap_or_default()),
        uid(&first),
        "web-0 kept"
    );

    sets_delete_pod(&client, "web-0").await?;
    eventually("every pod on the new revision, and it is current", || {
        let s = set_status(&server);
        s["currentRevision"] == new.as_str()
            && s["currentReplicas"] == 2
            && s["updatedReplicas"] == 2
    })
    .await;
    assert_eq!(revision_of(&pod(&server, "web-0").unwrap_or_default()), new);
    Ok(())
}

async fn sets_delete_pod(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    kube::Api::<k8s_openapi::api::core::v1::Pod>::default_namespaced(client.clone())
        .delete(name, &DeleteParams::default())
        .await?;
    Ok(())
}

/// The DELETE requests of pods `web-*`, in order.
fn pod_deletions(server: &weir_apiserver_double::ApiServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter(|r| r.verb == Some(weir_apiserver_double::Verb::Delete))
        .filter_map(|r| r.path.strip_prefix("/api/v1/namespaces/default/pods/"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn rolling_update_replaces_the_highest_ordinal_first_one_at_a_time_above_the_partition()
-> anyhow::Result<()> {
    let (server, _controllers, client) = start().await;
    create_set(
        &client,
        SetSpec {
            replicas: 3,
            parallel: true,
            on_delete: false,
            retention: None,
        },
    )
    .await?;
    eventually("three pods", || pod_names(&server, "web-").len() == 3).await;
    for name in names(&[0, 1, 2]) {
        make_ready(&client, &name).await?;
    }
    eventually("three ready", || set_status(&server)["readyReplicas"] == 3).await;
    let old = set_status(&server)["updateRevision"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let web0 = uid(&pod(&server, "web-0").unwrap_or_default());

    patch_set(
        &client,
        json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
               "template": {"metadata": {"annotations": {"note": "v2"}}}}),
    )
    .await?;
    let new_revision = |server: &weir_apiserver_double::ApiServer| {
        set_status(server)["updateRevision"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    eventually("web-2 replaced", || {
        pod(&server, "web-2")
            .is_some_and(|p| revision_of(&p) != old && revision_of(&p) == new_revision(&server))
    })
    .await;
    settled(&server).await;
    assert_eq!(
        pod_deletions(&server),
        ["web-2"],
        "web-1 waits for web-2 to be ready"
    );
    assert_eq!(revision_of(&pod(&server, "web-1").unwrap_or_default()), old);

    make_ready(&client, "web-2").await?;
    eventually("web-1 replaced", || {
        pod(&server, "web-1").is_some_and(|p| revision_of(&p) == new_revision(&server))
    })
    .await;
    make_ready(&client, "web-1").await?;
    eventually("two updated and ready", || {
        let s = set_status(&server);
        s["updatedReplicas"] == 2 && s["readyReplicas"] == 3
    })
    .await;
    settled(&server).await;
    assert_eq!(
        pod_deletions(&server),
        ["web-2", "web-1"],
        "the partition keeps web-0"
    );
    assert_eq!(uid(&pod(&server, "web-0").unwrap_or_default()), web0);
    assert_eq!(set_status(&server)["currentRevision"], old.as_str());

    patch_set(
        &client,
        json!({"updateStrategy": {"rollingUpdate": {"partition": 0}}}),
    )
    .await?;
    eventually("web-0 replaced", || {
        pod(&server, "web-0").is_some_and(|p| revision_of(&p) == new_revision(&server))
    })
    .await;
    make_ready(&client, "web-0").await?;
    eventually("the update revision is current", || {
        let s = set_status(&server);
        s["currentRevision"] == s["updateRevision"] && s["currentReplicas"] == 3
    })
    .await;
    assert_eq!(pod_deletions(&server), ["web-2", "web-1", "web-0"]);
    Ok(())
}

#[tokio::test]
async fn ordered_ready_creates_each_pod_after_its_predecessors_are_ready_and_removes_from_the_top()
-> anyhow::Result<()> {
    let (server, _controllers, client) = start().await;
    create_set(
        &client,
        SetSpec {
            replicas: 3,
            parallel: false,
            on_delete: true,
            retention: None,
        },
    )
    .await?;
    eventually("web-0", || pod(&server, "web-0").is_some()).await;
    set_phase(&client, "web-0", "Running", false).await?;
    settled(&server).await;
    assert_eq!(
        pod_names(&server, "web-"),
        names(&[0]),
        "web-1 waits for web-0 to be ready"
    );

    make_ready(&client, "web-0").await?;
    eventually("web-1", || pod(&server, "web-1").is_some()).await;
    settled(&server).await;
    assert_eq!(pod_names(&server, "web-"), names(&[0, 1]));
    make_ready(&client, "web-1").await?;
    eventually("web-2", || pod(&server, "web-2").is_some()).await;
    make_ready(&client, "web-2").await?;
    eventually("three ready", || set_status(&server)["readyReplicas"] == 3).await;

    // Scale down to one: web-2 goes first, and web-1 only once web-2 is gone.
    hold(&client, "web-2", true).await?;
    patch_set(&client, json!({"replicas": 1})).await?;
    eventually("web-2 terminating", || {
        pod(&server, "web-2").is_some_and(|p| is_terminating(&p))
    })
    .await;
    settled(&server).await;
    let web1 = pod(&server, "web-1").unwrap_or_default();
    assert!(!is_terminating(&web1), "web-1 waits until web-2 is gone");
    hold(&client, "web-2", false).await?;
    eventually("only web-0 left", || {
        pod_names(&server, "web-") == names(&[0])
    })
    .await;
    Ok(())
}

#[tokio::test]
async fn a_terminating_pod_is_replaced_only_once_gone_and_an_ended_one_is_replaced()
-> anyhow::Result<()> {
    let (server, _controllers, client) = start().await;
    create_set(&client, parallel_on_delete(2)).await?;
    eventually("two pods", || pod_names(&server, "web-").len() == 2).await;
    let first = uid(&pod(&server, "web-0").unwrap_or_default());

    hold(&client, "web-0", true).await?;
    sets_delete_pod(&client, "web-0").await?;
    eventually("web-0 terminating", || {
        pod(&server, "web-0").is_some_and(|p| is_terminating(&p))
    })
    .await;
    settled(&server).await;
    let held = pod(&server, "web-0").unwrap_or_default();
    assert_eq!(uid(&held), first, "no new pod while the old one exists");
    assert_eq!(
        set_status(&server)["replicas"],
        2,
        "a terminating pod still counts"
    );
    assert_eq!(
        set_status(&server)["updatedReplicas"],
        1,
        "but not as updated"
    );

    hold(&client, "web-0", false).await?;
    eventually("web-0 recreated", || {
        pod(&server, "web-0").is_some_and(|p| uid(&p) != first && !is_terminating(&p))
    })
    .await;

    let second = uid(&pod(&server, "web-1").unwrap_or_default());
    set_phase(&client, "web-1", "Failed", false).await?;
    eventually("failed web-1 replaced", || {
        pod(&server, "web-1").is_some_and(|p| uid(&p) != second)
    })
    .await;
    let replaced = pod(&server, "web-1").unwrap_or_default();
    assert!(
        replaced
            .get("status")
            .is_none_or(|s| s["phase"] != "Failed")
    );
    Ok(())
}

#[tokio::test]
async fn an_orphan_pod_matching_the_selector_is_adopted_not_replaced() -> anyhow::Result<()> {
    let (server, _controllers, client) = start().await;
    let orphan: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-0", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "example/web:0"}]},
    }))?;
    let orphan = kube::Api::<k8s_openapi::api::core::v1::Pod>::default_namespaced(client.clone())
        .create(&kube::api::PostParams::default(), &orphan)
        .await?;
    create_set(&client, parallel_on_delete(2)).await?;
    eventually("web-0 adopted and web-1 created", || {
        pod(&server, "web-1").is_some()
            && pod(&server, "web-0")
                .is_some_and(|p| p["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet")
    })
    .await;
    let adopted = pod(&server, "web-0").unwrap_or_default();
    assert_eq!(
        uid(&adopted),
        orphan.metadata.uid.unwrap_or_default(),
        "kept, not replaced"
    );
    assert_eq!(
        adopted["metadata"]["ownerReferences"][0]["controller"],
        true
    );
    Ok(())
}

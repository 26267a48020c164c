//! The Deployment controller: replicas, replacement of deleted pods, rollouts.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use weir_apiserver_double::ApiServer;

use crate::{eventually, make_ready, start, uid};

async fn create_deployment(client: &kube::Client, strategy: &str) -> anyhow::Result<()> {
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "op"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "op"}},
            "strategy": {"type": strategy},
            "template": {
                "metadata": {"labels": {"app": "op"}},
                "spec": {"containers": [{"name": "operator", "image": "example/op:1"}]},
            },
        },
    }))?;
    Api::<Deployment>::default_namespaced(client.clone())
        .create(&PostParams::default(), &deployment)
        .await?;
    Ok(())
}

async fn set_image(client: &kube::Client, image: &str) -> anyhow::Result<()> {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "operator", "image": image}]}}}});
    Api::<Deployment>::default_namespaced(client.clone())
        .patch("op", &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}

/// The live (not terminating) pods of the deployment.
fn live_pods(server: &ApiServer) -> Vec<Value> {
    server
        .objects("", "pods")
        .into_iter()
        .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
        .filter(|p| {
            p["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("op-"))
        })
        .collect()
}

fn hash(pod: &Value) -> String {
    pod["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn name(pod: &Value) -> String {
    pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
}

fn status(server: &ApiServer) -> Value {
    server
        .object("apps", "deployments", Some("default"), "op")
        .map(|d| d["status"].clone())
        .unwrap_or_default()
}

fn condition(server: &ApiServer, type_: &str) -> Value {
    status(server)["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap_or_default()
}

/// Acts as the kubelet until every pod of the deployment has `hash` and is ready.
async fn roll_until_all(
    server: &ApiServer,
    client: &kube::Client,
    hash_wanted: &str,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(8);
    loop {
        let pods = live_pods(server);
        if pods.len() == 2 && pods.iter().all(|p| hash(p) == hash_wanted && is_ready(p)) {
            return Ok(());
        }
        for p in pods.iter().filter(|p| !is_ready(p)) {
            // A pod may be deleted between the read and the patch.
            let _ = make_ready(client, &name(p)).await;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "rollout did not finish: {pods:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_deployment_keeps_its_replicas_replaces_deleted_pods_and_rolls_out_a_new_template()
-> anyhow::Result<()> {
    let (server, _controllers, client) = start().await;
    create_deployment(&client, "RollingUpdate").await?;
    eventually("two pods and status", || {
        live_pods(&server).len() == 2 && status(&server)["replicas"] == 2
    })
    .await;
    let pods = live_pods(&server);
    let first_hash = hash(&pods[0]);
    for p in &pods {
        assert_eq!(hash(p), first_hash);
        let n = name(p);
        let suffix = n
            .strip_prefix(&format!("op-{first_hash}-"))
            .unwrap_or_default();
        assert_eq!(suffix.len(), 5, "{n}");
        assert!(
            suffix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{n}"
        );
        assert_eq!(p["metadata"]["labels"]["app"], "op");
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["name"], &owner["controller"]),
            (&json!("Deployment"), &json!("op"), &json!(true))
        );
    }
    assert_eq!(
        condition(&server, "Available")["status"],
        "False",
        "nothing is ready yet"
    );

    for p in &pods {
        make_ready(&client, &name(p)).await?;
    }
    eventually("available", || {
        status(&server)["availableReplicas"] == 2
            && condition(&server, "Available")["status"] == "True"
    })
    .await;
    let s = status(&server);
    assert_eq!(
        (
            &s["readyReplicas"],
            &s["updatedReplicas"],
            &s["observedGeneration"]
        ),
        (&json!(2), &json!(2), &json!(1))
    );
    assert_eq!(
        condition(&server, "Progressing")["reason"],
        "NewReplicaSetAvailable"
    );

    let gone = uid(&pods[0]);
    Api::<Pod>::default_namespaced(client.clone())
        .delete(&name(&pods[0]), &DeleteParams::default())
        .await?;
    eventually("a replacement", || {
        let live = live_pods(&server);
        live.len() == 2 && live.iter().all(|p| uid(p) != gone)
    })
    .await;
    roll_until_all(&server, &client, &first_hash).await?;

    set_image(&client, "example/op:2").await?;
    eventually("a pod of the new template", || {
        live_pods(&server).iter().any(|p| hash(p) != first_hash)
    })
    .await;
    let new_hash = live_pods(&server)
        .iter()
        .map(hash)
        .find(|h| *h != first_hash)
        .unwrap_or_default();
    let old_left = live_pods(&server)
        .iter()
        .filter(|p| hash(p) == first_hash)
        .count();
    assert_eq!(
        old_left, 2,
        "old pods stay until new ones are ready (maxUnavailable 0 of 2)"
    );
    roll_until_all(&server, &client, &new_hash).await?;
    eventually("the rollout reported complete", || {
        let s = status(&server);
        s["updatedReplicas"] == 2
            && s["replicas"] == 2
            && s["observedGeneration"] == 2
            && condition(&server, "Progressing")["reason"] == "NewReplicaSetAvailable"
    })
    .await;
    let image = &live_pods(&server)[0]["spec"]["containers"][0]["image"];
    assert_eq!(image, "example/op:2");
    server.clear_requests();
    crate::settled(&server).await;
    assert_eq!(
        crate::writes(&server),
        Vec::<String>::new(),
        "a settled deployment makes no writes"
    );
    Ok(())
}

#[tokio::test]
async fn a_recreate_deployment_removes_old_pods_before_creating_new_ones() -> anyhow::Result<()> {
    let (server, _controllers, client) = start().await;
    create_deployment(&client, "Recreate").await?;
    eventually("two pods", || live_pods(&server).len() == 2).await;
    let old = hash(&live_pods(&server)[0]);
    let held = name(&live_pods(&server)[0]);
    // Hold one old pod once deleted: no new pod may start while it exists.
    Api::<Pod>::default_namespaced(client.clone())
        .patch(
            &held,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["test.weir.dev/hold"]}})),
        )
        .await?;
    set_image(&client, "example/op:2").await?;
    eventually("the old pods deleted", || live_pods(&server).is_empty()).await;
    crate::settled(&server).await;
    assert!(
        live_pods(&server).is_empty(),
        "nothing new while an old pod terminates"
    );
    Api::<Pod>::default_namespaced(client.clone())
        .patch(
            &held,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await?;
    eventually("two new pods", || {
        let live = live_pods(&server);
        live.len() == 2 && live.iter().all(|p| hash(p) != old)
    })
    .await;
    Ok(())
}

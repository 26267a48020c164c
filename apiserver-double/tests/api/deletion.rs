//! Finalizers, owner-reference garbage collection and namespace deletion.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use kube::api::{
    Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions, WatchEvent,
    WatchParams,
};
use serde_json::json;
use weir_apiserver_double::ApiServer;

use crate::common::{api_code, api_reason, configmap, install_widgets, widget};

fn owner_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    owner
        .controller_owner_ref(&())
        .expect("the owner has a name and uid")
}

fn owned_configmap(name: &str, owner: OwnerReference) -> ConfigMap {
    let mut cm = configmap(name, &[]);
    cm.metadata.owner_references = Some(vec![owner]);
    cm
}

fn statefulset(name: &str, owner: OwnerReference) -> anyhow::Result<StatefulSet> {
    let mut sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {}, "serviceName": name, "template": {}},
    }))?;
    sts.metadata.owner_references = Some(vec![owner]);
    Ok(sts)
}

#[tokio::test]
async fn a_finalizer_keeps_a_deleted_object_until_it_is_removed() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut cm = configmap("guarded", &[]);
    cm.metadata.finalizers = Some(vec!["weir.dev/cleanup".into()]);
    let created = api.create(&PostParams::default(), &cm).await?;
    let rv = created
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let mut events = api.watch(&WatchParams::default(), &rv).await?.boxed();

    let deleted = api.delete("guarded", &DeleteParams::default()).await?;
    let pending = deleted
        .left()
        .expect("the object is returned while it waits");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert_eq!(pending.metadata.deletion_grace_period_seconds, Some(0));
    let still_there = api.get("guarded").await?;
    assert!(still_there.metadata.deletion_timestamp.is_some());

    let adding = api
        .patch(
            "guarded",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["weir.dev/cleanup", "weir.dev/other"]}}),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(
        api_code(&adding),
        422,
        "no new finalizers on an object being deleted"
    );

    api.patch(
        "guarded",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    assert_eq!(
        api_reason(&api.get("guarded").await.unwrap_err()),
        "NotFound"
    );

    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next()).await?;
        kinds.push(match event.expect("the watch continues")? {
            WatchEvent::Modified(cm) => format!(
                "MODIFIED deleting={}",
                cm.metadata.deletion_timestamp.is_some()
            ),
            WatchEvent::Deleted(_) => "DELETED".to_owned(),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(
        kinds,
        [
            "MODIFIED deleting=true",
            "MODIFIED deleting=true",
            "DELETED"
        ]
    );
    Ok(())
}

#[tokio::test]
async fn deleting_an_owner_configmap_removes_its_configmaps_and_statefulsets() -> anyhow::Result<()>
{
    let server = ApiServer::start().await;
    let client = server.client();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let stss: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let pp = PostParams::default();
    let owner = cms.create(&pp, &configmap("owner", &[])).await?;
    let child = cms
        .create(&pp, &owned_configmap("child", owner_ref(&owner)))
        .await?;
    cms.create(&pp, &owned_configmap("grandchild", owner_ref(&child)))
        .await?;
    stss.create(&pp, &statefulset("owned-sts", owner_ref(&owner))?)
        .await?;
    cms.create(&pp, &configmap("bystander", &[])).await?;

    cms.delete("owner", &DeleteParams::default()).await?;
    let left: Vec<String> = server
        .objects("", "configmaps")
        .iter()
        .map(|o| {
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(left, ["bystander"]);
    assert!(server.objects("apps", "statefulsets").is_empty());
    Ok(())
}

#[tokio::test]
async fn deleting_a_custom_object_collects_what_it_owns() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let client = server.client();
    let widgets = install_widgets(&client).await?;
    let owner = widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(
        &PostParams::default(),
        &owned_configmap("config", owner_ref(&owner)),
    )
    .await?;
    widgets.delete("w", &DeleteParams::default()).await?;
    assert_eq!(api_code(&cms.get("config").await.unwrap_err()), 404);
    Ok(())
}

#[tokio::test]
async fn orphan_propagation_leaves_dependents_without_the_owner_reference() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let pp = PostParams::default();
    let owner = cms.create(&pp, &configmap("owner", &[])).await?;
    cms.create(&pp, &owned_configmap("child", owner_ref(&owner)))
        .await?;
    cms.delete("owner", &DeleteParams::orphan()).await?;
    let child = cms.get("child").await?;
    assert_eq!(child.metadata.owner_references, None);
    Ok(())
}

#[tokio::test]
async fn delete_preconditions_are_checked() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let created = cms
        .create(&PostParams::default(), &configmap("c", &[]))
        .await?;
    let wrong = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let err = cms.delete("c", &wrong).await.unwrap_err();
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (409, "Conflict")
    );
    let right = DeleteParams {
        preconditions: Some(Preconditions {
            uid: created.metadata.uid.clone(),
            resource_version: created.metadata.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    cms.delete("c", &right).await?;
    Ok(())
}

#[tokio::test]
async fn deleting_a_namespace_removes_everything_in_it() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let client = server.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("tenant".into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let created = namespaces.create(&PostParams::default(), &ns).await?;
    assert_eq!(
        created.status.and_then(|s| s.phase).as_deref(),
        Some("Active")
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "tenant");
    cms.create(&PostParams::default(), &configmap("a", &[]))
        .await?;
    namespaces
        .delete("tenant", &DeleteParams::default())
        .await?;
    assert!(server.objects("", "configmaps").is_empty());
    assert_eq!(api_code(&namespaces.get("tenant").await.unwrap_err()), 404);
    let recreate = cms
        .create(&PostParams::default(), &configmap("b", &[]))
        .await
        .unwrap_err();
    assert_eq!(api_code(&recreate), 404, "the namespace is gone");
    Ok(())
}

fn bound_pod(name: &str, grace: Option<i64>) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": "node-a",
            "terminationGracePeriodSeconds": grace,
            "containers": [{"name": "c", "image": "example"}],
        },
    }))?)
}

#[tokio::test]
async fn deleting_a_bound_pod_starts_its_grace_period_until_a_grace_zero_delete()
-> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let created = pods
        .create(&PostParams::default(), &bound_pod("p", None)?)
        .await?;
    let rv = created
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let mut events = pods.watch(&WatchParams::default(), &rv).await?.boxed();

    let first = pods.delete("p", &DeleteParams::default()).await?;
    let terminating = first.left().expect("the pod stays while it terminates");
    assert_eq!(
        terminating.metadata.deletion_grace_period_seconds,
        Some(30),
        "the default grace"
    );
    let shortened = pods
        .delete(
            "p",
            &DeleteParams {
                grace_period_seconds: Some(3),
                ..DeleteParams::default()
            },
        )
        .await?
        .left()
        .expect("still terminating");
    assert_eq!(shortened.metadata.deletion_grace_period_seconds, Some(3));
    let stamps = (
        terminating.metadata.deletion_timestamp.expect("set"),
        shortened.metadata.deletion_timestamp.expect("set"),
    );
    assert!(
        stamps.1.0 < stamps.0.0,
        "the deadline moves closer: {stamps:?}"
    );
    assert!(pods.get("p").await?.metadata.deletion_timestamp.is_some());

    pods.delete("p", &DeleteParams::default().grace_period(0))
        .await?;
    assert_eq!(
        api_reason(&pods.get("p").await.unwrap_err()),
        "NotFound",
        "grace 0 removes the pod"
    );

    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next()).await?;
        kinds.push(match event.expect("the watch continues")? {
            WatchEvent::Modified(pod) => format!(
                "MODIFIED grace={:?}",
                pod.metadata.deletion_grace_period_seconds
            ),
            WatchEvent::Deleted(_) => "DELETED".to_owned(),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(
        kinds,
        [
            "MODIFIED grace=Some(30)",
            "MODIFIED grace=Some(3)",
            "DELETED"
        ]
    );

    let unbound: Pod = serde_json::from_value(json!({
        "metadata": {"name": "unbound"},
        "spec": {"containers": [{"name": "c", "image": "example"}]},
    }))?;
    pods.create(&PostParams::default(), &unbound).await?;
    pods.delete("unbound", &DeleteParams::default()).await?;
    assert_eq!(
        api_reason(&pods.get("unbound").await.unwrap_err()),
        "NotFound",
        "a pod no node runs is deleted at once"
    );
    Ok(())
}

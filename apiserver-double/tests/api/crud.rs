//! Create, get, list, replace and delete through `kube::Api`, and their errors.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use weir_apiserver_double::ApiServer;

use crate::common::{api_code, api_reason, configmap};

#[tokio::test]
async fn configmaps_round_trip_through_create_get_list_replace_and_delete() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let pp = PostParams::default();

    let created = api
        .create(&pp, &configmap("settings", &[("a", "1")]))
        .await?;
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert!(meta.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    let rv1: u64 = meta
        .resource_version
        .as_deref()
        .unwrap_or_default()
        .parse()?;

    let fetched = api.get("settings").await?;
    assert_eq!(fetched, created);

    let list = api.list(&ListParams::default()).await?;
    assert_eq!(list.items.len(), 1);
    let list_rv: u64 = list
        .metadata
        .resource_version
        .as_deref()
        .unwrap_or_default()
        .parse()?;
    assert!(list_rv >= rv1);

    let mut changed = fetched.clone();
    changed
        .data
        .get_or_insert_default()
        .insert("b".into(), "2".into());
    let replaced = api.replace("settings", &pp, &changed).await?;
    let rv2: u64 = replaced
        .metadata
        .resource_version
        .as_deref()
        .unwrap_or_default()
        .parse()?;
    assert!(rv2 > rv1, "a write takes a new resourceVersion");
    assert_eq!(replaced.metadata.uid, created.metadata.uid);
    assert_eq!(
        replaced
            .data
            .as_ref()
            .and_then(|d| d.get("b"))
            .map(String::as_str),
        Some("2")
    );

    let deleted = api.delete("settings", &DeleteParams::default()).await?;
    assert!(deleted.is_left(), "a removed object is returned");
    let gone = api.get("settings").await.unwrap_err();
    assert_eq!(api_reason(&gone), "NotFound");
    assert_eq!(api_code(&gone), 404);
    Ok(())
}

#[tokio::test]
async fn a_replace_with_a_stale_resource_version_is_a_409_conflict() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let pp = PostParams::default();
    let original = api.create(&pp, &configmap("c", &[("k", "1")])).await?;

    let mut first = original.clone();
    first
        .data
        .get_or_insert_default()
        .insert("k".into(), "2".into());
    api.replace("c", &pp, &first).await?;

    let mut stale = original.clone();
    stale
        .data
        .get_or_insert_default()
        .insert("k".into(), "3".into());
    let err = api.replace("c", &pp, &stale).await.unwrap_err();
    assert_eq!(api_reason(&err), "Conflict");
    assert_eq!(api_code(&err), 409);
    let kept = api.get("c").await?;
    assert_eq!(
        kept.data.and_then(|d| d.get("k").cloned()).as_deref(),
        Some("2")
    );
    Ok(())
}

#[tokio::test]
async fn creating_twice_is_already_exists_and_bad_names_are_invalid() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let pp = PostParams::default();
    api.create(&pp, &configmap("once", &[])).await?;
    let again = api.create(&pp, &configmap("once", &[])).await.unwrap_err();
    assert_eq!(
        (api_code(&again), api_reason(&again).as_str()),
        (409, "AlreadyExists")
    );

    let invalid = api
        .create(&pp, &configmap("Not_A_Name", &[]))
        .await
        .unwrap_err();
    assert_eq!(
        (api_code(&invalid), api_reason(&invalid).as_str()),
        (422, "Invalid")
    );

    let elsewhere: Api<ConfigMap> = Api::namespaced(server.client(), "missing");
    let no_ns = elsewhere
        .create(&pp, &configmap("x", &[]))
        .await
        .unwrap_err();
    assert_eq!(
        (api_code(&no_ns), api_reason(&no_ns).as_str()),
        (404, "NotFound")
    );
    Ok(())
}

#[tokio::test]
async fn generate_name_gets_a_random_suffix() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut cm = ConfigMap::default();
    cm.metadata.generate_name = Some("gen-".into());
    let a = api.create(&PostParams::default(), &cm).await?;
    let b = api.create(&PostParams::default(), &cm).await?;
    let (a, b) = (
        a.metadata.name.unwrap_or_default(),
        b.metadata.name.unwrap_or_default(),
    );
    assert!(a.starts_with("gen-") && a.len() == "gen-".len() + 5, "{a}");
    assert_ne!(a, b);
    Ok(())
}

#[tokio::test]
async fn lists_filter_by_label_and_field_selectors_and_span_namespaces() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let client = server.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("other".into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    namespaces.create(&PostParams::default(), &ns).await?;

    let labelled = |name: &str, labels: &[(&str, &str)]| {
        let mut cm = configmap(name, &[]);
        cm.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        );
        cm
    };
    let default: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let other: Api<ConfigMap> = Api::namespaced(client.clone(), "other");
    let pp = PostParams::default();
    default
        .create(&pp, &labelled("a", &[("app", "weir"), ("tier", "broker")]))
        .await?;
    default
        .create(
            &pp,
            &labelled("b", &[("app", "weir"), ("tier", "controller")]),
        )
        .await?;
    default
        .create(&pp, &labelled("c", &[("app", "other")]))
        .await?;
    other
        .create(&pp, &labelled("d", &[("app", "weir")]))
        .await?;

    let names = |list: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        list.items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect()
    };
    let all: Api<ConfigMap> = Api::all(client.clone());
    assert_eq!(
        names(all.list(&ListParams::default()).await?),
        ["a", "b", "c", "d"]
    );
    assert_eq!(
        names(all.list(&ListParams::default().labels("app=weir")).await?),
        ["a", "b", "d"]
    );
    assert_eq!(
        names(
            default
                .list(&ListParams::default().labels("app==weir,tier!=broker"))
                .await?
        ),
        ["b"]
    );
    assert_eq!(
        names(
            default
                .list(&ListParams::default().labels("tier in (broker, controller)"))
                .await?
        ),
        ["a", "b"]
    );
    assert_eq!(
        names(
            default
                .list(&ListParams::default().labels("tier notin (broker)"))
                .await?
        ),
        ["b", "c"]
    );
    assert_eq!(
        names(default.list(&ListParams::default().labels("!tier")).await?),
        ["c"]
    );
    assert_eq!(
        names(default.list(&ListParams::default().labels("tier")).await?),
        ["a", "b"]
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().fields("metadata.namespace=other"))
                .await?
        ),
        ["d"]
    );
    assert_eq!(
        names(
            default
                .list(&ListParams::default().fields("metadata.name=c"))
                .await?
        ),
        ["c"]
    );
    // kube's pagination parameters are accepted (and the list is complete).
    assert_eq!(
        names(all.list(&ListParams::default().limit(1)).await?).len(),
        4
    );
    let bad = default
        .list(&ListParams::default().labels("tier in broker"))
        .await
        .unwrap_err();
    assert_eq!(api_code(&bad), 400);
    Ok(())
}

#[tokio::test]
async fn generation_counts_spec_changes_and_ignores_metadata() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<StatefulSet> = Api::default_namespaced(server.client());
    let sts: StatefulSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "broker"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "broker"}},
            "serviceName": "broker",
            "template": {"metadata": {"labels": {"app": "broker"}},
                         "spec": {"containers": [{"name": "broker", "image": "weir:1"}]}},
        },
    }))?;
    let pp = PostParams::default();
    let created = api.create(&pp, &sts).await?;
    assert_eq!(created.metadata.generation, Some(1));

    let mut labelled = created.clone();
    labelled.metadata.labels = Some([("x".to_owned(), "y".to_owned())].into());
    let labelled = api.replace("broker", &pp, &labelled).await?;
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );

    let mut scaled = labelled.clone();
    scaled.spec.get_or_insert_default().replicas = Some(3);
    let scaled = api.replace("broker", &pp, &scaled).await?;
    assert_eq!(scaled.metadata.generation, Some(2));
    Ok(())
}

#[tokio::test]
async fn a_body_whose_kind_does_not_match_the_path_is_a_bad_request() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let raw = server
        .client()
        .request_text(http_request(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (api_code(&raw), api_reason(&raw).as_str()),
        (400, "BadRequest")
    );
    Ok(())
}

fn http_request(method: &str, path: &str, body: &str) -> axum::http::Request<Vec<u8>> {
    axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.as_bytes().to_vec())
        .expect("a valid request")
}

#[tokio::test]
async fn metadata_only_requests_get_partial_object_metadata() -> anyhow::Result<()> {
    use futures::StreamExt;
    use kube::core::PartialObjectMeta;
    use kube::runtime::{WatchStreamExt, watcher};

    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &configmap("a", &[("k", "v")]))
        .await?;

    let meta = api.get_metadata("a").await?;
    assert_eq!(
        meta.types.map(|t| t.kind).as_deref(),
        Some("PartialObjectMetadata")
    );
    assert_eq!(meta.metadata.name.as_deref(), Some("a"));
    let list = api.list_metadata(&ListParams::default()).await?;
    assert_eq!(list.types.kind, "PartialObjectMetadataList");
    assert_eq!(list.items.len(), 1);

    let metadata_api: Api<PartialObjectMeta<ConfigMap>> = Api::default_namespaced(server.client());
    let mut watched = watcher::watcher(metadata_api, watcher::Config::default())
        .applied_objects()
        .boxed();
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), watched.next()).await?;
    let first = first.expect("the watcher continues")?;
    assert_eq!(first.metadata.name.as_deref(), Some("a"));
    assert_eq!(
        first.types.map(|t| t.kind).as_deref(),
        Some("PartialObjectMetadata")
    );
    Ok(())
}

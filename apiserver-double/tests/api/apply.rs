//! Server-side apply, JSON merge patch, JSON patch and strategic merge patch.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use weir_apiserver_double::ApiServer;

use crate::common::{api_code, api_reason, configmap, install_widgets, widget};

fn applied_cm(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": data})
}

fn data(cm: &ConfigMap) -> Vec<(String, String)> {
    cm.data.clone().unwrap_or_default().into_iter().collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn apply_creates_updates_and_removes_fields_the_manager_stops_applying() -> anyhow::Result<()>
{
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let pp = PatchParams::apply("weir-operator").force();

    let created = api
        .patch(
            "applied",
            &pp,
            &Patch::Apply(applied_cm(json!({"a": "1", "b": "2"}))),
        )
        .await?;
    assert_eq!(data(&created), pairs(&[("a", "1"), ("b", "2")]));
    assert!(created.metadata.uid.is_some());

    let updated = api
        .patch(
            "applied",
            &pp,
            &Patch::Apply(applied_cm(json!({"a": "10", "b": "2"}))),
        )
        .await?;
    assert_eq!(data(&updated), pairs(&[("a", "10"), ("b", "2")]));

    let pruned = api
        .patch(
            "applied",
            &pp,
            &Patch::Apply(applied_cm(json!({"a": "10"}))),
        )
        .await?;
    assert_eq!(
        data(&pruned),
        pairs(&[("a", "10")]),
        "b was applied before and is omitted now"
    );

    let managed = pruned.metadata.managed_fields.unwrap_or_default();
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].manager.as_deref(), Some("weir-operator"));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));
    let fields = serde_json::to_value(&managed[0].fields_v1)?;
    assert_eq!(fields, json!({"f:data": {"f:a": {}}}));
    Ok(())
}

#[tokio::test]
async fn an_identical_apply_writes_nothing() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let pp = PatchParams::apply("weir-operator").force();
    let first = api
        .patch("applied", &pp, &Patch::Apply(applied_cm(json!({"a": "1"}))))
        .await?;
    let rv = server.resource_version();
    let second = api
        .patch("applied", &pp, &Patch::Apply(applied_cm(json!({"a": "1"}))))
        .await?;
    assert_eq!(
        server.resource_version(),
        rv,
        "no new resourceVersion for a no-op apply"
    );
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    Ok(())
}

#[tokio::test]
async fn fields_written_by_others_survive_and_conflict_without_force() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let operator = PatchParams::apply("weir-operator");
    api.patch(
        "applied",
        &operator,
        &Patch::Apply(applied_cm(json!({"a": "1", "b": "2"}))),
    )
    .await?;
    // Someone else edits b with a merge patch: they own it now.
    api.patch(
        "applied",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"b": "edited", "c": "3"}})),
    )
    .await?;
    let after = api
        .patch(
            "applied",
            &operator,
            &Patch::Apply(applied_cm(json!({"a": "1"}))),
        )
        .await?;
    assert_eq!(
        data(&after),
        pairs(&[("a", "1"), ("b", "edited"), ("c", "3")]),
        "omitting a field another manager owns leaves it"
    );

    let conflict = api
        .patch(
            "applied",
            &operator,
            &Patch::Apply(applied_cm(json!({"a": "1", "c": "mine"}))),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (api_code(&conflict), api_reason(&conflict).as_str()),
        (409, "Conflict")
    );
    let forced = api
        .patch(
            "applied",
            &operator.clone().force(),
            &Patch::Apply(applied_cm(json!({"a": "1", "c": "mine"}))),
        )
        .await?;
    assert_eq!(
        forced.data.unwrap_or_default().get("c").map(String::as_str),
        Some("mine")
    );
    Ok(())
}

#[tokio::test]
async fn apply_merges_containers_by_name_and_drops_an_omitted_one() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<StatefulSet> = Api::default_namespaced(server.client());
    let sts = |containers: Value| {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "broker"},
            "spec": {"selector": {"matchLabels": {"app": "b"}}, "serviceName": "b",
                     "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": containers}}},
        })
    };
    let pp = PatchParams::apply("weir-operator").force();
    api.patch(
        "broker",
        &pp,
        &Patch::Apply(sts(
            json!([{"name": "broker", "image": "weir:1"}, {"name": "sidecar", "image": "s:1"}]),
        )),
    )
    .await?;
    let after = api
        .patch(
            "broker",
            &pp,
            &Patch::Apply(sts(json!([{"name": "broker", "image": "weir:2"}]))),
        )
        .await?;
    let containers = after
        .spec
        .unwrap_or_default()
        .template
        .spec
        .unwrap_or_default()
        .containers;
    let names: Vec<(String, Option<String>)> =
        containers.into_iter().map(|c| (c.name, c.image)).collect();
    assert_eq!(names, [("broker".to_owned(), Some("weir:2".to_owned()))]);
    Ok(())
}

#[tokio::test]
async fn apply_without_a_field_manager_is_a_bad_request() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let request = axum::http::Request::builder()
        .method("PATCH")
        .uri("/api/v1/namespaces/default/configmaps/x")
        .header("content-type", "application/apply-patch+yaml")
        .body(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n".to_vec())?;
    let err = server.client().request_text(request).await.unwrap_err();
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (400, "BadRequest")
    );

    let with_manager = axum::http::Request::builder()
        .method("PATCH")
        .uri("/api/v1/namespaces/default/configmaps/x?fieldManager=yaml")
        .header("content-type", "application/apply-patch+yaml")
        .body(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  k: v\n".to_vec())?;
    server.client().request_text(with_manager).await?;
    let stored = server.object("", "configmaps", Some("default"), "x");
    assert_eq!(
        stored.map(|o| o["data"]["k"].clone()),
        Some(json!("v")),
        "a YAML body is applied"
    );
    Ok(())
}

#[tokio::test]
async fn merge_and_json_patches_change_the_object() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(
        &PostParams::default(),
        &configmap("p", &[("a", "1"), ("b", "2")]),
    )
    .await?;
    let pp = PatchParams::default();

    let merged = api
        .patch(
            "p",
            &pp,
            &Patch::Merge(json!({"data": {"a": null, "c": "3"}})),
        )
        .await?;
    assert_eq!(data(&merged), pairs(&[("b", "2"), ("c", "3")]));

    // kube's Patch::Json holds its own json-patch version's type; inference names it.
    let ops = Patch::Json::<()>(serde_json::from_value(json!([
        {"op": "test", "path": "/data/b", "value": "2"},
        {"op": "replace", "path": "/data/b", "value": "20"},
        {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}},
    ]))?);
    let patched = api.patch("p", &pp, &ops).await?;
    assert_eq!(data(&patched), pairs(&[("b", "20"), ("c", "3")]));
    assert_eq!(
        patched
            .metadata
            .labels
            .unwrap_or_default()
            .get("x")
            .map(String::as_str),
        Some("y")
    );

    let failing = Patch::Json::<()>(serde_json::from_value(json!([
        {"op": "test", "path": "/data/b", "value": "nope"},
    ]))?);
    let err = api.patch("p", &pp, &failing).await.unwrap_err();
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (422, "Invalid")
    );

    let stale = api
        .patch(
            "p",
            &pp,
            &Patch::Merge(json!({"metadata": {"resourceVersion": "1"}, "data": {"d": "4"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        api_reason(&stale),
        "Conflict",
        "a resourceVersion in a patch is a precondition"
    );
    Ok(())
}

#[tokio::test]
async fn strategic_merge_patches_merge_keyed_lists_but_not_on_custom_resources()
-> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<StatefulSet> = Api::default_namespaced(server.client());
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "s"},
        "spec": {"selector": {}, "serviceName": "s", "template": {"spec": {"containers": [
            {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}},
    }))?;
    api.create(&PostParams::default(), &sts).await?;
    let patched = api
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}})),
        )
        .await?;
    let images: Vec<Option<String>> = patched
        .spec
        .unwrap_or_default()
        .template
        .spec
        .unwrap_or_default()
        .containers
        .into_iter()
        .map(|c| c.image)
        .collect();
    assert_eq!(images, [Some("a:1".to_owned()), Some("b:2".to_owned())]);

    let widgets = install_widgets(&server.client()).await?;
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await?;
    let err = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 415);
    Ok(())
}

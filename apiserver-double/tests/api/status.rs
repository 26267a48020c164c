//! The status subresource of a custom resource registered by creating its CRD.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;
use weir_apiserver_double::ApiServer;

use crate::common::{WidgetStatus, api_code, install_widgets, widget};

#[tokio::test]
async fn a_created_crd_is_established_and_serves_its_resource() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let widgets = install_widgets(&server.client()).await?;
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    let established = await_condition(
        crds.clone(),
        "widgets.example.weir.dev",
        conditions::is_crd_established(),
    );
    tokio::time::timeout(Duration::from_secs(5), established).await??;

    let created = widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await?;
    assert_eq!(
        created.spec.color.as_deref(),
        Some("blue"),
        "the schema default is applied"
    );
    assert_eq!(server.objects("example.weir.dev", "widgets").len(), 1);

    crds.delete("widgets.example.weir.dev", &DeleteParams::default())
        .await?;
    let err = widgets.get("w").await.unwrap_err();
    assert_eq!(api_code(&err), 404, "the resource is no longer served");
    assert!(server.objects("example.weir.dev", "widgets").is_empty());
    Ok(())
}

#[tokio::test]
async fn status_writes_change_only_status_and_main_writes_keep_it() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let widgets = install_widgets(&server.client()).await?;
    let mut w = widget("w", 1);
    w.status = Some(WidgetStatus { ready: true });
    let created = widgets.create(&PostParams::default(), &w).await?;
    assert_eq!(
        created.status, None,
        "create drops the status of a resource with the subresource"
    );

    let patched = widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 99}, "status": {"ready": true}})),
        )
        .await?;
    assert_eq!(patched.status, Some(WidgetStatus { ready: true }));
    assert_eq!(patched.spec.size, 1, "a status patch leaves spec alone");
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "status changes keep the generation"
    );

    let mut replaced = patched.clone();
    replaced.status = Some(WidgetStatus { ready: false });
    replaced.spec.size = 50;
    let replaced = widgets
        .replace_status("w", &PostParams::default(), &replaced)
        .await?;
    assert_eq!(replaced.status, Some(WidgetStatus { ready: false }));
    assert_eq!(replaced.spec.size, 1);

    let mut spec_change = replaced.clone();
    spec_change.spec.size = 2;
    spec_change.status = Some(WidgetStatus { ready: true });
    let changed = widgets
        .replace("w", &PostParams::default(), &spec_change)
        .await?;
    assert_eq!(changed.spec.size, 2);
    assert_eq!(
        changed.status,
        Some(WidgetStatus { ready: false }),
        "a main write keeps status"
    );
    assert_eq!(
        changed.metadata.generation,
        Some(2),
        "a spec change bumps the generation"
    );
    Ok(())
}

#[tokio::test]
async fn server_side_apply_to_status_changes_only_status() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let widgets = install_widgets(&server.client()).await?;
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await?;
    let applied = widgets
        .patch_status(
            "w",
            &PatchParams::apply("status-writer").force(),
            &Patch::Apply(json!({
                "apiVersion": "example.weir.dev/v1",
                "kind": "Widget",
                "metadata": {"name": "w"},
                "spec": {"size": 7},
                "status": {"ready": true},
            })),
        )
        .await?;
    assert_eq!(applied.status, Some(WidgetStatus { ready: true }));
    assert_eq!(applied.spec.size, 1);
    let managers: Vec<(String, Option<String>)> = applied
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.manager.unwrap_or_default(), m.subresource))
        .collect();
    assert!(
        managers.contains(&("status-writer".to_owned(), Some("status".to_owned()))),
        "{managers:?}"
    );
    Ok(())
}

#[tokio::test]
async fn replacing_a_custom_resource_needs_a_resource_version() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let widgets = install_widgets(&server.client()).await?;
    let created = widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await?;
    let mut unconditional = created.clone();
    unconditional.metadata.resource_version = None;
    unconditional.spec.size = 2;
    let err = widgets
        .replace("w", &PostParams::default(), &unconditional)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 422);
    let mut conditional = created;
    conditional.spec.size = 2;
    assert_eq!(
        widgets
            .replace("w", &PostParams::default(), &conditional)
            .await?
            .spec
            .size,
        2
    );
    Ok(())
}

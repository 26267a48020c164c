//! A kube-runtime `Controller` against the double: reconcile on change, owned objects,
//! server-side apply of children and status, events, garbage collection, and no
//! reconcile loop once everything is applied.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use weir_apiserver_double::{ApiServer, Verb};

use crate::common::{Widget, install_widgets, widget};

struct Context {
    client: Client,
    recorder: Recorder,
}

async fn reconcile(w: Arc<Widget>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    let ns = w.namespace().unwrap_or_default();
    let name = w.name_any();
    let owner = w
        .controller_owner_ref(&())
        .expect("a stored widget has a uid");
    let config = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": format!("{name}-config"), "ownerReferences": [owner]},
        "data": {"size": w.spec.size.to_string()},
    });
    let apply = PatchParams::apply("widget-controller").force();
    Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
        .patch(&format!("{name}-config"), &apply, &Patch::Apply(config))
        .await?;
    let status =
        json!({"apiVersion": "example.weir.dev/v1", "kind": "Widget", "status": {"ready": true}});
    Api::<Widget>::namespaced(ctx.client.clone(), &ns)
        .patch_status(&name, &apply, &Patch::Apply(status))
        .await?;
    let event = Event {
        type_: EventType::Normal,
        reason: "Reconciled".into(),
        note: Some(format!("size {}", w.spec.size)),
        action: "Reconcile".into(),
        secondary: None,
    };
    ctx.recorder.publish(&event, &w.object_ref(&())).await?;
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Widget>, _: &kube::Error, _: Arc<Context>) -> Action {
    Action::requeue(Duration::from_millis(50))
}

/// Polls `check` until it holds (five seconds at most).
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..250 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

fn size_in(server: &ApiServer) -> Option<Value> {
    server
        .object("", "configmaps", Some("default"), "w-config")
        .map(|cm| cm["data"]["size"].clone())
}

#[tokio::test]
async fn a_controller_reconciles_children_status_and_events_then_settles() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let client = server.client();
    let widgets = install_widgets(&client).await?;
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), "widget-controller".into()),
    });
    let controller = Controller::new(widgets.clone(), watcher::Config::default())
        .owns(
            Api::<ConfigMap>::default_namespaced(client.clone()),
            watcher::Config::default(),
        )
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    let running = tokio::spawn(controller);

    widgets
        .create(&PostParams::default(), &widget("w", 2))
        .await?;
    eventually("the child ConfigMap is applied", || {
        size_in(&server) == Some(json!("2"))
    })
    .await;
    eventually("the status is ready", || {
        server
            .object("example.weir.dev", "widgets", Some("default"), "w")
            .is_some_and(|w| w["status"]["ready"] == true)
    })
    .await;
    eventually("an event is recorded", || {
        server
            .objects("events.k8s.io", "events")
            .iter()
            .any(|e| e["regarding"]["name"] == "w" && e["reason"] == "Reconciled")
    })
    .await;

    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 5}})),
        )
        .await?;
    eventually("the child follows the spec", || {
        size_in(&server) == Some(json!("5"))
    })
    .await;

    // Settled: no-op applies write nothing, so nothing triggers another reconcile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writes = |s: &ApiServer| {
        s.requests()
            .iter()
            .filter(|r| matches!(r.verb, Some(Verb::Create | Verb::Update | Verb::Patch)))
            .count()
    };
    let settled = writes(&server);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        writes(&server),
        settled,
        "the controller keeps writing: a reconcile loop"
    );

    widgets.delete("w", &DeleteParams::default()).await?;
    assert_eq!(size_in(&server), None, "the owned ConfigMap is collected");
    running.abort();
    Ok(())
}

//! Watches: kube's `watcher`, raw watch streams, expiry (410) and recovery, selectors.

use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use serde_json::json;
use weir_apiserver_double::{ApiServer, Options};

use crate::common::configmap;

const PATIENCE: Duration = Duration::from_secs(5);

async fn next<S: Stream + Unpin>(stream: &mut S) -> S::Item {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("a watch event within five seconds")
        .expect("the stream continues")
}

fn name(cm: &ConfigMap) -> &str {
    cm.metadata.name.as_deref().unwrap_or_default()
}

/// The next watcher event that carries an object, as ("apply"|"delete"|"init", name).
async fn next_object<S>(stream: &mut S) -> (&'static str, String)
where
    S: Stream<Item = watcher::Result<Event<ConfigMap>>> + Unpin,
{
    loop {
        match next(stream).await.expect("no watcher error") {
            Event::Apply(cm) => return ("apply", name(&cm).to_owned()),
            Event::Delete(cm) => return ("delete", name(&cm).to_owned()),
            Event::InitApply(cm) => return ("init", name(&cm).to_owned()),
            Event::Init | Event::InitDone => {}
        }
    }
}

#[tokio::test]
async fn the_kube_watcher_sees_adds_modifications_and_deletes() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &configmap("before", &[]))
        .await?;
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    assert_eq!(
        next_object(&mut events).await,
        ("init", "before".to_owned())
    );

    api.create(&PostParams::default(), &configmap("a", &[("k", "1")]))
        .await?;
    assert_eq!(next_object(&mut events).await, ("apply", "a".to_owned()));
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await?;
    assert_eq!(next_object(&mut events).await, ("apply", "a".to_owned()));
    api.delete("a", &DeleteParams::default()).await?;
    assert_eq!(next_object(&mut events).await, ("delete", "a".to_owned()));
    Ok(())
}

#[tokio::test]
async fn applied_objects_streams_every_version_of_an_object() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut objects = watcher(api.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    api.create(&PostParams::default(), &configmap("a", &[("k", "1")]))
        .await?;
    let first = next(&mut objects).await?;
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await?;
    let second = next(&mut objects).await?;
    assert_eq!(
        first.data.unwrap_or_default().get("k").map(String::as_str),
        Some("1")
    );
    assert_eq!(
        second.data.unwrap_or_default().get("k").map(String::as_str),
        Some("2")
    );
    Ok(())
}

#[tokio::test]
async fn a_watch_from_a_compacted_version_gets_410_expired() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let created = api
        .create(&PostParams::default(), &configmap("a", &[]))
        .await?;
    let old_rv = created.metadata.resource_version.unwrap_or_default();
    server.compact();
    let mut stream = api.watch(&WatchParams::default(), &old_rv).await?.boxed();
    match next(&mut stream).await? {
        WatchEvent::Error(status) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected a 410 error event, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn the_kube_watcher_relists_after_its_version_expires() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    api.create(&PostParams::default(), &configmap("a", &[]))
        .await?;
    assert_eq!(next_object(&mut events).await.1, "a", "listed or watched");

    // Ends the watch; the watcher resumes from its last version, which is now too old.
    server.compact();
    let mut saw_expired = false;
    let mut relisted = false;
    while !relisted {
        match next(&mut events).await {
            Err(watcher::Error::WatchError(status)) if status.code == 410 => saw_expired = true,
            Err(other) => panic!("unexpected watcher error {other}"),
            Ok(Event::InitApply(cm)) if name(&cm) == "a" => relisted = true,
            Ok(_) => {}
        }
    }
    assert!(saw_expired, "the watcher was told its version expired");
    api.create(&PostParams::default(), &configmap("b", &[]))
        .await?;
    assert_eq!(next_object(&mut events).await, ("apply", "b".to_owned()));
    Ok(())
}

#[tokio::test]
async fn a_raw_watch_replays_history_after_its_version() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let a = api
        .create(&PostParams::default(), &configmap("a", &[]))
        .await?;
    api.create(&PostParams::default(), &configmap("b", &[]))
        .await?;
    api.delete("a", &DeleteParams::default()).await?;

    let from = a.metadata.resource_version.unwrap_or_default();
    let mut stream = api.watch(&WatchParams::default(), &from).await?.boxed();
    let mut seen = Vec::new();
    for _ in 0..2 {
        match next(&mut stream).await? {
            WatchEvent::Added(cm) => seen.push(format!("ADDED {}", name(&cm))),
            WatchEvent::Deleted(cm) => seen.push(format!("DELETED {}", name(&cm))),
            other => seen.push(format!("{other:?}")),
        }
    }
    assert_eq!(seen, ["ADDED b", "DELETED a"]);

    let mut from_zero = api.watch(&WatchParams::default(), "0").await?.boxed();
    match next(&mut from_zero).await? {
        WatchEvent::Added(cm) => {
            assert_eq!(name(&cm), "b", "version 0 starts with the current objects")
        }
        other => panic!("expected ADDED b, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn a_selector_watch_sees_objects_enter_and_leave_the_selection() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let rv = server.resource_version().to_string();
    let mut stream = api
        .watch(&WatchParams::default().labels("app=weir"), &rv)
        .await?
        .boxed();
    api.create(&PostParams::default(), &configmap("c", &[]))
        .await?;
    let label = |value: &str| Patch::Merge(json!({"metadata": {"labels": {"app": value}}}));
    api.patch("c", &PatchParams::default(), &label("weir"))
        .await?;
    api.patch("c", &PatchParams::default(), &label("other"))
        .await?;
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(match next(&mut stream).await? {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Bookmark(_) => "BOOKMARK",
            WatchEvent::Error(_) => "ERROR",
        });
    }
    assert_eq!(seen, ["ADDED", "DELETED"]);
    Ok(())
}

#[tokio::test]
async fn a_streaming_list_watcher_gets_initial_events_and_their_end() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &configmap("a", &[]))
        .await?;
    let mut events = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut initial = Vec::new();
    loop {
        match next(&mut events).await? {
            Event::InitApply(cm) => initial.push(name(&cm).to_owned()),
            Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, ["a"]);
    api.create(&PostParams::default(), &configmap("b", &[]))
        .await?;
    assert_eq!(next_object(&mut events).await, ("apply", "b".to_owned()));
    Ok(())
}

#[tokio::test]
async fn stopping_the_server_ends_watch_streams() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let stream = api.watch(&WatchParams::default(), "0").await?;
    server.stop().await;
    let rest: Vec<_> = tokio::time::timeout(PATIENCE, stream.collect::<Vec<_>>()).await?;
    assert!(
        rest.iter().all(|e| e.is_ok()),
        "the stream ends cleanly: {rest:?}"
    );
    Ok(())
}

#[tokio::test]
async fn watching_one_object_by_name_sees_only_it() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let rv = server.resource_version().to_string();
    let mut stream = api
        .watch(&WatchParams::default().fields("metadata.name=wanted"), &rv)
        .await?
        .map_ok(|e| match e {
            WatchEvent::Added(cm) => name(&cm).to_owned(),
            other => format!("{other:?}"),
        })
        .boxed();
    api.create(&PostParams::default(), &configmap("other", &[]))
        .await?;
    api.create(&PostParams::default(), &configmap("wanted", &[]))
        .await?;
    assert_eq!(next(&mut stream).await?, "wanted");
    Ok(())
}

#[tokio::test]
async fn a_short_history_expires_old_versions() -> anyhow::Result<()> {
    let server = ApiServer::start_with(Options::default().history_limit(2)).await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let first = api
        .create(&PostParams::default(), &configmap("a", &[]))
        .await?;
    for name in ["b", "c", "d"] {
        api.create(&PostParams::default(), &configmap(name, &[]))
            .await?;
    }
    let from = first.metadata.resource_version.unwrap_or_default();
    let mut stream = api.watch(&WatchParams::default(), &from).await?.boxed();
    assert!(
        matches!(next(&mut stream).await?, WatchEvent::Error(status) if status.code == 410),
        "three events happened since, two are kept"
    );
    Ok(())
}

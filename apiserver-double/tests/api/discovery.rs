//! Discovery as `kube::discovery` runs it, legacy and aggregated.

use kube::discovery::{Discovery, Scope};
use weir_apiserver_double::{ApiServer, ResourceType, Scope as DoubleScope};

use crate::common::install_widgets;

#[tokio::test]
async fn discovery_finds_statefulsets_and_a_registered_crd() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    install_widgets(&server.client()).await?;
    let discovery = Discovery::new(server.client()).run().await?;

    let apps = discovery
        .groups()
        .find(|g| g.name() == "apps")
        .expect("the apps group is served");
    let (sts, caps) = apps
        .recommended_kind("StatefulSet")
        .expect("apps serves StatefulSet");
    assert_eq!(
        (sts.version.as_str(), sts.plural.as_str()),
        ("v1", "statefulsets")
    );
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(
        caps.subresources
            .iter()
            .any(|(sub, _)| sub.plural == "status")
    );

    let widgets = discovery
        .groups()
        .find(|g| g.name() == "example.weir.dev")
        .and_then(|g| g.recommended_kind("Widget"))
        .expect("the CRD's kind is discovered");
    assert_eq!(widgets.0.plural, "widgets");

    let core = discovery
        .groups()
        .find(|g| g.name().is_empty())
        .expect("the core group");
    let (ns, ns_caps) = core
        .recommended_kind("Namespace")
        .expect("core serves Namespace");
    assert_eq!(
        (ns.plural.as_str(), ns_caps.scope.clone()),
        ("namespaces", Scope::Cluster)
    );
    Ok(())
}

#[tokio::test]
async fn aggregated_discovery_finds_the_same_resources() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    server.register(
        ResourceType::new(
            "example.weir.dev",
            "v1alpha1",
            "Gadget",
            "gadgets",
            DoubleScope::Cluster,
        )
        .with_short_names(&["gd"]),
    );
    let discovery = Discovery::new(server.client()).run_aggregated().await?;
    let find = |group: &str, kind: &str| {
        discovery
            .groups()
            .find(|g| g.name() == group)
            .and_then(|g| g.recommended_kind(kind))
    };
    assert!(find("apps", "StatefulSet").is_some());
    assert!(find("coordination.k8s.io", "Lease").is_some());
    assert!(find("", "ConfigMap").is_some());
    let (gadgets, caps) =
        find("example.weir.dev", "Gadget").expect("a resource registered from Rust");
    assert_eq!(
        (gadgets.plural.as_str(), caps.scope.clone()),
        ("gadgets", Scope::Cluster)
    );
    Ok(())
}

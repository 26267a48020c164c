//! Shared set-up for the operator tests: the API server double with Weir's CRDs
//! installed (from the same generator as `crds/`), a namespace, and a reconciler context.
#![allow(dead_code)]

pub(crate) mod brokers;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use weir_apiserver_double::ApiServer;
use weir_controller::grpc::ClusterRouter;
use weir_operator::cluster::ClusterDefaults;
use weir_operator::context::Context;

pub(crate) const NAMESPACE: &str = "kafka";
/// Where the operator runs (its Lease).
pub(crate) const OPERATOR_NAMESPACE: &str = "weir-system";

/// The double with both CRDs and the `kafka` and `weir-system` namespaces.
pub(crate) async fn api_server() -> ApiServer {
    let server = ApiServer::start().await;
    let client = server.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in weir_operator::crdgen::crds() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let namespaces: Api<Namespace> = Api::all(client);
    for name in [NAMESPACE, OPERATOR_NAMESPACE] {
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
    }
    server
}

pub(crate) fn context(client: Client) -> Arc<Context> {
    let defaults = ClusterDefaults {
        broker_image: "weir-broker:test".to_owned(),
        controller_address: "weir-operator-controller.weir-system.svc:9093".to_owned(),
    };
    Arc::new(Context::new(
        client,
        defaults,
        ClusterRouter::default(),
        "operator-0",
    ))
}

/// Polls `check` every 50 ms until it returns `Some`, for up to `within`.
pub(crate) async fn eventually<T, F, Fut>(within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` every 100 ms until it returns `Some`; fails naming `what` after `within`.
pub(crate) async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

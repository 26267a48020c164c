//! Fault injection and the request log.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use weir_apiserver_double::{ApiServer, Fault, Verb};

use crate::common::{api_code, api_reason, configmap};

#[tokio::test]
async fn an_injected_fault_fails_the_next_matching_request_only() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    // Not 429 or 503: kube retries those.
    server.fail_next(Fault::new(Verb::Create, "", "configmaps").status(409, "AlreadyExists"));

    let err = api
        .create(&PostParams::default(), &configmap("a", &[]))
        .await
        .unwrap_err();
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (409, "AlreadyExists")
    );
    assert!(
        server.objects("", "configmaps").is_empty(),
        "the failed request changed nothing"
    );
    api.create(&PostParams::default(), &configmap("a", &[]))
        .await?;

    server.fail_next(Fault::new(Verb::Get, "", "configmaps").named("b").always());
    let other = api.get("a").await;
    assert!(other.is_ok(), "only requests for b fail");
    assert_eq!(api_code(&api.get("b").await.unwrap_err()), 500);
    assert_eq!(api_code(&api.get("b").await.unwrap_err()), 500);
    server.clear_faults();
    assert_eq!(api_code(&api.get("b").await.unwrap_err()), 404);
    Ok(())
}

#[tokio::test]
async fn the_request_log_records_verbs_and_statuses() -> anyhow::Result<()> {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    server.clear_requests();
    api.create(&PostParams::default(), &configmap("a", &[]))
        .await?;
    let _ = api.get("missing").await;
    let log: Vec<(Option<Verb>, u16)> = server
        .requests()
        .iter()
        .map(|r| (r.verb, r.status))
        .collect();
    assert_eq!(log, [(Some(Verb::Create), 201), (Some(Verb::Get), 404)]);
    assert_eq!(
        server.requests()[0].path,
        "/api/v1/namespaces/default/configmaps"
    );
    Ok(())
}

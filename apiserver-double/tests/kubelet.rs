//! The kubelet simulator against the API server double, running a small Python HTTP
//! server (`tests/kubelet/sim_server.py`) as the "image".

#[path = "kubelet/common.rs"]
mod common;

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, DeleteParams};
use serde_json::json;

use common::{Sim, eventually, http_get, pod_spec, ready, restart_count};

#[tokio::test]
async fn a_pod_runs_and_its_readiness_follows_the_probe() -> anyhow::Result<()> {
    let sim = Sim::start("ready").await?;
    sim.create_server("solo", "", json!({})).await?;
    let pod = sim.wait_ready("solo").await;
    let spec = pod.spec.clone().unwrap_or_default();
    assert_eq!(spec.node_name.as_deref(), Some("kubelet-sim"));
    let status = pod.status.clone().unwrap_or_default();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.pod_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
    assert!(status.start_time.is_some());
    let container = &status.container_statuses.unwrap_or_default()[0];
    assert!(container.ready && container.started == Some(true));
    assert_eq!(container.restart_count, 0);
    assert!(
        container
            .state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .is_some()
    );
    let nodes: Api<Node> = Api::all(sim.client.clone());
    assert!(nodes.get_opt("kubelet-sim").await?.is_some());

    let addr = sim
        .kubelet
        .pod_address("default", "solo", 8080)
        .expect("a host port");
    assert_eq!(http_get(addr, "/whoami").await?, (200, "solo".to_owned()));

    let marker = sim
        .kubelet
        .volume_dir("default", "data-solo")
        .join("unready");
    std::fs::write(&marker, "")?;
    sim.wait_pod("solo", "Ready=False after the probe fails", |p| !ready(p))
        .await;
    std::fs::remove_file(&marker)?;
    sim.wait_ready("solo").await;
    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn mounts_ports_and_dns_names_are_rewritten_for_the_process() -> anyhow::Result<()> {
    let sim = Sim::start("rewrite").await?;
    sim.create_server("a", "b.sims.default.svc.cluster.local:8080", json!({}))
        .await?;
    sim.create_server("b", "a.sims.default.svc:8080", json!({}))
        .await?;
    sim.wait_ready("a").await;
    sim.wait_ready("b").await;
    let a = sim
        .kubelet
        .pod_address("default", "a", 8080)
        .expect("a's port");
    let b = sim
        .kubelet
        .pod_address("default", "b", 8080)
        .expect("b's port");
    assert_ne!(a, b);
    assert_eq!(sim.kubelet.pod_address("default", "a", 9999), None);
    assert_eq!(
        sim.kubelet.resolve(
            "default",
            "PLAINTEXT://b.sims.default.svc.cluster.local:8080,x:1"
        ),
        format!("PLAINTEXT://{b},x:1")
    );

    let (code, body) = http_get(a, "/config").await?;
    assert_eq!(code, 200, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body)?;
    let config: serde_json::Value =
        serde_json::from_str(seen["config"].as_str().unwrap_or_default())?;
    let data_dir = sim.kubelet.volume_dir("default", "data-a");
    assert_eq!(
        config,
        json!({"listen": format!("{a}"), "peer": format!("{b}"), "data": data_dir.to_string_lossy()}),
        "the file as the process reads it"
    );
    let argv: Vec<String> = serde_json::from_value(seen["argv"].clone())?;
    assert!(
        argv.last().is_some_and(
            |p| p.ends_with("/volumes/config/config.json") && !p.starts_with("/etc/sim")
        ),
        "the config path in args is the host path: {argv:?}"
    );
    let env: serde_json::Map<String, serde_json::Value> =
        serde_json::from_value(seen["env"].clone())?;
    let keys: BTreeSet<&str> = env.keys().map(String::as_str).collect();
    let allowed = BTreeSet::from([
        "HOSTNAME",
        "HOME",
        "PATH",
        "KUBECONFIG",
        "POD_NAME",
        "DATA_DIR",
        "PEER_URL",
        "SIM_EXTRA",
        // Python's C-locale coercion (PEP 538) may add it.
        "LC_CTYPE",
    ]);
    assert!(
        keys.is_subset(&allowed),
        "nothing of the test process leaks: {keys:?}"
    );
    assert_eq!(env["POD_NAME"], "a");
    assert_eq!(env["HOSTNAME"], "a");
    assert_eq!(env["SIM_EXTRA"], "1");
    assert_eq!(
        env["DATA_DIR"],
        json!(format!("{}/a", data_dir.display())),
        "$(POD_NAME) and the mount"
    );
    assert_eq!(env["PEER_URL"], json!(format!("http://{b}/")));
    assert!(
        env["KUBECONFIG"]
            .as_str()
            .is_some_and(|p| std::path::Path::new(p).exists())
    );

    assert_eq!(
        http_get(a, "/peer").await?,
        (200, "b".to_owned()),
        "a reaches b by DNS name"
    );
    assert_eq!(http_get(b, "/peer").await?, (200, "a".to_owned()));
    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_service_proxies_round_robin_to_ready_pods_only() -> anyhow::Result<()> {
    let sim = Sim::start("service").await?;
    sim.create_service("web", json!({"app": "web"}), "http")
        .await?;
    sim.create_service("nobody", json!({"app": "none"}), "http")
        .await?;
    for name in ["w-0", "w-1", "w-2"] {
        sim.create_claim(&format!("data-{name}")).await?;
    }
    let unready_dir = sim.kubelet.volume_dir("default", "data-w-2");
    eventually("the claim's directory", || async {
        unready_dir.exists().then_some(())
    })
    .await;
    std::fs::write(unready_dir.join("unready"), "")?;
    for name in ["w-0", "w-1", "w-2"] {
        sim.create_server(name, "", json!({"app": "web"})).await?;
    }
    sim.wait_ready("w-0").await;
    sim.wait_ready("w-1").await;
    sim.wait_pod("w-2", "w-2 running but not ready", |p| {
        common::phase(p) == "Running" && !ready(p)
    })
    .await;

    let web = sim
        .kubelet
        .service_address("default", "web", 80)
        .expect("a proxy");
    assert_eq!(
        sim.kubelet.resolve("default", "web.default.svc:80"),
        web.to_string()
    );
    assert_eq!(sim.kubelet.resolve("default", "web:80"), web.to_string());
    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(http_get(web, "/whoami").await?.1);
    }
    assert_eq!(answers, ["w-0", "w-1", "w-0", "w-1", "w-0", "w-1"]);

    std::fs::remove_file(unready_dir.join("unready"))?;
    sim.wait_ready("w-2").await;
    let mut answers = BTreeSet::new();
    for _ in 0..3 {
        answers.insert(http_get(web, "/whoami").await?.1);
    }
    assert_eq!(answers.len(), 3, "w-2 joined when ready: {answers:?}");

    let nobody = sim
        .kubelet
        .service_address("default", "nobody", 80)
        .expect("a proxy even without pods");
    assert!(
        http_get(nobody, "/whoami").await.is_err(),
        "no endpoint: the connection closes"
    );
    Api::<Service>::default_namespaced(sim.client.clone())
        .delete("nobody", &DeleteParams::default())
        .await?;
    eventually("the proxy of a deleted Service closed", || async {
        let closed = sim
            .kubelet
            .service_address("default", "nobody", 80)
            .is_none()
            && tokio::net::TcpStream::connect(nobody).await.is_err();
        closed.then_some(())
    })
    .await;
    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn graceful_deletion_sends_sigterm_then_removes_the_pod() -> anyhow::Result<()> {
    let sim = Sim::start("graceful").await?;
    sim.create_server("g", "", json!({})).await?;
    sim.wait_ready("g").await;
    sim.pods.delete("g", &DeleteParams::default()).await?;
    sim.wait_gone("g").await;
    let data = sim.kubelet.volume_dir("default", "data-g");
    assert!(data.join("sigterm").exists(), "the process saw SIGTERM");
    assert!(data.exists(), "the claim outlives the pod");
    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_process_ignoring_sigterm_is_killed_after_the_grace_period() -> anyhow::Result<()> {
    let sim = Sim::start("stubborn").await?;
    let mut pod = pod_spec("s", "", json!({}));
    pod["spec"]["terminationGracePeriodSeconds"] = json!(2);
    pod["spec"]["containers"][0]["env"]
        .as_array_mut()
        .expect("env")
        .push(json!({"name": "IGNORE_SIGTERM", "value": "1"}));
    sim.create_server_from("s", pod).await?;
    sim.wait_ready("s").await;
    let data = sim.kubelet.volume_dir("default", "data-s");
    let pid = std::fs::read_to_string(data.join("starts"))?
        .trim()
        .to_owned();

    sim.pods.delete("s", &DeleteParams::default()).await?;
    eventually("the SIGTERM marker", || async {
        data.join("sigterm").exists().then_some(())
    })
    .await;
    let terminating = sim.pods.get("s").await?;
    assert!(
        terminating.metadata.deletion_timestamp.is_some(),
        "still within its grace"
    );
    assert!(!ready(&terminating), "Ready=False at once");
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "still running"
    );
    sim.wait_gone("s").await;
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "SIGKILLed"
    );
    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_killed_container_restarts_with_its_port_and_data() -> anyhow::Result<()> {
    let sim = Sim::start("kill").await?;
    sim.create_server("k", "", json!({})).await?;
    sim.wait_ready("k").await;
    let addr = sim.kubelet.pod_address("default", "k", 8080);
    let data = sim.kubelet.volume_dir("default", "data-k");
    std::fs::write(data.join("kept"), "yes")?;

    assert!(sim.kubelet.kill("default", "k"));
    let pod = sim
        .wait_pod("k", "restartCount 1 and ready", |p| {
            restart_count(p) == 1 && ready(p)
        })
        .await;
    let container = &pod
        .status
        .unwrap_or_default()
        .container_statuses
        .unwrap_or_default()[0];
    let last = container
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("lastState");
    assert_eq!(last.exit_code, 137, "SIGKILL");
    assert_eq!(sim.kubelet.pod_address("default", "k", 8080), addr);
    assert_eq!(std::fs::read_to_string(data.join("kept"))?, "yes");
    assert_eq!(
        std::fs::read_to_string(data.join("starts"))?
            .lines()
            .count(),
        2
    );
    assert_eq!(http_get(addr.expect("port"), "/whoami").await?.1, "k");
    assert!(!sim.kubelet.kill("default", "nonexistent"));
    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_recreated_pod_keeps_its_host_port_and_data() -> anyhow::Result<()> {
    let sim = Sim::start("recreate").await?;
    sim.create_server("r", "", json!({})).await?;
    sim.wait_ready("r").await;
    let addr = sim.kubelet.pod_address("default", "r", 8080);
    sim.pods
        .delete("r", &DeleteParams::default().grace_period(0))
        .await?;
    sim.wait_gone("r").await;
    let data = sim.kubelet.volume_dir("default", "data-r");
    assert!(
        !data.join("sigterm").exists(),
        "a pod removed at once is SIGKILLed"
    );

    sim.create_pod(pod_spec("r", "", json!({}))).await?;
    sim.wait_ready("r").await;
    assert_eq!(sim.kubelet.pod_address("default", "r", 8080), addr);
    assert_eq!(
        std::fs::read_to_string(data.join("starts"))?
            .lines()
            .count(),
        2
    );
    let log = std::fs::read_to_string(sim.kubelet.log_path("default", "r"))?;
    assert_eq!(
        log.matches("listening on").count(),
        2,
        "both runs logged: {log}"
    );
    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_pod_waits_for_its_claim_whose_deletion_removes_the_directory() -> anyhow::Result<()> {
    let sim = Sim::start("claims").await?;
    sim.create_configmap("c", "").await?;
    sim.create_pod(pod_spec("c", "", json!({}))).await?;
    let waiting = sim
        .wait_pod("c", "waiting for the claim", |p| {
            common::waiting_reason(p) == "ContainerCreating"
        })
        .await;
    assert_eq!(common::phase(&waiting), "Pending");
    sim.create_claim("data-c").await?;
    sim.wait_ready("c").await;

    sim.pods.delete("c", &DeleteParams::default()).await?;
    sim.wait_gone("c").await;
    let dir = sim.kubelet.volume_dir("default", "data-c");
    assert!(dir.exists());
    let claims: Api<PersistentVolumeClaim> = Api::default_namespaced(sim.client.clone());
    claims.delete("data-c", &DeleteParams::default()).await?;
    eventually("the claim's directory removed", || async {
        (!dir.exists()).then_some(())
    })
    .await;
    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_pod_of_an_unknown_image_stays_pending() -> anyhow::Result<()> {
    let sim = Sim::start("unknown").await?;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "nginx"},
        "spec": {"containers": [{"name": "web", "image": "docker.io/library/nginx:1.27"}]},
    }))?;
    sim.pods.create(&Default::default(), &pod).await?;
    let pod = sim
        .wait_pod("nginx", "PodScheduled=False", |p| {
            common::condition(p, "PodScheduled").is_some_and(|c| c.status == "False")
        })
        .await;
    let condition = common::condition(&pod, "PodScheduled").expect("the condition");
    assert!(
        condition
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("docker.io/library/nginx:1.27")
    );
    assert_eq!(common::phase(&pod), "Pending");
    assert_eq!(pod.spec.and_then(|s| s.node_name), None);
    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn restart_policies_and_liveness_decide_what_happens_after_an_exit() -> anyhow::Result<()> {
    let sim = Sim::start("policies").await?;
    let mut never = pod_spec("never", "", json!({}));
    never["spec"]["restartPolicy"] = json!("Never");
    sim.create_server_from("never", never).await?;
    let mut unhealthy = pod_spec("sick", "", json!({}));
    unhealthy["spec"]["terminationGracePeriodSeconds"] = json!(1);
    unhealthy["spec"]["containers"][0]["livenessProbe"] = json!({"httpGet": {"path": "/missing", "port": 8080}, "failureThreshold": 2, "periodSeconds": 1});
    sim.create_server_from("sick", unhealthy).await?;

    sim.wait_ready("never").await;
    assert!(sim.kubelet.kill("default", "never"));
    let failed = sim
        .wait_pod("never", "phase Failed", |p| common::phase(p) == "Failed")
        .await;
    assert_eq!(restart_count(&failed), 0);
    assert!(
        !sim.kubelet.kill("default", "never"),
        "nothing runs any more"
    );

    sim.wait_pod("sick", "restarted by its liveness probe", |p| {
        restart_count(p) >= 1
    })
    .await;
    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn stopping_the_kubelet_sigterms_its_processes_and_leaves_the_pods() -> anyhow::Result<()> {
    let sim = Sim::start("stop").await?;
    sim.create_server("st", "", json!({})).await?;
    sim.wait_ready("st").await;
    let data = sim.kubelet.volume_dir("default", "data-st");
    let pid = std::fs::read_to_string(data.join("starts"))?
        .trim()
        .to_owned();
    let Sim {
        server,
        kubelet,
        pods,
        root,
        ..
    } = sim;
    kubelet.stop().await;
    assert!(data.join("sigterm").exists(), "the process saw SIGTERM");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "and is gone"
    );
    let pod = pods.get("st").await?;
    assert!(
        pod.metadata.deletion_timestamp.is_none(),
        "the pod object stays"
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}

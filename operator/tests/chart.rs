//! The Helm chart `charts/weir`: `helm lint --strict`, then renders with the default values,
//! with `rbac.scope=namespace` and with the ServiceMonitor, each validated against the
//! Kubernetes 1.33 schemas (the `kubernetes-validate` package) and checked for what the
//! operator and the brokers rely on: the replicas, the container's args/env contract, the
//! RBAC scope switch and its least-privilege rules, the non-root security context, and the
//! controller Service that selects only the elected leader.
//!
//! Needs `helm` (`$WEIR_HELM`, else `<repo>/.tools/bin/helm`) and `kubernetes-validate`
//! (pip); `scripts/install-tools.sh` installs both, and `scripts/test.sh` runs it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

const KUBERNETES_VERSION: &str = "1.33.0";
const RELEASE: &str = "weir";
const NAMESPACE: &str = "weir-system";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the operator crate is in the workspace")
        .to_path_buf()
}

fn chart() -> PathBuf {
    repo().join("charts/weir")
}

fn helm() -> PathBuf {
    let helm = std::env::var_os("WEIR_HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".tools/bin/helm"));
    assert!(
        helm.is_file(),
        "helm not found at {} (set WEIR_HELM, or run scripts/install-tools.sh, which \
         scripts/test.sh runs)",
        helm.display()
    );
    helm
}

/// `helm template` with `--set` values; the status and the output (stdout, stderr).
fn helm_template(set: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(helm());
    cmd.arg("template").arg(RELEASE).arg(chart()).args([
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBERNETES_VERSION,
    ]);
    for s in set {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().expect("run helm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The objects the chart renders with these values.
fn render(set: &[&str]) -> Vec<Value> {
    let (ok, stdout, stderr) = helm_template(set);
    assert!(ok, "helm template {set:?} failed:\n{stderr}");
    serde_yaml::Deserializer::from_str(&stdout)
        .map(|doc| Value::deserialize(doc).expect("helm renders YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn kind(v: &Value) -> &str {
    v["kind"].as_str().expect("every object has a kind")
}

fn name(v: &Value) -> &str {
    v["metadata"]["name"]
        .as_str()
        .expect("every object has a name")
}

fn find<'a>(objects: &'a [Value], kind_: &str, name_: &str) -> &'a Value {
    objects
        .iter()
        .find(|v| kind(v) == kind_ && name(v) == name_)
        .unwrap_or_else(|| panic!("no {kind_} {name_} among {:?}", kinds_and_names(objects)))
}

fn kinds_and_names(objects: &[Value]) -> BTreeSet<(String, String)> {
    objects
        .iter()
        .map(|v| (kind(v).to_owned(), name(v).to_owned()))
        .collect()
}

/// Validates every object but ServiceMonitors (whose CRD schema kubernetes-validate does not
/// know; [`service_monitor_scrapes_the_metrics_service`] checks its shape) against the
/// Kubernetes schemas, strictly (unknown fields are errors), and checks that each one was
/// validated rather than skipped for want of a schema.
fn validate(objects: &[Value]) {
    let known: Vec<&Value> = objects
        .iter()
        .filter(|v| kind(v) != "ServiceMonitor")
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    let text: Vec<String> = known
        .iter()
        .map(|v| serde_yaml::to_string(v).unwrap())
        .collect();
    std::fs::write(&file, text.join("---\n")).unwrap();
    let out = Command::new("python3")
        .args([
            "-m",
            "kubernetes_validate",
            "--strict",
            "-k",
            KUBERNETES_VERSION,
        ])
        .arg(&file)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named kubernetes_validate"),
        "kubernetes-validate is missing: run scripts/install-tools.sh (pip install \
         kubernetes-validate)"
    );
    assert!(
        out.status.success(),
        "the rendered objects are not valid Kubernetes {KUBERNETES_VERSION}:\n{stdout}{stderr}"
    );
    let passed = stdout.matches(" passed for resource ").count();
    assert_eq!(
        passed,
        known.len(),
        "every object is validated against a schema:\n{stdout}{stderr}"
    );
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap().to_owned(),
                        v.as_str().expect("labels are strings").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn is_subset(small: &BTreeMap<String, String>, big: &BTreeMap<String, String>) -> bool {
    small.iter().all(|(k, v)| big.get(k) == Some(v))
}

fn operator_container(objects: &[Value]) -> &Value {
    let deployment = find(objects, "Deployment", RELEASE);
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap();
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

/// The container's environment: name → literal value, or `fieldRef:<path>`.
fn env(objects: &[Value]) -> BTreeMap<String, String> {
    operator_container(objects)["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            let value = match e["value"].as_str() {
                Some(v) => v.to_owned(),
                None => format!(
                    "fieldRef:{}",
                    e["valueFrom"]["fieldRef"]["fieldPath"].as_str().unwrap()
                ),
            };
            (e["name"].as_str().unwrap().to_owned(), value)
        })
        .collect()
}

/// RBAC rules as (API group, resource, resource names) → verbs; rejects wildcards.
fn rules(role: &Value) -> BTreeMap<(String, String, Vec<String>), BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for rule in role["rules"].as_sequence().unwrap() {
        let names = strings(&rule["resourceNames"]);
        let verbs: BTreeSet<String> = strings(&rule["verbs"]).into_iter().collect();
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                assert!(
                    group != "*" && resource != "*" && !verbs.contains("*"),
                    "no wildcards in {}: {rule:?}",
                    name(role)
                );
                out.entry((group.clone(), resource, names.clone()))
                    .or_insert_with(BTreeSet::new)
                    .extend(verbs.iter().cloned());
            }
        }
    }
    out
}

/// What the operator needs, and nothing more.
fn expected_operator_rules() -> BTreeMap<(String, String, Vec<String>), BTreeSet<String>> {
    const MANAGE: &[&str] = &[
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    let table: &[(&str, &[&str], &[&str])] = &[
        ("weir.dev", &["clusters", "topics"], MANAGE),
        (
            "weir.dev",
            &["clusters/status", "topics/status"],
            &["get", "update", "patch"],
        ),
        (
            "weir.dev",
            &["clusters/finalizers", "topics/finalizers"],
            &["update"],
        ),
        ("apps", &["statefulsets"], MANAGE),
        ("", &["services", "configmaps", "serviceaccounts"], MANAGE),
        ("policy", &["poddisruptionbudgets"], MANAGE),
        ("", &["pods"], &["get", "list", "watch", "patch"]),
        (
            "",
            &["persistentvolumeclaims"],
            &["get", "list", "watch", "delete"],
        ),
        ("", &["events"], &["create", "patch"]),
        ("events.k8s.io", &["events"], &["create", "patch"]),
    ];
    let mut out = BTreeMap::new();
    for (group, resources, verbs) in table {
        for resource in *resources {
            out.insert(
                (group.to_string(), resource.to_string(), Vec::new()),
                verbs.iter().map(|v| v.to_string()).collect(),
            );
        }
    }
    out
}

fn check_lease_role(objects: &[Value]) {
    let role = find(objects, "Role", "weir-leader-election");
    assert_eq!(role["metadata"]["namespace"].as_str(), Some(NAMESPACE));
    let lease = |names: &[&str]| {
        (
            "coordination.k8s.io".to_owned(),
            "leases".to_owned(),
            names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        )
    };
    let set = |verbs: &[&str]| verbs.iter().map(|v| v.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        rules(role),
        BTreeMap::from([
            (lease(&[]), set(&["create"])),
            (lease(&[RELEASE]), set(&["get", "watch", "update", "patch"])),
        ]),
        "leader election may create a Lease and read and renew only its own"
    );
    let binding = find(objects, "RoleBinding", "weir-leader-election");
    assert_eq!(
        binding["roleRef"]["name"].as_str(),
        Some("weir-leader-election")
    );
    check_subject(binding);
}

fn check_subject(binding: &Value) {
    let subjects = binding["subjects"].as_sequence().unwrap();
    assert_eq!(subjects.len(), 1, "{binding:?}");
    assert_eq!(subjects[0]["kind"].as_str(), Some("ServiceAccount"));
    assert_eq!(subjects[0]["name"].as_str(), Some(RELEASE));
    assert_eq!(subjects[0]["namespace"].as_str(), Some(NAMESPACE));
}

#[test]
fn chart_passes_helm_lint_strict() {
    let out = Command::new(helm())
        .args(["lint", "--strict"])
        .arg(chart())
        .output()
        .expect("run helm");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "helm lint --strict:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("0 chart(s) failed"), "{stdout}");
}

#[test]
fn default_values_render_valid_objects() {
    let objects = render(&[]);
    validate(&objects);
    let expected: BTreeSet<(String, String)> = [
        ("ServiceAccount", "weir"),
        ("ClusterRole", "weir"),
        ("ClusterRoleBinding", "weir"),
        ("Role", "weir-leader-election"),
        ("RoleBinding", "weir-leader-election"),
        ("Deployment", "weir"),
        ("PodDisruptionBudget", "weir"),
        ("Service", "weir-controller"),
        ("Service", "weir-metrics"),
    ]
    .iter()
    .map(|(k, n)| (k.to_string(), n.to_string()))
    .collect();
    assert_eq!(kinds_and_names(&objects), expected);
    for v in &objects {
        let labels = string_map(&v["metadata"]["labels"]);
        for key in [
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
            "app.kubernetes.io/managed-by",
            "helm.sh/chart",
        ] {
            assert!(
                labels.contains_key(key),
                "{} {} lacks {key}",
                kind(v),
                name(v)
            );
        }
    }
}

#[test]
fn operator_runs_two_non_root_replicas_with_the_env_contract() {
    let objects = render(&[]);
    let deployment = find(&objects, "Deployment", RELEASE);
    assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(2));
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"].as_str(), Some(RELEASE));

    let container = operator_container(&objects);
    let chart_yaml: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart().join("Chart.yaml")).unwrap())
            .unwrap();
    let app_version = chart_yaml["appVersion"].as_str().unwrap();
    assert_eq!(
        container["image"].as_str(),
        Some(format!("weir-operator:{app_version}").as_str()),
        "the tag defaults to the chart's appVersion"
    );
    assert_eq!(strings(&container["args"]), ["run"]);
    let expected: BTreeMap<String, String> = [
        ("POD_NAME", "fieldRef:metadata.name"),
        ("POD_NAMESPACE", "fieldRef:metadata.namespace"),
        ("WEIR_WATCH_NAMESPACE", ""),
        ("WEIR_HTTP_LISTENER", "0.0.0.0:8080"),
        ("WEIR_CONTROLLER_LISTENER", "0.0.0.0:9093"),
        (
            "WEIR_CONTROLLER_ADDRESS",
            "weir-controller.weir-system.svc:9093",
        ),
        ("WEIR_LEASE_NAME", "weir"),
        ("WEIR_BROKER_IMAGE", "weir-broker:0.1.0"),
        ("RUST_LOG", "info"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(env(&objects), expected);
    let debug = render(&["logLevel=info\\,weir_operator=debug"]);
    assert_eq!(env(&debug)["RUST_LOG"], "info,weir_operator=debug");

    let ports: BTreeMap<String, u64> = container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        BTreeMap::from([("grpc".to_owned(), 9093), ("http".to_owned(), 8080)])
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(get["port"].as_str(), Some("http"), "{probe}");
    }

    let pod_security = &pod["securityContext"];
    let security = &container["securityContext"];
    for context in [pod_security, security] {
        assert_eq!(context["runAsNonRoot"].as_bool(), Some(true));
        assert_eq!(context["runAsUser"].as_u64(), Some(65532));
        assert_eq!(
            context["seccompProfile"]["type"].as_str(),
            Some("RuntimeDefault")
        );
    }
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(strings(&security["capabilities"]["drop"]), ["ALL"]);
    assert!(security["capabilities"]["add"].is_null());
    assert!(container["resources"]["requests"]["memory"].is_string());

    // The two replicas go to different nodes when they can, and a drain leaves one.
    let pod_labels = string_map(&deployment["spec"]["template"]["metadata"]["labels"]);
    let spread = pod["topologySpreadConstraints"].as_sequence().unwrap();
    assert_eq!(spread.len(), 1);
    assert_eq!(
        spread[0]["topologyKey"].as_str(),
        Some("kubernetes.io/hostname")
    );
    assert_eq!(
        spread[0]["whenUnsatisfiable"].as_str(),
        Some("ScheduleAnyway")
    );
    assert!(is_subset(
        &string_map(&spread[0]["labelSelector"]["matchLabels"]),
        &pod_labels
    ));
    let pdb = find(&objects, "PodDisruptionBudget", RELEASE);
    assert_eq!(pdb["spec"]["minAvailable"].as_u64(), Some(1));
    let pdb_selector = string_map(&pdb["spec"]["selector"]["matchLabels"]);
    assert!(!pdb_selector.is_empty() && is_subset(&pdb_selector, &pod_labels));

    let single = render(&["replicaCount=1"]);
    assert_eq!(
        find(&single, "Deployment", RELEASE)["spec"]["replicas"].as_u64(),
        Some(1)
    );
    assert!(
        !single.iter().any(|v| kind(v) == "PodDisruptionBudget"),
        "a budget of one replica with minAvailable 1 would block every drain"
    );
}

#[test]
fn controller_service_selects_only_the_elected_leader() {
    let objects = render(&[]);
    let deployment = find(&objects, "Deployment", RELEASE);
    let pod_labels = string_map(&deployment["spec"]["template"]["metadata"]["labels"]);
    let deployment_selector = string_map(&deployment["spec"]["selector"]["matchLabels"]);
    assert!(
        !deployment_selector.contains_key("weir.dev/controller-leader"),
        "the leader label must not change which Deployment owns the pod"
    );

    let controller = find(&objects, "Service", "weir-controller");
    let selector = string_map(&controller["spec"]["selector"]);
    assert_eq!(
        selector
            .get("weir.dev/controller-leader")
            .map(String::as_str),
        Some("true")
    );
    let mut leader_labels = pod_labels.clone();
    leader_labels.insert("weir.dev/controller-leader".into(), "true".into());
    assert!(is_subset(&selector, &leader_labels), "{selector:?}");
    assert!(
        !is_subset(&selector, &pod_labels),
        "a pod without the leader label is not selected"
    );
    let port = &controller["spec"]["ports"][0];
    assert_eq!(port["port"].as_u64(), Some(9093));
    assert_eq!(port["targetPort"].as_str(), Some("grpc"));

    let metrics = find(&objects, "Service", "weir-metrics");
    let selector = string_map(&metrics["spec"]["selector"]);
    assert!(!selector.is_empty() && is_subset(&selector, &pod_labels));
    let port = &metrics["spec"]["ports"][0];
    assert_eq!(port["port"].as_u64(), Some(8080));
    assert_eq!(port["targetPort"].as_str(), Some("http"));
}

#[test]
fn cluster_scope_binds_a_least_privilege_cluster_role() {
    let objects = render(&["rbac.scope=cluster"]);
    let role = find(&objects, "ClusterRole", RELEASE);
    assert_eq!(rules(role), expected_operator_rules());
    let binding = find(&objects, "ClusterRoleBinding", RELEASE);
    assert_eq!(binding["roleRef"]["kind"].as_str(), Some("ClusterRole"));
    assert_eq!(binding["roleRef"]["name"].as_str(), Some(RELEASE));
    check_subject(binding);
    check_lease_role(&objects);
    assert!(
        !objects
            .iter()
            .any(|v| kind(v) == "Role" && name(v) == RELEASE),
        "the operator's rules are bound once"
    );
    assert_eq!(env(&objects)["WEIR_WATCH_NAMESPACE"], "");
}

#[test]
fn namespace_scope_binds_a_role_and_watches_only_the_release_namespace() {
    let objects = render(&["rbac.scope=namespace"]);
    validate(&objects);
    for v in &objects {
        assert_eq!(
            v["metadata"]["namespace"].as_str(),
            Some(NAMESPACE),
            "{} {} must be namespaced in the release namespace",
            kind(v),
            name(v)
        );
    }
    assert!(
        !objects
            .iter()
            .any(|v| kind(v) == "ClusterRole" || kind(v) == "ClusterRoleBinding")
    );
    let role = find(&objects, "Role", RELEASE);
    assert_eq!(rules(role), expected_operator_rules());
    let binding = find(&objects, "RoleBinding", RELEASE);
    assert_eq!(binding["roleRef"]["kind"].as_str(), Some("Role"));
    assert_eq!(binding["roleRef"]["name"].as_str(), Some(RELEASE));
    check_subject(binding);
    check_lease_role(&objects);
    assert_eq!(env(&objects)["WEIR_WATCH_NAMESPACE"], NAMESPACE);
}

#[test]
fn an_unknown_rbac_scope_is_refused() {
    let (ok, _, stderr) = helm_template(&["rbac.scope=everywhere"]);
    assert!(!ok, "rbac.scope=everywhere must not render");
    assert!(
        stderr.contains("rbac") && stderr.contains("scope"),
        "{stderr}"
    );
}

#[test]
fn service_monitor_scrapes_the_metrics_service() {
    assert!(
        !render(&[]).iter().any(|v| kind(v) == "ServiceMonitor"),
        "off by default: it needs the Prometheus Operator's CRDs"
    );
    let objects = render(&[
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.labels.release=prometheus",
    ]);
    validate(&objects);
    let monitor = find(&objects, "ServiceMonitor", RELEASE);
    assert_eq!(
        monitor["apiVersion"].as_str(),
        Some("monitoring.coreos.com/v1")
    );
    assert_eq!(monitor["metadata"]["namespace"].as_str(), Some(NAMESPACE));
    assert_eq!(
        monitor["metadata"]["labels"]["release"].as_str(),
        Some("prometheus")
    );
    let spec = &monitor["spec"];
    let known: BTreeSet<&str> = spec
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(
        known,
        BTreeSet::from(["endpoints", "namespaceSelector", "selector"])
    );
    assert_eq!(
        strings(&spec["namespaceSelector"]["matchNames"]),
        [NAMESPACE]
    );

    let selector = string_map(&spec["selector"]["matchLabels"]);
    let metrics = find(&objects, "Service", "weir-metrics");
    let controller = find(&objects, "Service", "weir-controller");
    assert!(is_subset(
        &selector,
        &string_map(&metrics["metadata"]["labels"])
    ));
    assert!(
        !is_subset(&selector, &string_map(&controller["metadata"]["labels"])),
        "only the metrics Service is scraped"
    );

    let endpoints = spec["endpoints"].as_sequence().unwrap();
    assert_eq!(endpoints.len(), 1);
    let endpoint = &endpoints[0];
    assert_eq!(
        endpoint["port"].as_str(),
        metrics["spec"]["ports"][0]["name"].as_str(),
        "the endpoint names the metrics Service's port"
    );
    assert_eq!(endpoint["path"].as_str(), Some("/metrics"));
    assert_eq!(endpoint["scheme"].as_str(), Some("http"));
    for duration in ["interval", "scrapeTimeout"] {
        let value = endpoint[duration].as_str().unwrap_or_default();
        assert!(
            value.ends_with('s') && value[..value.len() - 1].parse::<u32>().is_ok(),
            "{duration} is a Prometheus duration: {value:?}"
        );
    }
}

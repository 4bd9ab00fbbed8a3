//! `deploy/kubernetes/` against the service itself, without a cluster: the manifests parse, the
//! ConfigMap is a valid configuration, the probes name paths the router answers as they should,
//! on the port the ConfigMap's `BIND_ADDR` listens on, the grace period outlasts the drain, and
//! the Service, the PodDisruptionBudget and the Secret reference line up with the Deployment.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;
use voice_agent::config::{Settings, VARIABLES};

use crate::helpers::{Backend, spawn_app_with};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// Every document of every `*.yaml` file, by kind.
fn manifests() -> HashMap<String, Vec<Value>> {
    let mut by_kind: HashMap<String, Vec<Value>> = HashMap::new();
    for entry in std::fs::read_dir(dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            let kind = value["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{path:?}: no kind"));
            by_kind.entry(kind.to_string()).or_default().push(value);
        }
    }
    by_kind
}

use serde::Deserialize;

fn one<'a>(m: &'a HashMap<String, Vec<Value>>, kind: &str) -> &'a Value {
    let docs = &m[kind];
    assert_eq!(docs.len(), 1, "one {kind}");
    &docs[0]
}

fn str_map(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => panic!("{k:?}: {other:?} is not a string (quote it)"),
            };
            (k.as_str().unwrap().to_string(), v)
        })
        .collect()
}

#[tokio::test]
async fn kubernetes_manifests_match_the_service() {
    let m = manifests();
    let kustomization = one(&m, "Kustomization");
    let listed: Vec<&str> = kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for file in &listed {
        assert!(dir().join(file).exists(), "kustomization lists {file}");
    }

    // The ConfigMap is a configuration the service accepts, with only variables it reads.
    let config = str_map(&one(&m, "ConfigMap")["data"]);
    for key in config.keys() {
        assert!(
            VARIABLES.contains(&key.as_str()),
            "ConfigMap: {key} is not read"
        );
    }
    let secret = one(&m, "Secret");
    for key in str_map(&secret["stringData"]).keys() {
        assert!(
            VARIABLES.contains(&key.as_str()),
            "Secret: {key} is not read"
        );
    }
    let vars: HashMap<String, String> = config.clone().into_iter().collect();
    let settings = Settings::from_map(&vars).expect("the ConfigMap is a valid configuration");
    let metrics_port = settings.metrics_addr.expect("METRICS_ADDR").port();

    let deployment = one(&m, "Deployment");
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() >= 2);
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&deployment["spec"]["selector"]["matchLabels"], labels);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let ports: HashMap<&str, u64> = container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ports["http"], settings.bind_addr.port() as u64, "BIND_ADDR");
    assert_eq!(ports["metrics"], metrics_port as u64, "METRICS_ADDR");
    assert_eq!(
        pod["containers"][0]["envFrom"][1]["secretRef"]["name"],
        secret["metadata"]["name"]
    );
    assert_eq!(
        container["envFrom"][0]["configMapRef"]["name"],
        one(&m, "ConfigMap")["metadata"]["name"]
    );

    // The grace period outlasts preStop, the requests' drain (SHUTDOWN_DRAIN_MS, as the
    // ConfigMap sets it) and the background tasks' (live calls saying goodbye).
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    let pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap_or(0);
    let drain = settings.http.drain + voice_agent::startup::DRAIN;
    assert!(
        grace > pre_stop + drain.as_secs(),
        "terminationGracePeriodSeconds {grace} <= preStop {pre_stop} s + drain {drain:?}"
    );

    // Probes: on the http port, paths the service answers 200 with a healthy database, and
    // liveness on the one path that never asks the database.
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await.unwrap();
    let probe = |name: &str| {
        let p = &container[name]["httpGet"];
        let port = p["port"].as_str().unwrap();
        assert!(ports.contains_key(port), "{name} on unknown port {port}");
        assert_eq!(port, "http", "{name}");
        p["path"].as_str().unwrap().to_string()
    };
    let liveness = probe("livenessProbe");
    assert_eq!(liveness, "/livez");
    assert_eq!(probe("startupProbe"), "/livez");
    assert_eq!(probe("readinessProbe"), "/readyz");
    for path in [probe("livenessProbe"), probe("readinessProbe")] {
        assert_eq!(app.get(&path).await.status(), 200, "{path}");
    }

    // The Service and the budget select the Deployment's pods, on its named ports.
    let service = one(&m, "Service");
    assert_eq!(&service["spec"]["selector"], labels);
    for p in service["spec"]["ports"].as_sequence().unwrap() {
        let target = p["targetPort"].as_str().unwrap();
        assert!(ports.contains_key(target), "Service targets {target}");
    }
    let pdb = one(&m, "PodDisruptionBudget");
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);
    let unavailable = pdb["spec"]["maxUnavailable"].as_u64().unwrap();
    assert!(unavailable < deployment["spec"]["replicas"].as_u64().unwrap());
}

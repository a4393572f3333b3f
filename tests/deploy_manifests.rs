//! The manifests in `deploy/`, parsed into k8s-openapi types: the invariants a typo would
//! break without any YAML error (selectors that match nothing, a token mounted where the agent
//! does not read it, a namespace Pod Security would refuse the agent in), and kustomize
//! rendering them.

use gpu_fault_injector::backend::kube_agents::{TOKEN_KEY, TOKEN_SECRET};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use serde::Deserialize;
use std::path::Path;

fn docs(file: &str) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(Path::new("deploy").join(file)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<T: serde::de::DeserializeOwned>(file: &str, kind: &str) -> Vec<T> {
    docs(file)
        .into_iter()
        .filter(|d| d["kind"] == kind)
        .map(|d| serde_yaml::from_value(d).unwrap_or_else(|e| panic!("{file}: {kind}: {e}")))
        .collect()
}

#[test]
fn the_agent_daemonset_selects_its_pods_and_reads_the_mounted_token() {
    let ds: Vec<DaemonSet> = of_kind("agent-daemonset.yaml", "DaemonSet");
    assert_eq!(ds.len(), 1);
    let spec = &ds[0].spec;
    let labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    for (k, v) in spec.selector.match_labels.as_ref().unwrap() {
        assert_eq!(
            labels.get(k),
            Some(v),
            "selector {k}={v} must match the pod labels"
        );
    }
    // The kube backend's default agent selector finds these pods.
    assert_eq!(
        labels.get("app").map(String::as_str),
        Some("gpu-fault-injector-kernel")
    );
    let pod = spec.template.spec.as_ref().unwrap();
    let vol = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.secret.is_some())
        .expect("a Secret volume for the token");
    assert_eq!(
        vol.secret.as_ref().unwrap().secret_name.as_deref(),
        Some(TOKEN_SECRET)
    );
    let c = &pod.containers[0];
    let mount = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == vol.name)
        .expect("the token volume is mounted");
    let token_arg = format!("--token-file={}/{TOKEN_KEY}", mount.mount_path);
    assert!(
        c.args.as_ref().unwrap().contains(&token_arg),
        "the agent must read {token_arg}: {:?}",
        c.args
    );
    let port = c.ports.as_ref().unwrap()[0].container_port;
    assert_eq!(port, 8083, "the kube backend's default --agent-port");
    assert_eq!(
        pod.node_selector
            .as_ref()
            .unwrap()
            .get("nvidia.com/gpu.present")
            .map(String::as_str),
        Some("true"),
        "agents run where nodes() looks by default"
    );
}

#[test]
fn the_agents_namespace_admits_privileged_pods() {
    let ns: Vec<Namespace> = of_kind("agent-daemonset.yaml", "Namespace");
    let labels = ns[0].metadata.labels.clone().unwrap();
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("privileged")
    );
}

#[test]
fn the_operator_roles_parse_and_are_namespaced_where_they_grant_injection() {
    let cr: Vec<ClusterRole> = of_kind("rbac.yaml", "ClusterRole");
    assert_eq!(cr[0].metadata.name.as_deref(), Some("gfi-operator"));
    let roles: Vec<Role> = of_kind("rbac.yaml", "Role");
    // Calling an agent (pods/proxy) injects: only in the agents' namespace, never cluster-wide.
    for rule in cr[0].rules.as_ref().unwrap() {
        let resources = rule.resources.clone().unwrap_or_default();
        assert!(
            !resources
                .iter()
                .any(|r| r == "pods/proxy" || r == "secrets"),
            "the ClusterRole must not grant {resources:?}"
        );
    }
    let agents = roles
        .iter()
        .find(|r| r.metadata.namespace.as_deref() == Some("fault-injection-system"))
        .unwrap();
    assert!(agents.rules.as_ref().unwrap().iter().any(|r| {
        r.resources
            .as_ref()
            .unwrap()
            .contains(&"pods/proxy".to_string())
    }));
}

#[test]
fn kustomize_renders_every_manifest() {
    let Ok(out) = std::process::Command::new("kubectl")
        .args(["kustomize", "deploy/"])
        .output()
    else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("kubectl is not on this machine, and CI must render deploy/");
        }
        eprintln!("SKIP kustomize_renders_every_manifest: kubectl is not installed");
        return;
    };
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for kind in [
        "Namespace",
        "DaemonSet",
        "ClusterRole",
        "Role",
        "ClusterRoleBinding",
        "RoleBinding",
    ] {
        assert!(
            text.contains(&format!("kind: {kind}\n")),
            "{kind} missing from the render"
        );
    }
}

#[test]
fn the_simulator_reads_the_test_clusters_nvsentinel_values_and_a_node_recovers() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gfi"))
        .args([
            "run",
            "--seed",
            "7",
            "--nvsentinel-values",
            "deploy/nvsentinel-values.yaml",
            "examples/02_xid79_recovery.lua",
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("✓ check recovered within 15 minutes"),
        "{text}"
    );
}

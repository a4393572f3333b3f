//! The manifests in `deploy/` (`deploy/base/`, and the HTTPS overlay `deploy/tls/`), parsed into k8s-openapi types: the invariants a typo would
//! break without any YAML error (selectors that match nothing, a token mounted where the agent
//! does not read it, a namespace Pod Security would refuse the agent in), and kustomize
//! rendering them.

use gpu_fault_injector::backend::kube_agents::{TOKEN_KEY, TOKEN_SECRET};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use serde::Deserialize;
use std::path::Path;

fn docs(file: &str) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(Path::new("deploy/base").join(file)).unwrap();
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

/// `kubectl kustomize DIR`, or `None` (after saying so) where kubectl is missing outside CI.
fn kustomize(dir: &str, test: &str) -> Option<String> {
    let Ok(out) = std::process::Command::new("kubectl")
        .args(["kustomize", dir])
        .output()
    else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("kubectl is not on this machine, and CI must render {dir}");
        }
        eprintln!("SKIP {test}: kubectl is not installed");
        return None;
    };
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn kustomize_renders_every_manifest() {
    let Some(text) = kustomize("deploy/", "kustomize_renders_every_manifest") else {
        return;
    };
    for kind in [
        "Namespace",
        "DaemonSet",
        "Deployment",
        "Service",
        "ServiceAccount",
        "NetworkPolicy",
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

#[test]
fn the_controller_serves_the_seeds_service_and_reads_its_mounted_tokens() {
    let d: Vec<Deployment> = of_kind("controller.yaml", "Deployment");
    assert_eq!(d.len(), 1);
    let spec = &d[0].spec;
    assert_eq!(
        spec.replicas,
        Some(1),
        "one controller: see the file's comment"
    );
    assert_eq!(
        spec.strategy.as_ref().and_then(|s| s.type_.as_deref()),
        Some("Recreate"),
        "never two controllers at once, even during a rollout"
    );
    let labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    for (k, v) in spec.selector.match_labels.as_ref().unwrap() {
        assert_eq!(labels.get(k), Some(v));
    }
    // The Service keeps the seed's name and port, and reaches these pods.
    let svc: Vec<Service> = of_kind("controller.yaml", "Service");
    assert_eq!(svc[0].metadata.name.as_deref(), Some("fault-injection-api"));
    let sspec = svc[0].spec.as_ref().unwrap();
    assert_eq!(sspec.ports.as_ref().unwrap()[0].port, 8080);
    for (k, v) in sspec.selector.as_ref().unwrap() {
        assert_eq!(
            labels.get(k),
            Some(v),
            "the Service selects the controller pods"
        );
    }
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("gfi-controller"));
    let c = &pod.containers[0];
    let args = c.args.clone().unwrap();
    assert_eq!(args[0], "controller");
    assert!(
        args.contains(&"--listen=0.0.0.0:8080".to_string()),
        "{args:?}"
    );
    assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 8080);
    // Every file an argument names is in a mounted Secret, under a key the Secret has.
    let mounts = c.volume_mounts.clone().unwrap();
    let volumes = pod.volumes.clone().unwrap();
    let secret_file = |flag: &str| {
        let path = args
            .iter()
            .find_map(|a| a.strip_prefix(&format!("{flag}=")))
            .unwrap_or_else(|| panic!("{flag} missing from {args:?}"));
        let m = mounts
            .iter()
            .find(|m| path.starts_with(&format!("{}/", m.mount_path)))
            .unwrap_or_else(|| panic!("{path} is not under a mount"));
        let key = &path[m.mount_path.len() + 1..];
        let secret = volumes
            .iter()
            .find(|v| v.name == m.name)
            .and_then(|v| v.secret.as_ref())
            .and_then(|s| s.secret_name.clone())
            .unwrap_or_else(|| panic!("{} is not a Secret volume", m.name));
        (secret, key.to_string())
    };
    assert_eq!(
        secret_file("--token-file"),
        ("gfi-controller-tokens".into(), "run".into())
    );
    assert_eq!(
        secret_file("--read-token-file"),
        ("gfi-controller-tokens".into(), "read".into())
    );
    assert_eq!(
        secret_file("--agent-token-file"),
        (TOKEN_SECRET.into(), TOKEN_KEY.into())
    );
    // The root filesystem is read-only: remote runs' bundles go to a writable emptyDir.
    let state = args
        .iter()
        .find_map(|a| a.strip_prefix("--state-dir="))
        .unwrap_or_else(|| panic!("--state-dir missing from {args:?}"));
    let m = mounts
        .iter()
        .find(|m| m.mount_path == state)
        .unwrap_or_else(|| panic!("--state-dir {state} is not a mount"));
    assert!(m.read_only != Some(true), "{m:?}");
    assert!(
        volumes
            .iter()
            .any(|v| v.name == m.name && v.empty_dir.is_some()),
        "the state dir is an emptyDir"
    );
    assert!(
        !args.iter().any(|a| a == "--seed-compat-anonymous"),
        "anonymous callers are an explicit opt-in, off by default"
    );
    let env = c.env.clone().unwrap();
    assert!(
        env.iter().any(|e| e.name == "POD_NAMESPACE"),
        "records go in its own namespace"
    );
    for probe in [&c.liveness_probe, &c.readiness_probe] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(
            get.path.as_deref(),
            Some("/health"),
            "the one route without a token"
        );
    }
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    // The NetworkPolicy covers the controller's pods and its port.
    let np: Vec<NetworkPolicy> = of_kind("controller.yaml", "NetworkPolicy");
    let nspec = np[0].spec.as_ref().unwrap();
    for (k, v) in nspec
        .pod_selector
        .as_ref()
        .unwrap()
        .match_labels
        .as_ref()
        .unwrap()
    {
        assert_eq!(labels.get(k), Some(v));
    }
    let ingress = nspec.ingress.as_ref().unwrap();
    assert!(ingress.iter().all(|r| {
        r.ports.as_ref().unwrap().iter().all(|p| {
            p.port == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080))
        })
    }));
}

/// The one object of `kind` named `name` in a rendered stream.
fn rendered<T: serde::de::DeserializeOwned>(text: &str, kind: &str, name: &str) -> T {
    let doc = serde_yaml::Deserializer::from_str(text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the render"));
    serde_yaml::from_value(doc).unwrap()
}

/// Where the file at `path` comes from: (Secret, key), through the container's mounts.
fn secret_of(pod: &k8s_openapi::api::core::v1::PodSpec, path: &str) -> (String, String) {
    let c = &pod.containers[0];
    let m = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| path.starts_with(&format!("{}/", m.mount_path)))
        .unwrap_or_else(|| panic!("{path} is not under a mount"));
    let key = path[m.mount_path.len() + 1..].to_string();
    let secret = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == m.name)
        .and_then(|v| v.secret.as_ref())
        .unwrap_or_else(|| panic!("{} is not a Secret volume", m.name));
    // A volume that lists items holds those keys only.
    if let Some(items) = &secret.items {
        assert!(
            items.iter().any(|i| i.path == key),
            "{path}: the volume {} does not project {key}",
            m.name
        );
    }
    (secret.secret_name.clone().unwrap(), key)
}

/// The value of the container's environment variable `name`, which the `gfi` subcommand
/// `sub` must read (its `--help` lists it).
fn env_read_by_gfi(pod: &k8s_openapi::api::core::v1::PodSpec, name: &str, sub: &str) -> String {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_gfi"))
        .args([sub, "--help"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&help.stdout).contains(&format!("[env: {name}=")),
        "gfi {sub} does not read {name}"
    );
    pod.containers[0]
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
        .unwrap_or_else(|| panic!("{name} is not set"))
}

#[test]
fn the_tls_overlay_gives_agents_and_controller_their_certificates_and_probes_https() {
    let Some(text) = kustomize(
        "deploy/tls/",
        "the_tls_overlay_gives_agents_and_controller_their_certificates_and_probes_https",
    ) else {
        return;
    };
    let ds: DaemonSet = rendered(&text, "DaemonSet", "gpu-fault-injector-kernel");
    let agent = ds.spec.template.spec.unwrap();
    let d: Deployment = rendered(&text, "Deployment", "gfi-controller");
    let controller = d.spec.template.spec.unwrap();
    for (pod, sub, secret) in [
        (&agent, "agent", "gfi-agent-tls"),
        (&controller, "controller", "gfi-controller-tls"),
    ] {
        let cert = env_read_by_gfi(pod, "GFI_TLS_CERT", sub);
        let key = env_read_by_gfi(pod, "GFI_TLS_KEY", sub);
        assert_eq!(secret_of(pod, &cert), (secret.into(), "tls.crt".into()));
        assert_eq!(secret_of(pod, &key), (secret.into(), "tls.key".into()));
        let c = &pod.containers[0];
        for probe in [&c.liveness_probe, &c.readiness_probe] {
            let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
            assert_eq!(get.scheme.as_deref(), Some("HTTPS"), "gfi {sub}'s probes");
            assert!(get.path.as_deref().unwrap().starts_with("/health"));
        }
        // Everything of the base stays: the token files are still mounted.
        assert!(
            c.args
                .as_ref()
                .unwrap()
                .iter()
                .any(|a| a.starts_with("--token-file="))
        );
    }
    // The controller trusts the CA that signed the agents' certificate, and not their key.
    let ca = env_read_by_gfi(&controller, "GFI_AGENT_CA", "controller");
    assert_eq!(
        secret_of(&controller, &ca),
        ("gfi-agent-tls".into(), "ca.crt".into())
    );
}

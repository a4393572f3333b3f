//! The opt-in tier against a real Kubernetes API server, as kube-rs runs its integration
//! tests: set `GFI_TEST_KUBECONFIG` to a kubeconfig (a kind or k3d cluster, or a bare
//! kube-apiserver with no kubelet and no scheduler) and these tests run the kube backend's
//! node-state path there: they create a Node and a namespace of their own (named after the
//! test run), act on them and delete them, pass or fail. Without the variable they skip,
//! saying so.
//!
//! What runs here: listing by selector, node facts, a watch-driven wait that sees a cordon
//! made by another client, Events, heal, and an unknown node's error. (`GFI_TEST_CONTEXT`
//! picks a context other than the current one.) The agent path is the double's
//! (`tests/kube_e2e.rs`): a real API server's pod proxy refuses loopback pod IPs.

use gpu_fault_injector::backend::cluster::KubeAccess;
use gpu_fault_injector::backend::kube::{KubeBackend, KubeOptions};
use gpu_fault_injector::backend::kube_connect::KubeConnect;
use gpu_fault_injector::backend::{Backend, LabelSelector, NodePredicate, keys};
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::Duration;

fn kubeconfig() -> Option<std::path::PathBuf> {
    match std::env::var_os("GFI_TEST_KUBECONFIG") {
        Some(p) if !p.is_empty() => Some(p.into()),
        _ => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED kube_real: GFI_TEST_KUBECONFIG is not set (point it at a test cluster's kubeconfig to run these)"
            );
            None
        }
    }
}

/// Deletes what the test made, pass or fail.
struct Cleanup {
    client: kube::Client,
    node: String,
    namespace: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (client, node, ns) = (
            self.client.clone(),
            self.node.clone(),
            self.namespace.clone(),
        );
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let _ = Api::<Node>::all(client.clone())
                    .delete(&node, &DeleteParams::default())
                    .await;
                let _ = Api::<Namespace>::all(client)
                    .delete(&ns, &DeleteParams::default())
                    .await;
            });
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_state_waits_events_and_heal_on_a_real_api_server() {
    let Some(path) = kubeconfig() else { return };
    let connect = KubeConnect {
        kubeconfig: Some(path),
        context: std::env::var("GFI_TEST_CONTEXT").ok(),
    };
    let client = connect
        .resolve()
        .expect("the kubeconfig reads")
        .expect("it names a cluster")
        .connect()
        .await
        .expect("a client");
    let run = format!("{:08x}", rand::random::<u32>());
    let node_name = format!("gfi-e2e-{run}");
    let namespace = format!("gfi-e2e-{run}");
    let _cleanup = Cleanup {
        client: client.clone(),
        node: node_name.clone(),
        namespace: namespace.clone(),
    };
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": node_name, "labels": {"gfi.dev/e2e": run.clone(), keys::GPU_PRESENT: "true"}}
    }))
    .unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.create(&PostParams::default(), &node).await.unwrap();

    let backend =
        KubeBackend::kube_with(KubeAccess::Client(client.clone()), KubeOptions::default()).unwrap();
    let sel = LabelSelector::parse(&format!("gfi.dev/e2e={run}")).unwrap();
    let listed = backend.list_nodes(Some(&sel)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, node_name);

    // A cordon by another client ends the wait; the wait follows a watch.
    let wait = backend.wait_node(
        &node_name,
        &NodePredicate::Cordoned,
        Duration::from_secs(60),
    );
    let cordon = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        nodes
            .patch(
                &node_name,
                &PatchParams::default(),
                &Patch::Merge(json!({
                    "metadata": {"labels": {keys::CORDON_BY: keys::NVSENTINEL, keys::STATE: "quarantined"}},
                    "spec": {"unschedulable": true}
                })),
            )
            .await
            .unwrap();
    };
    let (outcome, ()) = tokio::join!(wait, cordon);
    let outcome = outcome.unwrap();
    assert!(outcome.satisfied, "the wait saw the cordon: {outcome:?}");

    let events = backend.events(&node_name).await.unwrap();
    assert!(events.is_empty(), "a new node has no Events: {events:?}");

    let healed = backend.heal(&node_name).await.unwrap();
    assert!(healed.uncordoned);
    assert!(healed.removed_labels.contains(&keys::STATE.to_string()));
    assert!(!backend.node(&node_name).await.unwrap().unschedulable);

    let err = backend
        .node(&format!("{node_name}-missing"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

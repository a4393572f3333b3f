//! The Kubernetes API server double (`tests/kube_double/`) through the real `kube::Client`
//! and kube-runtime's `watcher`.

#[path = "kube_double/mod.rs"]
mod kube_double;

use kube_double::KubeDouble;

#[tokio::test]
async fn smoke() {
    let d = KubeDouble::start().await;
    let _c = d.client().await;
}

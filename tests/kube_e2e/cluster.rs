//! A cluster for the kube end-to-end tests: the API server double, Nodes and Pods made by hand
//! as on an API server with no kubelet and no scheduler (pod IPs and readiness set through the
//! status subresource), one real `gfi agent` process per node writing to a file, and the
//! reactor playing NVSentinel.
//!
//! Each node's agent listens on its own loopback address (`127.0.0.N`, all on one port), which
//! is that agent pod's IP: the backend reaches it at `<pod IP>:<port>` as on a cluster, directly
//! or through the double's pod proxy.

use super::kube_double::KubeDouble;
use super::reactor::{self, Reactor};
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use serde_json::json;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const AGENT_NS: &str = "fault-injection-system";
pub const NVSENTINEL_NS: &str = "nvsentinel";
pub const AGENT_TOKEN: &str = "e2e-agent-token-0123456789abcdef";

/// A child process killed when the test ends, pass or fail.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Cluster {
    pub double: KubeDouble,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub nodes: Vec<String>,
    pub agents: Vec<Killed>,
    pub reactor: Option<Reactor>,
    /// The agents serve HTTPS (`Cluster::start_tls`).
    pub tls: Option<AgentTls>,
}

/// HTTPS for the agents: one certificate for the whole DaemonSet, as one Secret would give,
/// for `gfi-agent.fault-injection-system.svc`, signed by a CA of the test's own.
pub struct AgentTls {
    /// The CA that signed the agents' certificate (`--agent-ca`).
    pub ca: PathBuf,
    /// Another CA, which signed nothing the agents present.
    pub other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl AgentTls {
    fn create(dir: &Path) -> AgentTls {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_of = || {
            let mut params = CertificateParams::new(Vec::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            (cert, key)
        };
        let (ca, ca_key) = ca_of();
        let (other, _) = ca_of();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec![format!("gfi-agent.{AGENT_NS}.svc")])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let tls = AgentTls {
            ca: dir.join("agent-ca.crt"),
            other_ca: dir.join("other-ca.crt"),
            cert: dir.join("agent-tls.crt"),
            key: dir.join("agent-tls.key"),
        };
        std::fs::write(&tls.ca, ca.pem()).unwrap();
        std::fs::write(&tls.other_ca, other.pem()).unwrap();
        std::fs::write(&tls.cert, leaf.pem()).unwrap();
        std::fs::write(&tls.key, leaf_key.serialize_pem()).unwrap();
        tls
    }
}

pub fn node_name(i: usize) -> String {
    format!("gpu-node-{:03}", i + 1)
}

fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, (i + 2) as u8)
}

/// A port free on every node address (checked by binding each).
fn shared_port(n: usize) -> u16 {
    'search: loop {
        let first = TcpListener::bind((node_ip(0), 0)).expect("binding a loopback address");
        let port = first.local_addr().unwrap().port();
        let mut held = vec![first];
        for i in 1..n {
            match TcpListener::bind((node_ip(i), port)) {
                Ok(l) => held.push(l),
                Err(_) => continue 'search,
            }
        }
        return port;
    }
}

fn ago(secs: i64) -> String {
    let t =
        k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(secs);
    t.to_string()
}

impl Cluster {
    /// `n` GPU nodes with 8 GPUs each (as the simulator's default cluster, which the examples
    /// name), an agent and a Ready syslog monitor on each.
    pub async fn start(n: usize) -> Cluster {
        Cluster::start_with(n, false).await
    }

    /// [`Cluster::start`] with agents that serve HTTPS (see [`AgentTls`]).
    #[allow(dead_code)]
    pub async fn start_tls(n: usize) -> Cluster {
        Cluster::start_with(n, true).await
    }

    async fn start_with(n: usize, tls: bool) -> Cluster {
        let double = KubeDouble::start().await;
        let dir = tempfile::tempdir().unwrap();
        let tls = tls.then(|| AgentTls::create(dir.path()));
        for ns in [AGENT_NS, NVSENTINEL_NS] {
            double.ensure_namespace(ns);
        }
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "gfi-agent-token", "namespace": AGENT_NS},
            "stringData": {"token": AGENT_TOKEN}
        }))
        .unwrap();
        double.create(&secret).unwrap();
        std::fs::write(dir.path().join("token"), format!("{AGENT_TOKEN}\n")).unwrap();
        let port = shared_port(n);
        let mut cluster = Cluster {
            double,
            dir,
            port,
            nodes: Vec::new(),
            agents: Vec::new(),
            reactor: None,
            tls,
        };
        for i in 0..n {
            cluster.add_node(i).await;
        }
        let client = cluster.double.client().await;
        let files = (0..n)
            .map(|i| (node_name(i), cluster.kmsg_path(i)))
            .collect();
        cluster.reactor = Some(reactor::start(client, files));
        cluster
    }

    pub fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(node_name(i))
    }

    pub fn kmsg_path(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("kmsg")
    }

    pub fn kmsg(&self, i: usize) -> String {
        std::fs::read_to_string(self.kmsg_path(i)).unwrap_or_default()
    }

    async fn add_node(&mut self, i: usize) {
        let name = node_name(i);
        let d = self.node_dir(i);
        std::fs::create_dir_all(&d).unwrap();
        gpu_fault_injector::node::testkit::write_gpu_tree(
            &d.join("proc"),
            &gpu_fault_injector::node::testkit::fake_gpus(8),
        )
        .unwrap();
        std::fs::write(d.join("kmsg"), b"").unwrap();
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"nvidia.com/gpu.present": "true",
                "nvsentinel.dgxc.nvidia.com/driver.installed": "true"}},
            "spec": {}
        }))
        .unwrap();
        self.double.create(&node).unwrap();
        self.double
            .patch_status::<Node>(
                "",
                &name,
                super::kube_double::PatchType::Merge,
                &json!({"status": {
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "",
                        "lastTransitionTime": ago(3600), "lastHeartbeatTime": ago(1)}],
                    "nodeInfo": {"bootID": "boot-1", "architecture": "amd64", "containerRuntimeVersion": "",
                        "kernelVersion": "", "kubeProxyVersion": "", "kubeletVersion": "", "machineID": "",
                        "operatingSystem": "linux", "osImage": "", "systemUUID": ""}
                }}),
            )
            .unwrap();
        let ip = node_ip(i);
        self.agents.push(self.spawn_agent(i));
        wait_listening(SocketAddr::from((ip, self.port)), &mut self.agents[i].0).await;
        self.add_pod(
            AGENT_NS,
            &format!("gpu-fault-injector-kernel-{:05}", i + 1),
            &name,
            json!({"app": "gpu-fault-injector-kernel"}),
            Some(ip.to_string()),
            true,
        );
        self.add_pod(
            NVSENTINEL_NS,
            &format!("syslog-health-monitor-regular-{:05}", i + 1),
            &name,
            json!({"app.kubernetes.io/name": "syslog-health-monitor"}),
            Some(ip.to_string()),
            true,
        );
        self.nodes.push(name);
    }

    fn spawn_agent(&self, i: usize) -> Killed {
        let d = self.node_dir(i);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gfi"));
        cmd.arg("agent")
            .env_clear()
            .env("GFI_LISTEN", format!("{}:{}", node_ip(i), self.port))
            .env("NODE_NAME", node_name(i))
            .env("GFI_PROC_ROOT", d.join("proc"))
            .env("GFI_KMSG_PATH", d.join("kmsg"))
            .env("GFI_ALLOW_NON_CHARDEV", "true")
            .env("GFI_TOKEN_FILE", self.dir.path().join("token"))
            .env("GFI_STATE_DIR", d.join("state"))
            .env("GFI_RATE_NODE", "0")
            .env("GFI_RATE_GPU", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(tls) = &self.tls {
            cmd.env("GFI_TLS_CERT", &tls.cert)
                .env("GFI_TLS_KEY", &tls.key);
        }
        Killed(cmd.spawn().expect("spawning gfi agent"))
    }

    /// A pod bound to `node`, as a tester without a scheduler and kubelet makes one: created,
    /// then its IP and readiness written through the status subresource.
    pub fn add_pod(
        &self,
        ns: &str,
        name: &str,
        node: &str,
        labels: serde_json::Value,
        ip: Option<String>,
        ready: bool,
    ) {
        // The agents and monitors are DaemonSet pods, as on a cluster (node-drainer skips them).
        let owners = if ns == AGENT_NS || ns == NVSENTINEL_NS {
            json!([{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "ds", "uid": format!("uid-{ns}"), "controller": true}])
        } else {
            json!([])
        };
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "labels": labels, "ownerReferences": owners},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "gfi"}]}
        }))
        .unwrap();
        self.double.create(&pod).unwrap();
        self.set_pod_status(ns, name, ip, ready);
    }

    pub fn set_pod_status(&self, ns: &str, name: &str, ip: Option<String>, ready: bool) {
        let status = if ready { "True" } else { "False" };
        let mut st = json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": status, "lastTransitionTime": ago(3600)}
        ]});
        if let Some(ip) = ip {
            st["podIP"] = json!(ip);
            st["podIPs"] = json!([{"ip": ip}]);
        }
        self.double
            .patch_status::<Pod>(
                ns,
                name,
                super::kube_double::PatchType::Merge,
                &json!({ "status": st }),
            )
            .unwrap();
    }

    pub fn kubeconfig(&self) -> PathBuf {
        let p = self.dir.path().join("kubeconfig");
        if !p.exists() {
            self.double.write_kubeconfig(&p, "e2e");
        }
        p
    }

    /// `gfi run --backend kube` against this cluster, with `extra` flags; (exit code, output).
    pub fn gfi_run(&self, extra: &[&str]) -> (Option<i32>, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_gfi"))
            .arg("run")
            .args(["--backend", "kube", "--kubeconfig"])
            .arg(self.kubeconfig())
            .args(["--agent-port", &self.port.to_string()])
            .args(extra)
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("NO_COLOR", "1")
            .output()
            .expect("running gfi");
        if std::env::var_os("GFI_E2E_VERBOSE").is_some() {
            eprintln!("{}", String::from_utf8_lossy(&out.stdout));
        }
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }
}

impl Cluster {
    /// [`Cluster::gfi_run`] on a blocking thread, so a test can act on the cluster meanwhile.
    pub fn gfi_run_in_background(
        self: &std::sync::Arc<Self>,
        extra: &[&str],
    ) -> tokio::task::JoinHandle<(Option<i32>, String)> {
        let c = self.clone();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = extra.iter().map(String::as_str).collect();
            c.gfi_run(&args)
        })
    }
}

/// Waits until something accepts connections on `addr`, or the process exits, or 30 s pass.
async fn wait_listening(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the agent for {addr} exited before it listened: {status}");
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not listen on {addr} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[allow(dead_code)]
pub fn exists(p: &Path) -> bool {
    p.exists()
}

//! The node side of the `kube` backend: each node's `gfi agent` over HTTP, found as the Ready
//! pod of the agent DaemonSet on that node, and reached through the API server's pod proxy
//! (`proxy`: the kubeconfig's credentials and RBAC decide who may inject; a workstation needs
//! to reach nothing but the API server) or at the pod's IP (`direct`: in the cluster).
//!
//! The API server's proxy strips `Authorization` on the way to the pod, so the agent token
//! travels in `X-Gfi-Agent-Token`. An answer is told apart by its body: the API server's
//! errors are `kind: Status`, the agent's are `{"detail": ...}`; a 401 from the agent is a
//! wrong agent token, not a failed cluster login.
//!
//! With `--agent-ca` the agents are reached over HTTPS (`gfi agent --tls-cert/--tls-key`).
//! Directly, their certificate is verified against that CA bundle, for the name
//! `--agent-server-name` (default `gfi-agent.<namespace>.svc`: one certificate serves the whole
//! DaemonSet, and pod IPs change). Through the pod proxy the API server makes the TLS
//! connection, and kube-apiserver does not verify a pod's certificate: the traffic is encrypted,
//! the agent is not authenticated, and the description of the backend says so.
//!
//! Connections are kept alive (the kube client's pool, or one pool for direct calls) and the
//! number of calls in flight is bounded, so a `parallel` over 1,000 nodes neither opens 1,000
//! connections nor floods the API server. A failed call that may be retried (a 5xx, a dropped
//! connection, a timeout) is retried with the same `fault_id`: the agent answers a repeat
//! without writing again, so a retry never injects twice.

use super::cluster::KubeApi;
use super::node_agent::NodeAgent;
use super::pods_by_node::{PodFacts, PodsByNode};
use super::{BackendError, BackendResult, FaultRecord, GpuInfo, InjectRequest, TailOptions};
use crate::kmsg::KmsgRecord;
use crate::node::wire::{
    Detail, ErrorBody, GpusResponse, InjectXidRequest, InjectXidResponse, KmsgResponse,
};
use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use k8s_openapi::api::core::v1::Secret;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OnceCell, Semaphore};

/// The agent's own token header: the API server's pod proxy strips `Authorization`.
pub const TOKEN_HEADER: &str = "x-gfi-agent-token";
/// The Secret (in the agents' namespace) and key the agent DaemonSet mounts as its token.
pub const TOKEN_SECRET: &str = "gfi-agent-token";
pub const TOKEN_KEY: &str = "token";
/// One call to an agent, all attempts together, may take this long.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// One attempt may take this long (a write and its read-back take milliseconds).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const ATTEMPTS: u32 = 3;
/// Larger answers are cut off (a `kmsg` tail of 10,000 records is about 2 MiB).
const MAX_ANSWER: usize = 16 << 20;

/// How the backend reaches the agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AgentAccess {
    /// Through the API server's pods/proxy subresource.
    Proxy,
    /// At the pod's IP (the node's, under hostNetwork).
    Direct,
}

impl AgentAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentAccess::Proxy => "proxy",
            AgentAccess::Direct => "direct",
        }
    }
}

#[derive(Debug, Clone)]
pub struct KubeAgentOptions {
    /// The agents' namespace (`fault-injection-system`).
    pub namespace: String,
    /// Label selector of the agent pods (`app=gpu-fault-injector-kernel`).
    pub selector: String,
    /// `None`: `direct` in a pod, `proxy` from a workstation.
    pub access: Option<AgentAccess>,
    pub port: u16,
    /// The agent token; `None`: read the Secret `gfi-agent-token`.
    pub token_file: Option<PathBuf>,
    /// Calls to agents in flight at once.
    pub max_concurrency: usize,
    /// Reach the agents over HTTPS, trusting this PEM CA bundle (`--agent-ca`).
    pub ca: Option<PathBuf>,
    /// The name the agents' certificate must carry; `None`: `gfi-agent.<namespace>.svc`.
    pub server_name: Option<String>,
}

impl KubeAgentOptions {
    /// The name an agent's certificate is checked for.
    pub fn server_name(&self) -> String {
        self.server_name
            .clone()
            .unwrap_or_else(|| format!("gfi-agent.{}.svc", self.namespace))
    }
}

impl Default for KubeAgentOptions {
    fn default() -> Self {
        KubeAgentOptions {
            namespace: "fault-injection-system".into(),
            selector: "app=gpu-fault-injector-kernel".into(),
            access: None,
            port: 8083,
            token_file: None,
            max_concurrency: 64,
            ca: None,
            server_name: None,
        }
    }
}

type DirectClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

pub struct KubeAgents {
    api: Arc<KubeApi>,
    opts: KubeAgentOptions,
    access: AgentAccess,
    pods: OnceCell<PodsByNode>,
    token: tokio::sync::Mutex<Option<String>>,
    direct: DirectClient,
    limit: Semaphore,
}

/// One agent answer.
struct Answer {
    status: StatusCode,
    /// The `Retry-After` of a 429 or 503, in whole seconds as HTTP gives it.
    retry_after: Option<Duration>,
    body: Bytes,
    pod: String,
}

/// Why an attempt failed, and whether another may succeed.
struct Failure {
    error: BackendError,
    retry: bool,
}

impl KubeAgents {
    pub fn new(api: Arc<KubeApi>, opts: KubeAgentOptions) -> BackendResult<KubeAgents> {
        if opts.max_concurrency == 0 {
            return Err(BackendError::invalid(
                "--max-concurrency",
                "must be at least 1 (e.g. 64)",
            ));
        }
        if opts.namespace.trim().is_empty() {
            return Err(BackendError::invalid(
                "--agent-namespace",
                "must name a namespace (e.g. fault-injection-system)",
            ));
        }
        super::LabelSelector::parse(&opts.selector)
            .map_err(|e| BackendError::invalid("--agent-selector", e.to_string()))?;
        let access = opts.access.unwrap_or(if api.in_cluster() {
            AgentAccess::Direct
        } else {
            AgentAccess::Proxy
        });
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        http.enforce_http(false);
        let tls = match &opts.ca {
            Some(ca) => crate::tls::client_config(Some(ca), "--agent-ca", false)
                .map_err(|e| BackendError::invalid("--agent-ca", e))?,
            // Without --agent-ca the scheme is http.
            None => crate::tls::client_config_trusting_nothing(),
        };
        let name = rustls_pki_types::ServerName::try_from(opts.server_name())
            .map_err(|e| {
                BackendError::invalid(
                    "--agent-server-name",
                    format!("{e}: give a DNS name, e.g. gfi-agent.fault-injection-system.svc"),
                )
            })?
            .to_owned();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
            .enable_http1()
            .wrap_connector(http);
        let direct =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .build(https);
        Ok(KubeAgents {
            api,
            limit: Semaphore::new(opts.max_concurrency),
            opts,
            access,
            pods: OnceCell::new(),
            token: tokio::sync::Mutex::new(None),
            direct,
        })
    }

    pub fn access(&self) -> AgentAccess {
        self.access
    }

    pub fn options(&self) -> &KubeAgentOptions {
        &self.opts
    }

    /// `https` with `--agent-ca`, else `http`.
    fn scheme(&self) -> &'static str {
        if self.opts.ca.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// How the agents are reached, for the backend's description.
    pub fn describe_access(&self) -> String {
        match (self.access, self.opts.ca.is_some()) {
            (AgentAccess::Proxy, false) => "through the API server's pod proxy".into(),
            (AgentAccess::Proxy, true) => "through the API server's pod proxy over HTTPS (the API server does not verify the agents' certificate; --agent-access direct does)".into(),
            (AgentAccess::Direct, false) => "directly at their pod IPs".into(),
            (AgentAccess::Direct, true) => format!(
                "directly at their pod IPs over HTTPS, verified as {}",
                self.opts.server_name()
            ),
        }
    }

    async fn pods(&self, what: &str) -> BackendResult<&PodsByNode> {
        let k = self.api.connected(what).await?;
        Ok(self
            .pods
            .get_or_init(|| async {
                PodsByNode::new(
                    k.nodes.client().clone(),
                    k.nodes.server(),
                    &self.opts.namespace,
                    &self.opts.selector,
                )
            })
            .await)
    }

    /// The node's one Ready agent pod, or an error that says what is there instead.
    async fn agent_pod(&self, node: &str, what: &str) -> BackendResult<PodFacts> {
        let pods = self.pods(what).await?.on_node(node).await?;
        let live: Vec<&PodFacts> = pods.iter().filter(|p| !p.deleting).collect();
        let ready: Vec<&PodFacts> = live.iter().copied().filter(|p| p.ready).collect();
        let unavailable = |reason: String| BackendError::NodeUnavailable {
            node: node.to_string(),
            what: what.to_string(),
            reason,
        };
        let found = || {
            pods.iter()
                .map(PodFacts::describe)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let pod = match ready.as_slice() {
            [one] => (*one).clone(),
            [] if pods.is_empty() => {
                return Err(unavailable(format!(
                    "no gfi agent pod runs on it (namespace {}, selector {}): is the agent DaemonSet deployed, and does its nodeSelector match this node? (kubectl -n {} get pods -l {} -o wide)",
                    self.opts.namespace,
                    self.opts.selector,
                    self.opts.namespace,
                    self.opts.selector
                )));
            }
            [] => {
                return Err(unavailable(format!(
                    "its gfi agent is not Ready: {} (kubectl -n {} describe pod {})",
                    found(),
                    self.opts.namespace,
                    pods[0].name
                )));
            }
            _ => {
                return Err(unavailable(format!(
                    "several Ready gfi agent pods match selector {} on it: {}; make the selector match one DaemonSet (--agent-selector)",
                    self.opts.selector,
                    found()
                )));
            }
        };
        if self.access == AgentAccess::Direct && pod.ip.is_none() {
            return Err(unavailable(format!(
                "agent pod {} has no IP yet; use --agent-access proxy or wait",
                pod.name
            )));
        }
        Ok(pod)
    }

    /// The agent token: `--agent-token-file`, else the Secret. `refresh`: read it again
    /// (after a 401, the token may have been rotated).
    async fn token(&self, node: &str, refresh: bool) -> BackendResult<String> {
        let mut cached = self.token.lock().await;
        if let (Some(t), false) = (cached.as_ref(), refresh) {
            return Ok(t.clone());
        }
        let token = match &self.opts.token_file {
            Some(path) => {
                let text = tokio::fs::read_to_string(path).await.map_err(|e| {
                    BackendError::invalid(
                        "--agent-token-file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                first_token(&text).ok_or_else(|| {
                    BackendError::invalid(
                        "--agent-token-file",
                        format!("{} has no token (only blank or # lines)", path.display()),
                    )
                })?
            }
            None => self.token_from_secret(node).await?,
        };
        *cached = Some(token.clone());
        Ok(token)
    }

    async fn token_from_secret(&self, node: &str) -> BackendResult<String> {
        let what = format!(
            "reading the agent token (Secret {}/{TOKEN_SECRET})",
            self.opts.namespace
        );
        let k = self.api.connected(&what).await?;
        let secrets: kube::Api<Secret> =
            kube::Api::namespaced(k.nodes.client().clone(), &self.opts.namespace);
        let secret = secrets.get_opt(TOKEN_SECRET).await.map_err(|e| {
            k.nodes.api_error_needing(
                Some(node),
                &what,
                &format!(
                    "get on secrets named {TOKEN_SECRET} in namespace {}, or pass --agent-token-file",
                    self.opts.namespace
                ),
                e,
            )
        })?;
        let Some(secret) = secret else {
            return Err(BackendError::invalid(
                "agent token",
                format!(
                    "there is no Secret {TOKEN_SECRET} in namespace {}: create it (see deploy/) or pass --agent-token-file",
                    self.opts.namespace
                ),
            ));
        };
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(TOKEN_KEY))
            .map(|b| b.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(TOKEN_KEY))
                    .map(|s| s.clone().into_bytes())
            });
        let text = bytes
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        first_token(&text).ok_or_else(|| {
            BackendError::invalid(
                "agent token",
                format!(
                    "Secret {}/{TOKEN_SECRET} has no key {TOKEN_KEY:?} with a token in it",
                    self.opts.namespace
                ),
            )
        })
    }

    /// One call to the node's agent, retried where a retry is safe. Answers with a status
    /// of 2xx, or 4xx from the agent, come back for the caller to read.
    async fn call(
        &self,
        node: &str,
        what: &str,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        not_found: &(dyn Fn(String) -> BackendError + Sync),
    ) -> BackendResult<Answer> {
        let _permit = self
            .limit
            .acquire()
            .await
            .map_err(|e| BackendError::failed(Some(node), what, e))?;
        let deadline = tokio::time::Instant::now() + CALL_TIMEOUT;
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let pod = self.agent_pod(node, what).await?;
            let token = self.token(node, false).await?;
            let sent = tokio::time::timeout(
                ATTEMPT_TIMEOUT
                    .min(deadline.saturating_duration_since(tokio::time::Instant::now())),
                self.send(&pod, &token, method.clone(), path_and_query, body.clone()),
            )
            .await;
            let result = match sent {
                Ok(Ok(a)) => self.classify(node, what, a, not_found),
                Ok(Err(f)) => Err(f),
                Err(_) => Err(Failure {
                    error: BackendError::Unreachable {
                        node: Some(node.to_string()),
                        what: what.to_string(),
                        target: self.describe_target(&pod),
                        reason: format!(
                            "no answer within {}",
                            crate::duration::format(ATTEMPT_TIMEOUT)
                        ),
                    },
                    retry: true,
                }),
            };
            match result {
                Ok(a) => return Ok(a),
                // A rotated token: read it again, once.
                Err(Failure {
                    error: BackendError::Unauthorized { .. },
                    ..
                }) if !refreshed && self.opts.token_file.is_none() => {
                    refreshed = true;
                    self.token(node, true).await?;
                }
                Err(f) if f.retry && attempt < ATTEMPTS => {
                    let pause = Duration::from_millis(200 * 4u64.pow(attempt - 1));
                    if tokio::time::Instant::now() + pause >= deadline {
                        return Err(f.error);
                    }
                    tracing::warn!(node, attempt, "{what}: {} (retrying)", f.error);
                    tokio::time::sleep(pause).await;
                }
                Err(f) => return Err(f.error),
            }
        }
    }

    fn describe_target(&self, pod: &PodFacts) -> String {
        match self.access {
            AgentAccess::Proxy => format!(
                "gfi agent pod {}/{} (through the API server's pod proxy)",
                self.opts.namespace, pod.name
            ),
            AgentAccess::Direct => format!(
                "gfi agent pod {}/{} at {}:{}",
                self.opts.namespace,
                pod.name,
                pod.ip.as_deref().unwrap_or("?"),
                self.opts.port
            ),
        }
    }

    async fn send(
        &self,
        pod: &PodFacts,
        token: &str,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, Failure> {
        let target = self.describe_target(pod);
        let unreachable = |reason: String| Failure {
            error: BackendError::Unreachable {
                node: Some(pod.node.clone()),
                what: "calling the gfi agent".into(),
                target: target.clone(),
                reason,
            },
            retry: true,
        };
        let builder = Request::builder()
            .method(method)
            .header(TOKEN_HEADER, token)
            .header(http::header::ACCEPT, "application/json");
        let builder = if body.is_some() {
            builder.header(http::header::CONTENT_TYPE, "application/json")
        } else {
            builder
        };
        let payload = Bytes::from(body.unwrap_or_default());
        let (status, retry_after, collected) = match self.access {
            AgentAccess::Proxy => {
                let k = self
                    .api
                    .connected("calling a gfi agent")
                    .await
                    .map_err(|error| Failure {
                        error,
                        retry: false,
                    })?;
                // `https:name:port` has the API server connect over TLS; plain `name:port`
                // means http.
                let target = match self.scheme() {
                    "https" => format!("https:{}:{}", pod.name, self.opts.port),
                    _ => format!("{}:{}", pod.name, self.opts.port),
                };
                let uri = format!(
                    "/api/v1/namespaces/{}/pods/{target}/proxy{path_and_query}",
                    self.opts.namespace
                );
                let req = builder
                    .uri(uri)
                    .body(kube::client::Body::from(payload.to_vec()))
                    .map_err(|e| unreachable(e.to_string()))?;
                let resp = k
                    .nodes
                    .client()
                    .send(req)
                    .await
                    .map_err(|e| unreachable(super::kube_nodes::error_chain(&e)))?;
                read_answer(resp).await.map_err(unreachable)?
            }
            AgentAccess::Direct => {
                let ip = pod.ip.as_deref().unwrap_or_default();
                let host = if ip.contains(':') {
                    format!("[{ip}]")
                } else {
                    ip.to_string()
                };
                let req = builder
                    .uri(format!(
                        "{}://{host}:{}{path_and_query}",
                        self.scheme(),
                        self.opts.port
                    ))
                    .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
                    .body(Full::new(payload))
                    .map_err(|e| unreachable(e.to_string()))?;
                let resp = self.direct.request(req).await.map_err(|e| {
                    let chain = super::kube_nodes::error_chain(&e);
                    match self.tls_refusal(&e, &chain) {
                        // Trying again would meet the same certificate.
                        Some(reason) => Failure {
                            retry: false,
                            ..unreachable(reason)
                        },
                        None => unreachable(chain),
                    }
                })?;
                read_answer(resp).await.map_err(unreachable)?
            }
        };
        Ok(Answer {
            status,
            retry_after,
            body: collected,
            pod: pod.name.clone(),
        })
    }

    /// A failed connection explained, when the cause is TLS: the agent's certificate refused,
    /// or an agent that does not speak the scheme used.
    /// Says what to fix when a direct call failed for want of the right TLS setting. Typed:
    /// rustls's and hyper's error kinds, found by walking the error's causes, not their text.
    fn tls_refusal(&self, e: &(dyn std::error::Error + 'static), chain: &str) -> Option<String> {
        let mut untrusted = false;
        let mut not_tls = false;
        let mut not_http = false;
        for cause in super::kube_nodes::causes(e) {
            if let Some(t) = cause.downcast_ref::<rustls::Error>() {
                untrusted |= matches!(
                    t,
                    rustls::Error::InvalidCertificate(_)
                        | rustls::Error::UnsupportedNameType
                        | rustls::Error::NoCertificatesPresented
                );
                not_tls |= matches!(
                    t,
                    rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
                );
            }
            if let Some(h) = cause.downcast_ref::<hyper::Error>() {
                not_http |= h.is_parse();
            }
        }
        if untrusted {
            return Some(format!(
                "{chain}: its certificate is not trusted for the name {} (check --agent-ca, the CA that signed the agents' certificate, and --agent-server-name, a name the certificate carries)",
                self.opts.server_name()
            ));
        }
        if self.opts.ca.is_none() && not_http {
            return Some(format!(
                "{chain}: the agent did not answer in plain HTTP; if the agents serve HTTPS (gfi agent --tls-cert), give --agent-ca"
            ));
        }
        if self.opts.ca.is_some() && not_tls {
            return Some(format!(
                "{chain}: the agent does not speak HTTPS (is it started with --tls-cert and --tls-key?); without --agent-ca gfi uses plain HTTP"
            ));
        }
        None
    }

    /// Tells the API server's answers from the agent's, and errors from answers.
    fn classify(
        &self,
        node: &str,
        what: &str,
        a: Answer,
        not_found: &(dyn Fn(String) -> BackendError + Sync),
    ) -> Result<Answer, Failure> {
        if a.status.is_success() {
            return Ok(a);
        }
        let node_s = Some(node.to_string());
        let json: Option<serde_json::Value> = serde_json::from_slice(&a.body).ok();
        let is_status = json
            .as_ref()
            .is_some_and(|v| v.get("kind").and_then(|k| k.as_str()) == Some("Status"));
        let code = a.status.as_u16();
        if is_status {
            let message = json
                .as_ref()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()))
                .unwrap_or("")
                .to_string();
            let server = "the Kubernetes API server (pod proxy)".to_string();
            let error = match code {
                401 => BackendError::Unauthorized {
                    node: node_s,
                    what: what.into(),
                    target: server,
                    reason: format!("{message} (the kubeconfig's login was refused)"),
                },
                403 => BackendError::Forbidden {
                    node: node_s,
                    what: what.into(),
                    reason: message,
                    needs: format!(
                        "create and get on pods/proxy in namespace {}",
                        self.opts.namespace
                    ),
                },
                429 => BackendError::Throttled {
                    node: node_s,
                    what: what.into(),
                    reason: message,
                    retry_after: None,
                },
                404 => BackendError::NodeUnavailable {
                    node: node.into(),
                    what: what.into(),
                    reason: format!("agent pod {} is gone: {message}", a.pod),
                },
                _ => BackendError::Unreachable {
                    node: node_s,
                    what: what.into(),
                    target: format!("gfi agent pod {} through the API server", a.pod),
                    reason: format!("{message} ({code})"),
                },
            };
            return Err(Failure {
                retry: code >= 500,
                error,
            });
        }
        // The agent's own answer, passed through with its node and pod.
        let detail = match serde_json::from_slice::<ErrorBody>(&a.body) {
            Ok(ErrorBody {
                detail: Detail::Message(m),
            }) => m,
            Ok(ErrorBody {
                detail: Detail::Fields(fs),
            }) => fs
                .iter()
                .map(|f| f.msg.clone())
                .collect::<Vec<_>>()
                .join("; "),
            Err(_) => String::from_utf8_lossy(&a.body).chars().take(300).collect(),
        };
        let agent = format!("gfi agent pod {}/{}", self.opts.namespace, a.pod);
        let error = match code {
            401 => BackendError::Unauthorized {
                node: node_s,
                what: what.into(),
                target: agent,
                reason: format!(
                    "{detail} (the agent token is wrong: check Secret {}/{TOKEN_SECRET} or --agent-token-file)",
                    self.opts.namespace
                ),
            },
            404 => not_found(detail),
            429 => BackendError::Throttled {
                node: node_s,
                what: what.into(),
                reason: format!("{agent}: {detail}"),
                retry_after: a.retry_after,
            },
            // Passed on with the agent's status and words: the caller of a server over this
            // backend (the controller) answers with them.
            _ => BackendError::Agent {
                node: node.to_string(),
                what: what.into(),
                pod: format!("{}/{}", self.opts.namespace, a.pod),
                status: code,
                detail,
            },
        };
        Err(Failure {
            // 501 and 505 are not passing states; 500, 502, 503, 504 may be.
            retry: matches!(code, 500 | 502 | 503 | 504),
            error,
        })
    }
}

/// An answer's status, `Retry-After` (seconds) and body, the body cut off at [`MAX_ANSWER`].
async fn read_answer<B>(
    resp: http::Response<B>,
) -> Result<(StatusCode, Option<Duration>, Bytes), String>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = Limited::new(resp.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    Ok((status, retry_after, body.to_bytes()))
}

/// A 404 where the route should exist: an agent of another version.
fn agent_route_missing(node: &str, what: &str, detail: String) -> BackendError {
    BackendError::failed(
        Some(node),
        what,
        format!("the gfi agent answered 404 ({detail}); is it an older version?"),
    )
}

/// The first line of a token file that is neither blank nor a `#` comment.
fn first_token(text: &str) -> Option<String> {
    crate::node::wire::token_lines(text)
        .next()
        .map(str::to_string)
}

fn query(pairs: &[(&str, String)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    let q = q.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

fn decode<T: serde::de::DeserializeOwned>(node: &str, what: &str, a: &Answer) -> BackendResult<T> {
    serde_json::from_slice(&a.body).map_err(|e| {
        BackendError::failed(
            Some(node),
            what,
            format!(
                "gfi agent pod {} answered something that is not the agent's API ({e}); is the agent's version current?",
                a.pod
            ),
        )
    })
}

#[async_trait]
impl NodeAgent for KubeAgents {
    async fn gpus(&self, node: &str) -> BackendResult<Vec<GpuInfo>> {
        const WHAT: &str = "listing GPUs";
        let a = self
            .call(node, WHAT, Method::GET, "/gpus", None, &|d| {
                agent_route_missing(node, WHAT, d)
            })
            .await?;
        let r: GpusResponse = decode(node, WHAT, &a)?;
        for w in &r.warnings {
            tracing::warn!(node, pod = %a.pod, "GPU discovery: {w}");
        }
        Ok(r.gpus.into_iter().map(GpuInfo::from).collect())
    }

    async fn inject_xid(&self, req: &InjectRequest) -> BackendResult<FaultRecord> {
        const WHAT: &str = "injecting";
        let mut body = InjectXidRequest::new(req.xid, &req.gpu, &req.line);
        body.fault_id = Some(req.fault_id.clone());
        body.node_name = Some(req.node.clone());
        body.run_id = Some(
            req.provenance
                .strip_prefix("gfi:")
                .unwrap_or(&req.provenance)
                .to_string(),
        );
        let bytes = serde_json::to_vec(&body).map_err(|e| BackendError::failed(None, WHAT, e))?;
        // The agent's 404 names the GPUs present.
        let gpu_not_found = |detail: String| BackendError::GpuNotFound {
            node: req.node.clone(),
            gpu: req.gpu.to_string(),
            available: detail,
        };
        let a = self
            .call(
                &req.node,
                WHAT,
                Method::POST,
                "/inject-xid",
                Some(bytes),
                &gpu_not_found,
            )
            .await?;
        let r: InjectXidResponse = decode(&req.node, WHAT, &a)?;
        for w in &r.warnings {
            tracing::warn!(node = %req.node, pod = %a.pod, fault_id = %req.fault_id, "{w}");
        }
        let mut rec = FaultRecord::from(r);
        rec.write_path = format!("{} (agent pod {})", rec.write_path, a.pod);
        rec.agent_pod = Some(format!("{}/{}", self.opts.namespace, a.pod));
        Ok(rec)
    }

    async fn kmsg_tail(&self, node: &str, opts: &TailOptions) -> BackendResult<Vec<KmsgRecord>> {
        const WHAT: &str = "reading the kernel log";
        let mut q = vec![("limit", opts.limit.unwrap_or(100).to_string())];
        if let Some(s) = opts.since_seq {
            q.push(("since_seq", s.to_string()));
        }
        if let Some(g) = &opts.grep {
            q.push(("grep", g.clone()));
        }
        let a = self
            .call(
                node,
                WHAT,
                Method::GET,
                &format!("/kmsg{}", query(&q)),
                None,
                &|d| agent_route_missing(node, WHAT, d),
            )
            .await?;
        let r: KmsgResponse = decode(node, WHAT, &a)?;
        Ok(r.records.into_iter().map(KmsgRecord::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_skip_comments() {
        assert_eq!(
            first_token("# rotated 2026-12-01\n\n  abc \nxyz").as_deref(),
            Some("abc")
        );
        assert_eq!(first_token("# only\n \n"), None);
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(
            query(&[("limit", "5".into()), ("grep", "Xid (PCI:0000&".into())]),
            "?limit=5&grep=Xid+%28PCI%3A0000%26"
        );
        assert_eq!(query(&[]), "");
    }
}

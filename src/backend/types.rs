//! Data that crosses the backend interface.

pub use crate::node::gpu::{GpuInfo, GpuSelector};
use crate::xid::{LineOptions, PciAddress};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// NVSentinel's label, annotation and condition names, as its quarantine, remediation and
/// platform-connector modules write them on a node.
pub mod keys {
    pub const GPU_PRESENT: &str = "nvidia.com/gpu.present";
    pub const STATE: &str = "dgxc.nvidia.com/nvsentinel-state";
    pub const CORDON_BY: &str = "k8saas.nvidia.com/cordon-by";
    pub const CORDON_REASON: &str = "k8saas.nvidia.com/cordon-reason";
    pub const CORDON_TIMESTAMP: &str = "k8saas.nvidia.com/cordon-timestamp";
    pub const UNCORDON_BY: &str = "k8saas.nvidia.com/uncordon-by";
    pub const UNCORDON_REASON: &str = "k8saas.nvidia.com/uncordon-reason";
    pub const UNCORDON_TIMESTAMP: &str = "k8saas.nvidia.com/uncordon-timestamp";
    pub const ANN_QUARANTINE_EVENT: &str = "quarantineHealthEvent";
    pub const ANN_IS_CORDONED: &str = "quarantineHealthEventIsCordoned";
    pub const ANN_APPLIED_TAINTS: &str = "quarantineHealthEventAppliedTaints";
    pub const ANN_UNCORDONED_MANUALLY: &str = "quarantinedNodeUncordonedManually";
    pub const ANN_REMEDIATION_STATE: &str = "latestFaultRemediationState";
    pub const COND_XID: &str = "SysLogsXIDError";
    pub const REASON_UNHEALTHY: &str = "SysLogsXIDErrorIsNotHealthy";
    pub const REASON_HEALTHY: &str = "SysLogsXIDErrorIsHealthy";
    pub const NVSENTINEL: &str = "NVSentinel";
    /// Set by fault-quarantine when the node was already cordoned: it never uncordons it.
    pub const ANN_CORDON_PRE_EXISTING: &str = "quarantineHealthEventCordonPreExisting";
    /// node-drainer's `systemNamespaces` default (the chart's): never drained.
    pub const SYSTEM_NAMESPACES: &str =
        "^(nvsentinel|kube-system|gpu-operator|gmp-system|network-operator|skyhook)$";
    /// Opt-out labels: fault-quarantine ignores every health event of a node with either
    /// set to `false`.
    pub const MANAGED_BY_NVSENTINEL: &str = "k8saas.nvidia.com/ManagedByNVSentinel";
    pub const MANAGED: &str = "nvsentinel.dgxc.nvidia.com/managed";
    /// The syslog-health-monitor DaemonSet runs only on nodes with this label `true`
    /// (NVSentinel's labeler sets it once the NVIDIA driver pod is Ready).
    pub const DRIVER_INSTALLED: &str = "nvsentinel.dgxc.nvidia.com/driver.installed";
}

pub type BackendResult<T> = Result<T, BackendError>;

/// What went wrong in a backend call. The kinds split in two, and the Lua API applies one
/// rule to them everywhere ([`BackendError::is_script_error`]):
/// - the script asked for something wrong (no such node or GPU, a bad argument, a call this
///   backend cannot make): the primitive raises, since retrying cannot help;
/// - the world said no (a node rebooting, an agent or the API server unreachable, a refused
///   credential or permission, throttling, any other failure on the far side): the primitive
///   returns `nil, err`, and the script decides.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("node '{node}' not found{known}")]
    NodeNotFound { node: String, known: String },
    #[error("node {node}: GPU {gpu} not found (GPUs present: {available})")]
    GpuNotFound {
        node: String,
        gpu: String,
        available: String,
    },
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{what} is not available on the {backend} backend: {why}")]
    Unsupported {
        backend: &'static str,
        what: String,
        why: String,
    },
    /// The node cannot do it now: rebooting, NotReady, no Ready agent on it.
    #[error("node {node}: {what} is not possible now: {reason}")]
    NodeUnavailable {
        node: String,
        what: String,
        reason: String,
    },
    /// A server (the API server, a node's agent) could not be reached or did not answer.
    #[error(
        "{}{what} failed: {target} is unreachable: {reason}",
        node_prefix(node)
    )]
    Unreachable {
        node: Option<String>,
        what: String,
        /// Which server, as a person finds it: `the API server at https://..`, `agent pod X`.
        target: String,
        reason: String,
    },
    /// A credential was refused (HTTP 401): a wrong agent token, an expired login.
    #[error(
        "{}{what} failed: {target} refused the credentials: {reason}",
        node_prefix(node)
    )]
    Unauthorized {
        node: Option<String>,
        what: String,
        target: String,
        reason: String,
    },
    /// A permission is missing (HTTP 403); `needs` is what to grant.
    #[error(
        "{}{what} failed: forbidden: {reason} (grant {needs}; the roles gfi needs are in deploy/base/rbac.yaml)",
        node_prefix(node)
    )]
    Forbidden {
        node: Option<String>,
        what: String,
        reason: String,
        needs: String,
    },
    /// Too many requests (HTTP 429, a rate limit): try again later.
    #[error("{}{what} was throttled: {reason}{}", node_prefix(node), retry_after.map(|d| format!(" (retry after {})", crate::duration::format(d))).unwrap_or_default())]
    Throttled {
        node: Option<String>,
        what: String,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// A node's gfi agent answered with an error status of its own (other than 401, 404 and
    /// 429, which have their kinds): a malformed or conflicting request, a body too large, a
    /// failed write, an agent not ready. Its status and detail are passed on unchanged.
    #[error("node {node}: {what} failed: gfi agent pod {pod} answered {status}: {detail}")]
    Agent {
        node: String,
        what: String,
        pod: String,
        status: u16,
        detail: String,
    },
    /// Anything else the far side did wrong.
    #[error("{}{what} failed: {reason}", node_prefix(node))]
    Failed {
        node: Option<String>,
        what: String,
        reason: String,
    },
}

fn node_prefix(node: &Option<String>) -> String {
    node.as_ref()
        .map(|n| format!("node {n}: "))
        .unwrap_or_default()
}

impl BackendError {
    pub fn failed(node: Option<&str>, what: impl Into<String>, reason: impl fmt::Display) -> Self {
        BackendError::Failed {
            node: node.map(str::to_string),
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        BackendError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub fn node_unavailable(
        node: &str,
        what: impl Into<String>,
        reason: impl fmt::Display,
    ) -> Self {
        BackendError::NodeUnavailable {
            node: node.to_string(),
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// True when the script asked for something wrong (it raises in Lua); false when the
    /// world refused (Lua gets `nil, err`). See the type's documentation.
    pub fn is_script_error(&self) -> bool {
        match self {
            BackendError::NodeNotFound { .. }
            | BackendError::GpuNotFound { .. }
            | BackendError::Invalid { .. }
            | BackendError::Unsupported { .. } => true,
            // The agent found the request wrong (4xx), or failed itself (5xx).
            BackendError::Agent { status, .. } => *status < 500,
            BackendError::NodeUnavailable { .. }
            | BackendError::Unreachable { .. }
            | BackendError::Unauthorized { .. }
            | BackendError::Forbidden { .. }
            | BackendError::Throttled { .. }
            | BackendError::Failed { .. } => false,
        }
    }

    /// A short name of the kind, for scripts and journals: `node_unavailable`, `throttled`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            BackendError::NodeNotFound { .. } => "node_not_found",
            BackendError::GpuNotFound { .. } => "gpu_not_found",
            BackendError::Invalid { .. } => "invalid",
            BackendError::Unsupported { .. } => "unsupported",
            BackendError::NodeUnavailable { .. } => "node_unavailable",
            BackendError::Unreachable { .. } => "unreachable",
            BackendError::Unauthorized { .. } => "unauthorized",
            BackendError::Forbidden { .. } => "forbidden",
            BackendError::Throttled { .. } => "throttled",
            BackendError::Agent { .. } => "agent",
            BackendError::Failed { .. } => "failed",
        }
    }

    /// The HTTP status a server (the controller) answers with when a call failed this way:
    /// the caller's mistakes are 4xx (an agent's own 4xx passes through as it was), the far
    /// side's failures 5xx (502 where the controller could not reach or was refused by the
    /// API server or an agent).
    pub fn http_status(&self) -> u16 {
        match self {
            BackendError::NodeNotFound { .. } | BackendError::GpuNotFound { .. } => 404,
            BackendError::Invalid { .. } => 400,
            BackendError::Agent { status, .. } => *status,
            BackendError::Unsupported { .. } => 501,
            BackendError::NodeUnavailable { .. } => 503,
            BackendError::Throttled { .. } => 429,
            BackendError::Unreachable { .. }
            | BackendError::Unauthorized { .. }
            | BackendError::Forbidden { .. } => 502,
            BackendError::Failed { .. } => 500,
        }
    }

    /// How long the far side asked us to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BackendError::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A not-found error that lists (a summary of) the known node names.
    pub fn node_not_found(node: &str, known: &[String]) -> Self {
        let known = if known.is_empty() {
            " (the cluster has no nodes)".to_string()
        } else {
            format!(" (known: {})", summarize(known, 6))
        };
        BackendError::NodeNotFound {
            node: node.to_string(),
            known,
        }
    }
}

/// `a, b, c, ... z (26 in all)` for long lists.
pub fn summarize(items: &[String], max: usize) -> String {
    if items.len() <= max {
        items.join(", ")
    } else {
        format!(
            "{}, ..., {} ({} in all)",
            items[..max - 1].join(", "),
            items[items.len() - 1],
            items.len()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Taint {
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    /// RFC 3339.
    pub last_transition: String,
}

/// A snapshot of one node, taken when asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub conditions: Vec<NodeCondition>,
    pub unschedulable: bool,
    pub ready: bool,
    pub boot_id: String,
}

impl NodeInfo {
    /// The `dgxc.nvidia.com/nvsentinel-state` label.
    pub fn state(&self) -> Option<&str> {
        self.labels.get(keys::STATE).map(String::as_str)
    }

    pub fn condition(&self, type_: &str) -> Option<&NodeCondition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// One line for humans: `cordoned, state=draining, SysLogsXIDError=True`.
    pub fn summary(&self) -> String {
        let mut parts = vec![if self.unschedulable {
            "cordoned".to_string()
        } else {
            "schedulable".to_string()
        }];
        if !self.ready {
            parts.push("NotReady".into());
        }
        parts.push(format!("state={}", self.state().unwrap_or("<none>")));
        if let Some(c) = self.condition(keys::COND_XID) {
            parts.push(format!("{}={}", c.type_, c.status));
        }
        parts.join(", ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub phase: String,
    /// Owner kind (`DaemonSet`, `ReplicaSet`, `Job`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Being deleted (evicted, terminating).
    pub terminating: bool,
}

impl GpuSelector {
    /// Finds the GPU, or the error that lists the GPUs present. Defined here, not with the
    /// type in `node`, because the node room cannot name `BackendError`.
    pub fn resolve<'a>(&self, node: &str, gpus: &'a [GpuInfo]) -> BackendResult<&'a GpuInfo> {
        self.find(gpus).map_err(|miss| BackendError::GpuNotFound {
            node: node.to_string(),
            gpu: miss.wanted,
            available: miss.present,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InjectRequest {
    pub node: String,
    pub gpu: GpuSelector,
    pub xid: u32,
    pub line: LineOptions,
    /// Chosen by the caller so a retried request is recognisable.
    pub fault_id: String,
    /// `name=` field default: `gfi:<run-id>`.
    pub provenance: String,
    /// Check first that NVSentinel would see the line (on a real cluster: the node is not
    /// opted out, its syslog monitor is Ready and has polled once). `false`: inject anyway.
    pub preflight: bool,
}

/// What an injection did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultRecord {
    pub id: String,
    pub node: String,
    pub gpu: u32,
    pub pci: PciAddress,
    pub uuid: String,
    pub xid: u32,
    /// The exact record written, without its trailing newline.
    pub line: String,
    /// RFC 3339 time of the write (virtual on `sim`).
    pub time: String,
    /// Kernel sequence number of the record, when read back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// How the record was written (`sim`, `/dev/kmsg via mount ns of pid 1`, ...).
    pub write_path: String,
    /// The gfi agent pod that wrote it (`namespace/name`), on the `kube` backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_pod: Option<String>,
    /// What went wrong around a successful injection (the Node Event could not be recorded).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TailOptions {
    /// Only records with a sequence number at least this.
    pub since_seq: Option<u64>,
    /// At most this many records (the newest).
    pub limit: Option<usize>,
    /// Only records whose text contains this.
    pub grep: Option<String>,
}

/// Label selector: `key=value`, `key!=value`, `key` (exists), `!key`, comma-separated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelSelector {
    pub terms: Vec<SelectorTerm>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum SelectorTerm {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
}

impl SelectorTerm {
    pub fn key(&self) -> &str {
        match self {
            SelectorTerm::Equals(k, _)
            | SelectorTerm::NotEquals(k, _)
            | SelectorTerm::Exists(k)
            | SelectorTerm::NotExists(k) => k,
        }
    }
}

impl LabelSelector {
    pub fn parse(s: &str) -> BackendResult<LabelSelector> {
        let mut terms = Vec::new();
        for raw in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let bad = |why: &str| {
                BackendError::invalid(
                    "label selector",
                    format!("'{raw}': {why} (expected key=value, key!=value, key or !key)"),
                )
            };
            let term = if let Some((k, v)) = raw.split_once("!=") {
                SelectorTerm::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = raw.split_once("==").or_else(|| raw.split_once('=')) {
                SelectorTerm::Equals(k.trim().into(), v.trim().into())
            } else if let Some(k) = raw.strip_prefix('!') {
                SelectorTerm::NotExists(k.trim().into())
            } else {
                SelectorTerm::Exists(raw.into())
            };
            let key = term.key();
            if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c == '=') {
                return Err(bad("empty or malformed key"));
            }
            terms.push(term);
        }
        Ok(LabelSelector { terms })
    }

    /// The label keys the selector reads.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(SelectorTerm::key)
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.terms.iter().all(|t| match t {
            SelectorTerm::Equals(k, v) => labels.get(k) == Some(v),
            SelectorTerm::NotEquals(k, v) => labels.get(k) != Some(v),
            SelectorTerm::Exists(k) => labels.contains_key(k),
            SelectorTerm::NotExists(k) => !labels.contains_key(k),
        })
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|t| match t {
                SelectorTerm::Equals(k, v) => format!("{k}={v}"),
                SelectorTerm::NotEquals(k, v) => format!("{k}!={v}"),
                SelectorTerm::Exists(k) => k.clone(),
                SelectorTerm::NotExists(k) => format!("!{k}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// What a wait waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodePredicate {
    Cordoned,
    Uncordoned,
    /// A node condition with this type has this status.
    Condition {
        type_: String,
        status: String,
    },
    /// The `dgxc.nvidia.com/nvsentinel-state` label has this value (`None`: absent).
    State {
        value: Option<String>,
    },
    /// The state label has any of these values.
    StateAny {
        values: Vec<String>,
    },
    /// A label has this value (`None`: absent).
    Label {
        key: String,
        value: Option<String>,
    },
    /// The boot id differs from this one.
    Rebooted {
        since_boot_id: String,
    },
    /// The node's Ready condition is (not) True.
    Ready {
        ready: bool,
    },
}

/// What a [`NodePredicate`] reads of a node: a [`NodeInfo`], or a backend's own record of the
/// node, so a wait can test each change without copying the node's every label first.
pub trait NodeView {
    fn unschedulable(&self) -> bool;
    fn ready(&self) -> bool;
    fn boot_id(&self) -> &str;
    fn label(&self, key: &str) -> Option<&str>;
    /// The status of the condition of this type, if the node has one.
    fn condition_status(&self, type_: &str) -> Option<&str>;
}

impl NodeView for NodeInfo {
    fn unschedulable(&self) -> bool {
        self.unschedulable
    }
    fn ready(&self) -> bool {
        self.ready
    }
    fn boot_id(&self) -> &str {
        &self.boot_id
    }
    fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
    fn condition_status(&self, type_: &str) -> Option<&str> {
        self.condition(type_).map(|c| c.status.as_str())
    }
}

impl NodePredicate {
    pub fn holds(&self, n: &impl NodeView) -> bool {
        match self {
            NodePredicate::Cordoned => n.unschedulable(),
            NodePredicate::Uncordoned => !n.unschedulable(),
            NodePredicate::Condition { type_, status } => n
                .condition_status(type_)
                .is_some_and(|s| s.eq_ignore_ascii_case(status)),
            NodePredicate::State { value } => n.label(keys::STATE) == value.as_deref(),
            NodePredicate::StateAny { values } => n
                .label(keys::STATE)
                .is_some_and(|s| values.iter().any(|v| v == s)),
            NodePredicate::Label { key, value } => n.label(key) == value.as_deref(),
            NodePredicate::Rebooted { since_boot_id } => n.boot_id() != since_boot_id,
            NodePredicate::Ready { ready } => n.ready() == *ready,
        }
    }

    /// `cordoned`, `state=draining`, `condition SysLogsXIDError=True`, ...
    pub fn describe(&self) -> String {
        match self {
            NodePredicate::Cordoned => "cordoned".into(),
            NodePredicate::Uncordoned => "uncordoned".into(),
            NodePredicate::Condition { type_, status } => format!("condition {type_}={status}"),
            NodePredicate::State { value: Some(v) } => format!("state={v}"),
            NodePredicate::State { value: None } => "state label removed".into(),
            NodePredicate::StateAny { values } => format!("state in [{}]", values.join(", ")),
            NodePredicate::Label {
                key,
                value: Some(v),
            } => format!("label {key}={v}"),
            NodePredicate::Label { key, value: None } => format!("label {key} removed"),
            NodePredicate::Rebooted { .. } => "rebooted".into(),
            NodePredicate::Ready { ready: true } => "Ready".into(),
            NodePredicate::Ready { ready: false } => "NotReady".into(),
        }
    }
}

/// What a wait saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitOutcome {
    pub satisfied: bool,
    /// The last observation of the node.
    pub node: NodeInfo,
    #[serde(serialize_with = "ser_secs")]
    pub elapsed: Duration,
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// A Kubernetes Event about a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubeEventInfo {
    pub namespace: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub source: String,
    pub time: String,
    /// How many times it happened (`count`: repeats bump it).
    pub count: u32,
}

/// A wait's window: where it measures from and what it counts as new. A Kubernetes backend
/// compares `since` with an object's `creationTimestamp` (a RebootNode) or an event's time (a
/// pod's deletion); `None` means "from the call".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WaitSince {
    /// Usually the injection's time (`FaultRecord::time`).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

/// One condition of a maintenance CR (`RebootNode`, `TerminateNode`), as its status holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrConditionInfo {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    /// `lastTransitionTime`, RFC 3339.
    pub time: String,
}

/// A maintenance CR of NVSentinel's janitor (`janitor.dgxc.nvidia.com/v1alpha1`), as plain
/// data: what a watch on RebootNodes gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaintenanceInfo {
    /// `RebootNode` or `TerminateNode`.
    pub kind: String,
    pub name: String,
    /// `spec.nodeName`.
    pub node: String,
    /// `metadata.creationTimestamp`, RFC 3339.
    pub created: String,
    /// `status.startTime` / `status.completionTime`, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    pub conditions: Vec<CrConditionInfo>,
}

impl MaintenanceInfo {
    /// The janitor is done with it: `completionTime` set, or a terminal condition
    /// (`NodeReady`/`NodeTerminated` True, or False with `Timeout`/`Failed`).
    pub fn completed(&self) -> bool {
        self.completion_time.is_some()
    }

    /// Completed and the node came back (`NodeReady=True`) or was terminated.
    pub fn succeeded(&self) -> bool {
        self.completed()
            && self.conditions.iter().any(|c| {
                (c.type_ == "NodeReady" || c.type_ == "NodeTerminated") && c.status == "True"
            })
    }

    pub fn condition(&self, type_: &str) -> Option<&CrConditionInfo> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// What `wait_remediation` saw: the node's newest RebootNode created in the window.
/// A timeout is not an error: `satisfied` is false and `cr` says how far it got (`None`: no
/// RebootNode appeared).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemediationOutcome {
    pub satisfied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cr: Option<MaintenanceInfo>,
}

/// A pod that left a node, and how: `evicted`, `force-deleted`, `completed`, or `gone` where
/// the backend cannot tell (a Kubernetes watch sees a deletion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodGone {
    pub namespace: String,
    pub name: String,
    pub how: String,
    /// RFC 3339.
    pub time: String,
}

/// Which pods `wait_drained` waits for: those of the namespaces NVSentinel's node-drainer
/// drains (its `userNamespaces`, minus `systemNamespaces`, minus DaemonSet pods), or the
/// namespaces named here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainScope {
    pub namespaces: Option<Vec<String>>,
}

/// What `wait_drained` saw. A timeout is not an error: `satisfied` is false and `remaining`
/// lists the pods still there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrainOutcome {
    pub satisfied: bool,
    /// Pods of the drained namespaces that left the node within the window, oldest first.
    pub evicted: Vec<PodGone>,
    /// Pods of the drained namespaces still on the node.
    pub remaining: Vec<PodInfo>,
}

/// What `heal` changed on a node, so a script (and its journal) can say it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealReport {
    /// The node was cordoned and is not any more.
    pub uncordoned: bool,
    pub removed_labels: Vec<String>,
    pub removed_annotations: Vec<String>,
    pub removed_taints: Vec<Taint>,
    /// What heal leaves to NVSentinel, in words (the condition, the CRs).
    pub left: Vec<String>,
    pub node: NodeInfo,
}

/// NVSentinel's circuit breaker state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakerStatus {
    /// Whether NVSentinel's breaker is switched on; `None` where the cluster does not show it
    /// (a real cluster: the setting is a Helm value, not an object gfi can read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `CLOSED` or `TRIPPED`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let mut labels = BTreeMap::new();
        labels.insert("nvidia.com/gpu.present".to_string(), "true".to_string());
        labels.insert("zone".to_string(), "a".to_string());
        let yes = [
            "nvidia.com/gpu.present=true",
            "zone",
            "zone!=b,!missing",
            "",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).unwrap().matches(&labels), "{s}");
        }
        for s in ["zone=b", "missing", "!zone"] {
            assert!(!LabelSelector::parse(s).unwrap().matches(&labels), "{s}");
        }
        assert!(LabelSelector::parse("=x").is_err());
    }

    #[test]
    fn the_script_errs_or_the_world_refuses() {
        let script = [
            BackendError::node_not_found("x", &[]),
            BackendError::invalid("line", "empty"),
            BackendError::Unsupported {
                backend: "local",
                what: "pods".into(),
                why: "no API".into(),
            },
        ];
        for e in &script {
            assert!(e.is_script_error(), "{e}");
        }
        let world = [
            BackendError::node_unavailable("n1", "injection", "rebooting"),
            BackendError::failed(Some("n1"), "GPU discovery", "no /proc"),
            BackendError::Throttled {
                node: None,
                what: "listing nodes".into(),
                reason: "too many requests".into(),
                retry_after: Some(Duration::from_secs(3)),
            },
        ];
        for e in &world {
            assert!(!e.is_script_error(), "{e}");
        }
        assert_eq!(world[2].retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(
            world[2].to_string(),
            "listing nodes was throttled: too many requests (retry after 3s)"
        );
        assert_eq!(
            world[0].to_string(),
            "node n1: injection is not possible now: rebooting"
        );
    }

    #[test]
    fn each_kind_has_its_http_status() {
        let agent = |status| BackendError::Agent {
            node: "n1".into(),
            what: "injecting".into(),
            pod: "ns/agent-1".into(),
            status,
            detail: "fault_id x was already used".into(),
        };
        let cases = [
            (BackendError::node_not_found("x", &[]), 404),
            (
                BackendError::GpuNotFound {
                    node: "n1".into(),
                    gpu: "9".into(),
                    available: "0-7".into(),
                },
                404,
            ),
            (BackendError::invalid("line", "empty"), 400),
            (agent(409), 409),
            (agent(503), 503),
            (
                BackendError::Unsupported {
                    backend: "local",
                    what: "pods".into(),
                    why: "no API".into(),
                },
                501,
            ),
            (
                BackendError::node_unavailable("n1", "injection", "rebooting"),
                503,
            ),
            (
                BackendError::Throttled {
                    node: None,
                    what: "x".into(),
                    reason: "y".into(),
                    retry_after: None,
                },
                429,
            ),
            (
                BackendError::Unreachable {
                    node: None,
                    what: "x".into(),
                    target: "t".into(),
                    reason: "r".into(),
                },
                502,
            ),
            (
                BackendError::Forbidden {
                    node: None,
                    what: "x".into(),
                    reason: "r".into(),
                    needs: "n".into(),
                },
                502,
            ),
            (BackendError::failed(None, "x", "y"), 500),
        ];
        for (e, status) in cases {
            assert_eq!(e.http_status(), status, "{e}");
        }
        // An agent's refusal is the script's mistake; its own failure is the world's.
        assert!(agent(409).is_script_error());
        assert!(!agent(500).is_script_error());
        assert_eq!(
            agent(409).to_string(),
            "node n1: injecting failed: gfi agent pod ns/agent-1 answered 409: fault_id x was already used"
        );
    }

    #[test]
    fn summaries() {
        let names: Vec<String> = (1..=20).map(|i| format!("n{i}")).collect();
        assert_eq!(summarize(&names, 4), "n1, n2, n3, ..., n20 (20 in all)");
    }
}

//! The central API's fault records: what `GET /api/v1/faults` lists. A record carries the seed's
//! tracker fields (`id`, `type`, `target`, `status`, `created_at`, `injected_at`,
//! `recovered_at`, `details`), the seed's injection answer (`fault_id`, `fault_type`,
//! `message`), and what gfi knows besides (the GPU's PCI address, the line written, its kernel
//! sequence number, the agent pod, who asked).

use crate::backend::FaultRecord;
use crate::xid::catalog;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultStatus {
    /// Asked of the node's agent, no answer yet. Kept before the call, so a controller that
    /// dies mid-injection leaves a record of it.
    Injecting,
    /// The controller stopped while the injection was `injecting`: whether the line was
    /// written is unknown (`error` says where to look).
    Interrupted,
    /// The line is in the node's kernel log.
    Injected,
    /// The injection failed (`error` says why); nothing was written.
    Failed,
    /// The node was healed through `recover`, or found back to normal by it.
    Recovered,
}

impl FaultStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultStatus::Injecting => "injecting",
            FaultStatus::Interrupted => "interrupted",
            FaultStatus::Injected => "injected",
            FaultStatus::Failed => "failed",
            FaultStatus::Recovered => "recovered",
        }
    }

    /// What `?active_only=true` lists (the seed: pending, injected, active).
    pub fn is_active(self) -> bool {
        matches!(self, FaultStatus::Injecting | FaultStatus::Injected)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub id: String,
    /// `gpu_xid_79`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `gpu-node-001/gpu0`.
    pub target: String,
    pub status: FaultStatus,
    pub created_at: String,
    pub injected_at: Option<String>,
    pub recovered_at: Option<String>,
    pub details: FaultDetails,
    /// The seed's answer fields (`fault_id` is `id`, `fault_type` is `type`).
    pub fault_id: String,
    pub fault_type: String,
    pub message: String,
    pub node_name: String,
    pub gpu_id: u32,
    pub xid: u32,
    /// The token (or `anonymous`) that asked for it.
    pub requested_by: String,
    /// The GPU's PCI address as the line names it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pci: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gpu_uuid: Option<String>,
    /// The kernel log record written, without its newline.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kmsg_seq: Option<u64>,
    /// `namespace/name` of the gfi agent pod that wrote it (kube).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub agent_pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub write_path: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub warnings: Vec<String>,
    /// Why the injection failed, and the HTTP status it was answered with.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// What the last `recover` found and did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub recovery: Option<Value>,
}

/// The seed's `details` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultDetails {
    pub xid_code: u32,
    pub xid_name: String,
    pub gpu_id: u32,
    pub duration: Option<f64>,
}

/// `gpu_xid_79-1a2b3c4d`: the seed's form, eight random hex digits.
pub fn new_fault_id(xid: u32) -> String {
    let mut b = [0u8; 4];
    rand::fill(&mut b);
    format!(
        "gpu_xid_{xid}-{:02x}{:02x}{:02x}{:02x}",
        b[0], b[1], b[2], b[3]
    )
}

/// The XID's name as the seed's `details.xid_name` and the XID list give it.
pub fn xid_name(xid: u32) -> String {
    let info = catalog::lookup_or_generic(xid);
    if info.description.is_empty() {
        info.mnemonic.clone()
    } else {
        info.description.clone()
    }
}

impl Fault {
    /// A record for an injection about to be made.
    pub fn new(
        id: String,
        node: &str,
        gpu_id: u32,
        xid: u32,
        duration: Option<f64>,
        requested_by: &str,
        now: String,
    ) -> Fault {
        Fault {
            fault_id: id.clone(),
            id,
            kind: format!("gpu_xid_{xid}"),
            fault_type: format!("gpu_xid_{xid}"),
            target: format!("{node}/gpu{gpu_id}"),
            status: FaultStatus::Injecting,
            created_at: now,
            injected_at: None,
            recovered_at: None,
            details: FaultDetails {
                xid_code: xid,
                xid_name: xid_name(xid),
                gpu_id,
                duration,
            },
            message: format!("XID {xid} injection under way on {node} GPU {gpu_id}"),
            node_name: node.to_string(),
            gpu_id,
            xid,
            requested_by: requested_by.to_string(),
            pci: None,
            gpu_uuid: None,
            line: None,
            kmsg_seq: None,
            agent_pod: None,
            write_path: None,
            warnings: Vec::new(),
            error: None,
            recovery: None,
        }
    }

    /// The injection landed: what the backend reported.
    pub fn injected(&mut self, rec: &FaultRecord) {
        self.status = FaultStatus::Injected;
        self.injected_at = Some(rec.time.clone());
        self.message = format!(
            "XID {} injected for GPU {} (PCI: {}) → NVSentinel",
            rec.xid, rec.gpu, rec.pci
        );
        self.pci = Some(rec.pci.to_string());
        self.gpu_uuid = Some(rec.uuid.clone()).filter(|u| !u.is_empty());
        self.line = Some(rec.line.clone());
        self.kmsg_seq = rec.seq;
        self.agent_pod = rec.agent_pod.clone();
        self.write_path = Some(rec.write_path.clone());
        self.warnings.extend(rec.warnings.iter().cloned());
    }

    /// Found `injecting` by a controller starting up: its predecessor stopped mid-call.
    pub fn interrupted(&mut self, at: &str) {
        self.status = FaultStatus::Interrupted;
        self.message = format!(
            "XID {} injection interrupted: the controller stopped before the agent answered",
            self.xid
        );
        self.error = Some(format!(
            "the controller stopped while this injection was under way and was started again at {at}; whether the line was written is unknown: look for fault_id {} in the kernel log of {} (kmsg_tail in a plan), or ask its gfi agent (GET /faults/{})",
            self.id, self.node_name, self.id
        ));
    }

    pub fn failed(&mut self, status: u16, error: &str) {
        self.status = FaultStatus::Failed;
        self.message = format!("Failed to inject XID {}: {error}", self.xid);
        self.error = Some(format!("{status}: {error}"));
    }

    /// The seed's answer to an injection: its six fields first, in its order, then gfi's.
    pub fn answer(&self) -> Answer<'_> {
        Answer {
            fault_id: &self.id,
            status: self.status,
            fault_type: &self.fault_type,
            target: &self.target,
            injected_at: self.injected_at.as_deref(),
            message: &self.message,
            node_name: &self.node_name,
            gpu_id: self.gpu_id,
            xid: self.xid,
            xid_name: &self.details.xid_name,
            pci: self.pci.as_deref(),
            gpu_uuid: self.gpu_uuid.as_deref(),
            line: self.line.as_deref(),
            kmsg_seq: self.kmsg_seq,
            agent_pod: self.agent_pod.as_deref(),
            write_path: self.write_path.as_deref(),
            warnings: &self.warnings,
            requested_by: &self.requested_by,
        }
    }
}

/// `POST /api/v1/faults/gpu/inject/xid-{N}`'s answer.
#[derive(Debug, Serialize)]
pub struct Answer<'a> {
    pub fault_id: &'a str,
    pub status: FaultStatus,
    pub fault_type: &'a str,
    pub target: &'a str,
    pub injected_at: Option<&'a str>,
    pub message: &'a str,
    pub node_name: &'a str,
    pub gpu_id: u32,
    pub xid: u32,
    pub xid_name: &'a str,
    pub pci: Option<&'a str>,
    pub gpu_uuid: Option<&'a str>,
    pub line: Option<&'a str>,
    pub kmsg_seq: Option<u64>,
    pub agent_pod: Option<&'a str>,
    pub write_path: Option<&'a str>,
    pub warnings: &'a [String],
    pub requested_by: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_seeds_form() {
        let id = new_fault_id(79);
        let re = regex::Regex::new(r"^gpu_xid_79-[0-9a-f]{8}$").unwrap();
        assert!(re.is_match(&id), "{id}");
        assert_ne!(new_fault_id(79), new_fault_id(79));
    }

    #[test]
    fn the_answer_starts_with_the_seeds_fields() {
        let f = Fault::new(
            "gpu_xid_79-00000000".into(),
            "gpu-node-001",
            0,
            79,
            None,
            "anonymous",
            "2026-12-06T00:00:00.000Z".into(),
        );
        let text = serde_json::to_string(&f.answer()).unwrap();
        assert!(
            text.starts_with(r#"{"fault_id":"gpu_xid_79-00000000","status":"injecting","fault_type":"gpu_xid_79","target":"gpu-node-001/gpu0","injected_at":null,"message":"#),
            "{text}"
        );
        let a: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(a["fault_type"], "gpu_xid_79");
        let back: Fault = serde_json::from_value(serde_json::to_value(&f).unwrap()).unwrap();
        assert_eq!(back, f);
        assert_eq!(serde_json::to_value(&f).unwrap()["type"], "gpu_xid_79");
    }
}

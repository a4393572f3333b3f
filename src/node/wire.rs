//! The bodies of the agent's HTTP API, as owned serde types: the agent's server writes them and
//! a client (the coming kube backend, which lives in `backend` and may not import `agent`)
//! reads them. They sit in the node room because both sides already depend on it.
//!
//! The JSON must stay what the seed's clients and the records already on disk expect: the same
//! field names, `null` where a value is absent (nothing is skipped unless the server always
//! skipped it), and the same order. `POST /inject-xid` answers in the order the seed's
//! agent wrote (its fields first, then ours); the other bodies used to be built as
//! `serde_json::Value` maps, which sort their keys, so their fields are declared in
//! alphabetical order to keep every byte.
//!
//! `POST /inject-xid`'s request body has a client type here too, [`InjectXidRequest`]; the
//! server does not decode it with serde but with its own lax decoder (integers as strings, an
//! error per field in FastAPI's shape), which accepts everything this type writes.

use super::gpu::{GpuInfo, GpuSelector};
use super::readback;
use super::writer::TargetKind;
use crate::kmsg::KmsgRecord;
use crate::xid::PciAddress;
use crate::xid::catalog::Action;
use crate::xid::line::{LineOptions, LineStyle};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /inject-xid`, as a client sends it. Absent fields are left out, so the agent applies
/// its defaults (GPU 0, the driver's line style, a fault id of its choosing).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InjectXidRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_id: Option<String>,
    pub xid_type: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_uuid: Option<String>,
    /// Any form [`PciAddress`] parses; sent as nvidia-smi's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_pci: Option<PciAddress>,
    /// Seconds; recorded, without effect (an XID line cannot be taken back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// The node the caller means; the agent refuses a request for another node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<LineStyle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<u8>,
    /// Names the run in the line's `name=gfi:<run_id>` marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

impl InjectXidRequest {
    /// A request for `xid` on the GPU `gpu` names, with the line shaped by `line`.
    pub fn new(xid: u32, gpu: &GpuSelector, line: &LineOptions) -> Self {
        let mut r = InjectXidRequest {
            xid_type: xid,
            style: Some(line.style),
            text: line.text.clone(),
            pid: line.pid,
            process_name: line.process_name.clone(),
            channel: line.channel,
            level: line.level,
            ..Default::default()
        };
        match gpu {
            GpuSelector::Index(i) => r.gpu_id = Some(*i),
            GpuSelector::Pci(p) => r.gpu_pci = Some(*p),
            GpuSelector::Uuid(u) => r.gpu_uuid = Some(u.clone()),
        }
        r
    }
}

/// `POST /inject-xid`'s answer when the line landed (also what `GET /faults/{id}` replays).
/// The seed's fields come first, in the seed's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InjectXidResponse {
    /// Always `injected`.
    pub status: String,
    pub node: String,
    pub fault_id: String,
    pub xid_type: u32,
    pub gpu_id: u32,
    pub message: String,
    /// RFC 3339 with microseconds and `+00:00`, as the seed writes it.
    pub timestamp: String,
    pub pci: PciAddress,
    /// The procfs directory name, `0000:18:00.0`.
    pub pci_bus_id: String,
    pub gpu_uuid: String,
    pub gpu_model: String,
    /// The record written, without its newline.
    pub line: String,
    pub style: LineStyle,
    /// `null` when the record could not be read back.
    pub kmsg_seq: Option<u64>,
    pub kmsg_usec: Option<u64>,
    pub target: TargetKind,
    pub write_path: String,
    pub readback: String,
    pub xid_name: String,
    pub xid_description: String,
    pub nvsentinel_action: Action,
    pub fatal: bool,
    pub duration: Option<f64>,
    pub warnings: Vec<String>,
}

/// Every error: `{"detail": ...}`, FastAPI's shape, which the seed's clients read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub detail: Detail,
}

/// A sentence, or (for a body that does not validate, 422) one entry per field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Detail {
    Message(String),
    Fields(Vec<FieldError>),
}

impl From<String> for Detail {
    fn from(s: String) -> Self {
        Detail::Message(s)
    }
}

impl From<&str> for Detail {
    fn from(s: &str) -> Self {
        Detail::Message(s.to_string())
    }
}

impl From<Vec<FieldError>> for Detail {
    fn from(f: Vec<FieldError>) -> Self {
        Detail::Fields(f)
    }
}

/// One FastAPI-style validation error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Where: `["body", "<field>"]`, or `["body", <column>]` for JSON that does not parse.
    pub loc: Vec<Value>,
    pub msg: String,
    /// pydantic's error type: `missing`, `int_type`, `value_error`, ...
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    /// An error about the body field `field`.
    pub fn new(kind: &str, field: &str, msg: impl Into<String>) -> Self {
        FieldError {
            loc: vec![Value::from("body"), Value::from(field)],
            msg: msg.into(),
            kind: kind.to_string(),
        }
    }
}

/// `GET /gpus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpusResponse {
    pub count: usize,
    pub gpus: Vec<GpuEntry>,
    pub node: String,
    /// Where the agent reads the driver's tree (`/host/proc` in its pod).
    pub proc_root: String,
    /// GPU directories that could not be read.
    pub warnings: Vec<String>,
}

/// One GPU in `GET /gpus`, its address in the three forms clients compare against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuEntry {
    pub index: u32,
    pub model: String,
    /// nvidia-smi's form, `00000000:18:00.0`.
    pub pci: PciAddress,
    /// The procfs directory name, `0000:18:00.0`.
    pub pci_bus_id: String,
    /// As the driver's XID lines print it, `0000:18:00`.
    pub pci_driver: String,
    pub uuid: String,
}

impl From<&GpuInfo> for GpuEntry {
    fn from(g: &GpuInfo) -> Self {
        GpuEntry {
            index: g.index,
            model: g.model.clone(),
            pci: g.pci,
            pci_bus_id: g.pci.sysfs(),
            pci_driver: g.pci.driver(),
            uuid: g.uuid.clone(),
        }
    }
}

impl From<GpuEntry> for GpuInfo {
    fn from(g: GpuEntry) -> Self {
        GpuInfo {
            index: g.index,
            pci: g.pci,
            uuid: g.uuid,
            model: g.model,
        }
    }
}

/// `GET /kmsg`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsgResponse {
    pub count: usize,
    pub node: String,
    pub records: Vec<KmsgEntry>,
    /// The agent's write path, whose log the records come from.
    pub source: String,
}

/// One kernel log record in `GET /kmsg`, and one line of `GET /kmsg?follow=true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsgEntry {
    pub facility: u8,
    pub level: u8,
    /// Present only when NVSentinel's pattern matches the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvsentinel: Option<NvsentinelMatch>,
    pub seq: u64,
    pub text: String,
    pub usec: u64,
}

/// What NVSentinel would read from a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NvsentinelMatch {
    /// The PCI text as the line has it.
    pub pci: String,
    pub xid: u32,
}

impl From<&KmsgRecord> for KmsgEntry {
    fn from(r: &KmsgRecord) -> Self {
        KmsgEntry {
            facility: r.facility,
            level: r.level,
            nvsentinel: readback::nvsentinel_match(r).map(|m| NvsentinelMatch {
                pci: m.pci_text,
                xid: m.xid,
            }),
            seq: r.seq,
            text: r.text.clone(),
            usec: r.usec,
        }
    }
}

/// The tokens of an agent token file: one per line, blank and `#` lines skipped. The agent
/// reads its `--token-file` this way, and the kube backend its `--agent-token-file` and Secret.
pub fn token_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    /// Serialises, checks the text, decodes it and checks the value survived.
    fn round_trip<T>(v: &T, text: &str)
    where
        T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let written = serde_json::to_string(v).unwrap();
        assert_eq!(written, text);
        let back: T = serde_json::from_str(&written).unwrap();
        assert_eq!(&back, v);
    }

    fn pci() -> PciAddress {
        PciAddress::new(0, 0x18, 0, 0)
    }

    #[test]
    fn inject_request_round_trips_and_leaves_out_what_is_unset() {
        let line = LineOptions {
            pid: Some(42),
            ..LineOptions::default()
        };
        let mut r = InjectXidRequest::new(79, &GpuSelector::Pci(pci()), &line);
        r.fault_id = Some("f-1".into());
        round_trip(
            &r,
            r#"{"fault_id":"f-1","xid_type":79,"gpu_pci":"00000000:18:00.0","style":"driver","pid":42}"#,
        );
        let bare = InjectXidRequest {
            xid_type: 48,
            ..Default::default()
        };
        round_trip(&bare, r#"{"xid_type":48}"#);
        let r = InjectXidRequest::new(13, &GpuSelector::Uuid("GPU-1".into()), &line);
        assert_eq!(r.gpu_uuid.as_deref(), Some("GPU-1"));
        assert_eq!(r.gpu_id, None);
    }

    #[test]
    fn inject_response_round_trips_in_the_seeds_order() {
        let r = InjectXidResponse {
            status: "injected".into(),
            node: "gpu-node-001".into(),
            fault_id: "test-001".into(),
            xid_type: 79,
            gpu_id: 0,
            message: "XID 79 injected for GPU 0 (PCI: 0000:18:00.0) → NVSentinel".into(),
            timestamp: "2026-11-28T10:26:54.202831+00:00".into(),
            pci: pci(),
            pci_bus_id: "0000:18:00.0".into(),
            gpu_uuid: "GPU-0".into(),
            gpu_model: "NVIDIA H100 80GB HBM3".into(),
            line: "<3>NVRM: ...".into(),
            style: LineStyle::Seed,
            kmsg_seq: None,
            kmsg_usec: Some(5),
            target: TargetKind::KmsgDevice,
            write_path: "/dev/kmsg".into(),
            readback: "read back".into(),
            xid_name: "GPU_HAS_FALLEN_OFF_THE_BUS".into(),
            xid_description: "GPU has fallen off the bus".into(),
            nvsentinel_action: Action::RestartVm,
            fatal: true,
            duration: Some(1.5),
            warnings: vec![],
        };
        round_trip(
            &r,
            concat!(
                r#"{"status":"injected","node":"gpu-node-001","fault_id":"test-001","xid_type":79,"gpu_id":0,"#,
                r#""message":"XID 79 injected for GPU 0 (PCI: 0000:18:00.0) → NVSentinel","#,
                r#""timestamp":"2026-11-28T10:26:54.202831+00:00","pci":"00000000:18:00.0","#,
                r#""pci_bus_id":"0000:18:00.0","gpu_uuid":"GPU-0","gpu_model":"NVIDIA H100 80GB HBM3","#,
                r#""line":"<3>NVRM: ...","style":"seed","kmsg_seq":null,"kmsg_usec":5,"#,
                r#""target":"kmsg_device","write_path":"/dev/kmsg","readback":"read back","#,
                r#""xid_name":"GPU_HAS_FALLEN_OFF_THE_BUS","xid_description":"GPU has fallen off the bus","#,
                r#""nvsentinel_action":"RESTART_VM","fatal":true,"duration":1.5,"warnings":[]}"#
            ),
        );
    }

    #[test]
    fn error_bodies_round_trip_as_a_sentence_or_a_field_list() {
        round_trip(
            &ErrorBody {
                detail: "Not Found".into(),
            },
            r#"{"detail":"Not Found"}"#,
        );
        round_trip(
            &ErrorBody {
                detail: vec![FieldError::new("missing", "xid_type", "Field required")].into(),
            },
            r#"{"detail":[{"loc":["body","xid_type"],"msg":"Field required","type":"missing"}]}"#,
        );
    }

    #[test]
    fn gpus_round_trip_and_convert_both_ways() {
        let info = GpuInfo {
            index: 2,
            pci: PciAddress::new(0, 0x1a, 0, 0),
            uuid: "GPU-2".into(),
            model: "H100".into(),
        };
        let r = GpusResponse {
            count: 1,
            gpus: vec![GpuEntry::from(&info)],
            node: "n".into(),
            proc_root: "/host/proc".into(),
            warnings: vec!["w".into()],
        };
        round_trip(
            &r,
            concat!(
                r#"{"count":1,"gpus":[{"index":2,"model":"H100","pci":"00000000:1A:00.0","#,
                r#""pci_bus_id":"0000:1a:00.0","pci_driver":"0000:1a:00","uuid":"GPU-2"}],"#,
                r#""node":"n","proc_root":"/host/proc","warnings":["w"]}"#
            ),
        );
        assert_eq!(GpuInfo::from(r.gpus[0].clone()), info);
    }

    #[test]
    fn kmsg_records_round_trip_with_and_without_a_match() {
        let rec = |text: &str| KmsgRecord {
            facility: 0,
            level: 3,
            seq: 7,
            usec: 9,
            flags: '-',
            extra: vec![],
            text: text.into(),
            dict: vec![],
        };
        let xid = KmsgEntry::from(&rec(
            "NVRM: NVRM: Xid (PCI:0000:18:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.",
        ));
        assert_eq!(
            xid.nvsentinel,
            Some(NvsentinelMatch {
                pci: "0000:18:00".into(),
                xid: 79
            })
        );
        let plain = KmsgEntry::from(&rec("hello"));
        round_trip(
            &KmsgResponse {
                count: 1,
                node: "n".into(),
                records: vec![plain],
                source: "/dev/kmsg".into(),
            },
            r#"{"count":1,"node":"n","records":[{"facility":0,"level":3,"seq":7,"text":"hello","usec":9}],"source":"/dev/kmsg"}"#,
        );
        let line = serde_json::to_string(&xid).unwrap();
        assert!(
            line.contains(r#""level":3,"nvsentinel":{"pci":"0000:18:00","xid":79},"seq":7"#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<KmsgEntry>(&line).unwrap(), xid);
    }
}

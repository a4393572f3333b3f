//! The agent's HTTP bodies ([`crate::node::wire`]) as a backend sees them: what an answer to
//! `POST /inject-xid` means as a [`FaultRecord`]. Here and not in `node`, because `node` must
//! not know the backend's types; the kube backend's HTTP client will read the agents through it.

use super::FaultRecord;
use crate::kmsg::KmsgRecord;
use crate::node::wire::{InjectXidResponse, KmsgEntry};

/// A record of `GET /kmsg` as the `local` backend would have read it itself (the agent does
/// not send the header's flags and extra fields).
impl From<KmsgEntry> for KmsgRecord {
    fn from(e: KmsgEntry) -> KmsgRecord {
        KmsgRecord {
            facility: e.facility,
            level: e.level,
            seq: e.seq,
            usec: e.usec,
            flags: '-',
            extra: Vec::new(),
            text: e.text,
            dict: Vec::new(),
        }
    }
}

/// The fault record of an injection an agent answered for: the same fields the `local`
/// backend fills from its own injection.
impl From<InjectXidResponse> for FaultRecord {
    fn from(r: InjectXidResponse) -> FaultRecord {
        FaultRecord {
            id: r.fault_id,
            node: r.node,
            gpu: r.gpu_id,
            pci: r.pci,
            uuid: r.gpu_uuid,
            xid: r.xid_type,
            line: r.line,
            time: r.timestamp,
            seq: r.kmsg_seq,
            write_path: r.write_path,
            agent_pod: None,
            warnings: r.warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::writer::TargetKind;
    use crate::xid::catalog::Action;
    use crate::xid::{LineStyle, PciAddress};

    #[test]
    fn an_answer_maps_field_by_field() {
        let answer = InjectXidResponse {
            status: "injected".into(),
            node: "gpu-node-001".into(),
            fault_id: "f-1".into(),
            xid_type: 79,
            gpu_id: 1,
            message: "XID 79 injected for GPU 1 (PCI: 0000:19:00.0) → NVSentinel".into(),
            timestamp: "2026-11-28T10:26:54.202831+00:00".into(),
            pci: PciAddress::new(0, 0x19, 0, 0),
            pci_bus_id: "0000:19:00.0".into(),
            gpu_uuid: "GPU-1".into(),
            gpu_model: "H100".into(),
            line: "<3>NVRM: NVRM: Xid (PCI:0000:19:00): 79, ...".into(),
            style: LineStyle::Driver,
            kmsg_seq: Some(12),
            kmsg_usec: Some(34),
            target: TargetKind::KmsgDevice,
            write_path: "/dev/kmsg via mount ns of pid 1".into(),
            readback: "read back".into(),
            xid_name: "GPU_HAS_FALLEN_OFF_THE_BUS".into(),
            xid_description: "GPU has fallen off the bus".into(),
            nvsentinel_action: Action::RestartVm,
            fatal: true,
            duration: None,
            warnings: vec![],
        };
        assert_eq!(
            FaultRecord::from(answer),
            FaultRecord {
                id: "f-1".into(),
                node: "gpu-node-001".into(),
                gpu: 1,
                pci: PciAddress::new(0, 0x19, 0, 0),
                uuid: "GPU-1".into(),
                xid: 79,
                line: "<3>NVRM: NVRM: Xid (PCI:0000:19:00): 79, ...".into(),
                time: "2026-11-28T10:26:54.202831+00:00".into(),
                seq: Some(12),
                write_path: "/dev/kmsg via mount ns of pid 1".into(),
                agent_pod: None,
                warnings: vec![],
            }
        );
    }
}

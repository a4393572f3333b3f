//! A GPU as the node sees it, and the three ways a caller names one.
//!
//! These live in the node room, not in `backend`, because discovery and injection on a node
//! produce and consume them while knowing nothing of clusters; `backend` re-exports them, so
//! scripts and backends keep naming them through it.

use crate::xid::PciAddress;
use serde::Serialize;
use std::fmt;

/// One GPU from the driver's tree: its index is the driver's `Device Minor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuInfo {
    pub index: u32,
    pub pci: PciAddress,
    pub uuid: String,
    pub model: String,
}

/// Which GPU of a node: its index (`Device Minor`), PCI address or UUID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuSelector {
    Index(u32),
    Pci(PciAddress),
    Uuid(String),
}

/// No GPU matched a selector; holds what an error message needs to list the GPUs present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GpuNotFound {
    /// The selector as given.
    pub(crate) wanted: String,
    /// The indices present, `0, 1, 2`: the seed's "Available Device Minors".
    pub(crate) minors: String,
    /// `0 (0000:18:00.0), 1 (...)`, or `none`.
    pub(crate) present: String,
}

impl GpuSelector {
    pub fn matches(&self, gpu: &GpuInfo) -> bool {
        match self {
            GpuSelector::Index(i) => gpu.index == *i,
            GpuSelector::Pci(p) => gpu.pci.same_device(p),
            GpuSelector::Uuid(u) => gpu.uuid.eq_ignore_ascii_case(u),
        }
    }

    /// The GPU this selector names among `gpus`, or what is there instead.
    pub(crate) fn find<'a>(&self, gpus: &'a [GpuInfo]) -> Result<&'a GpuInfo, GpuNotFound> {
        gpus.iter()
            .find(|g| self.matches(g))
            .ok_or_else(|| GpuNotFound {
                wanted: self.to_string(),
                minors: gpus
                    .iter()
                    .map(|g| g.index.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                present: if gpus.is_empty() {
                    "none".into()
                } else {
                    gpus.iter()
                        .map(|g| format!("{} ({})", g.index, g.pci.sysfs()))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })
    }
}

impl fmt::Display for GpuSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuSelector::Index(i) => write!(f, "{i}"),
            GpuSelector::Pci(p) => write!(f, "{}", p.sysfs()),
            GpuSelector::Uuid(u) => write!(f, "{u}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(index: u32, bus: u8) -> GpuInfo {
        GpuInfo {
            index,
            pci: PciAddress::new(0, bus, 0, 0),
            uuid: format!("GPU-{index}"),
            model: "H100".into(),
        }
    }

    #[test]
    fn find_names_what_is_there_when_nothing_matches() {
        let gpus = [gpu(0, 0x18), gpu(1, 0x19)];
        assert_eq!(GpuSelector::Uuid("gpu-1".into()).find(&gpus), Ok(&gpus[1]));
        let miss = GpuSelector::Index(7).find(&gpus).unwrap_err();
        assert_eq!(miss.wanted, "7");
        assert_eq!(miss.minors, "0, 1");
        assert_eq!(miss.present, "0 (0000:18:00.0), 1 (0000:19:00.0)");
        let none = GpuSelector::Index(0).find(&[]).unwrap_err();
        assert_eq!((none.minors.as_str(), none.present.as_str()), ("", "none"));
    }
}

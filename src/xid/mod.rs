//! The XID and kmsg core shared by every role: the catalogue, PCI addresses, the line an
//! injection writes, and what NVSentinel makes of it.

pub mod catalog;
pub mod detect;
pub mod line;
pub mod pci;

pub use catalog::{Action, XidInfo};
pub use line::{LineOptions, LineStyle};
pub use pci::PciAddress;

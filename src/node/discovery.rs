//! GPU discovery from the NVIDIA driver's procfs tree: `<proc-root>/driver/nvidia/gpus/*/information`.
//!
//! Works without `nvidia-smi` or NVML. The GPU index the API uses is the driver's `Device Minor`.
//! Directory names are data: they are parsed as PCI addresses and never reach a shell, a path
//! outside the tree, or a log line unescaped.

use super::gpu::GpuInfo;
use crate::xid::PciAddress;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where the tree lives below the proc root.
pub(crate) const GPU_TREE: &str = "driver/nvidia/gpus";
/// Where the host's `/proc` is mounted in the agent's pod.
pub(crate) const HOST_PROC: &str = "/host/proc";
/// An `information` file is a few hundred bytes; anything larger is not the driver's.
const MAX_INFORMATION_BYTES: u64 = 64 * 1024;
/// A node has at most a few dozen GPUs; a tree with more entries is not the driver's.
const MAX_ENTRIES: usize = 4096;

/// The proc root to use: the explicit one, else `/host/proc` when it exists, else `/proc`.
pub(crate) fn resolve_proc_root(explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(p) => p.to_path_buf(),
        None if Path::new(HOST_PROC).is_dir() => PathBuf::from(HOST_PROC),
        None => PathBuf::from("/proc"),
    }
}

/// The fields of one `information` file that matter, plus every `Label: value` pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Information {
    pub(crate) model: Option<String>,
    pub(crate) uuid: Option<String>,
    pub(crate) bus_location: Option<String>,
    pub(crate) device_minor: Option<u32>,
    /// `GPU Excluded` (newer drivers) or `Blacklisted` (older ones).
    pub(crate) excluded: Option<bool>,
    pub(crate) fields: Vec<(String, String)>,
}

/// Parses the driver's `Label: \t value` lines. Never fails: unknown or malformed lines are
/// kept in `fields` or skipped, and missing fields stay `None`.
pub(crate) fn parse_information(text: &str) -> Information {
    let mut info = Information::default();
    for line in text.lines() {
        // The label never contains a colon; the value may (`Bus Location: 0000:3b:00.0`).
        let Some((label, value)) = line.split_once(':') else {
            continue;
        };
        let label = label.trim();
        let value = value.trim();
        if label.is_empty() {
            continue;
        }
        match label.to_ascii_lowercase().as_str() {
            "model" => info.model = Some(value.to_string()),
            "gpu uuid" => info.uuid = Some(value.to_string()),
            "bus location" => info.bus_location = Some(value.to_string()),
            "device minor" => info.device_minor = value.parse().ok(),
            "gpu excluded" | "blacklisted" => {
                info.excluded = match value.to_ascii_lowercase().as_str() {
                    "yes" => Some(true),
                    "no" => Some(false),
                    _ => None,
                }
            }
            _ => {}
        }
        info.fields.push((label.to_string(), value.to_string()));
    }
    info
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error(
        "no NVIDIA GPU tree at {path}: {reason} (is the NVIDIA driver loaded, and is the host's /proc mounted there? set --proc-root)"
    )]
    Missing { path: String, reason: String },
    #[error("cannot read the NVIDIA GPU tree at {path}: {reason}")]
    Unreadable { path: String, reason: String },
}

/// What one scan of the tree found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// Sorted by index.
    pub gpus: Vec<GpuInfo>,
    /// Entries that were skipped or looked wrong, for humans.
    pub warnings: Vec<String>,
}

/// Scans `<proc_root>/driver/nvidia/gpus`. A missing tree is an error naming the path; an
/// existing tree with no usable GPU is an empty list (with warnings saying why).
pub fn discover(proc_root: &Path) -> Result<Discovery, DiscoveryError> {
    let tree = proc_root.join(GPU_TREE);
    let entries = fs::read_dir(&tree).map_err(|e| {
        let path = tree.display().to_string();
        match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => {
                DiscoveryError::Missing {
                    path,
                    reason: e.to_string(),
                }
            }
            _ => DiscoveryError::Unreadable {
                path,
                reason: e.to_string(),
            },
        }
    })?;
    let mut out = Discovery::default();
    for (n, entry) in entries.enumerate() {
        if n >= MAX_ENTRIES {
            out.warnings.push(format!(
                "{}: more than {MAX_ENTRIES} entries; the rest were ignored",
                tree.display()
            ));
            break;
        }
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                out.warnings.push(format!("{}: {e}", tree.display()));
                continue;
            }
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        match read_gpu(&entry.path(), &name) {
            Ok((gpu, mut warnings)) => {
                out.gpus.push(gpu);
                out.warnings.append(&mut warnings);
            }
            Err(why) => out.warnings.push(format!("skipped entry {name:?}: {why}")),
        }
    }
    out.gpus
        .sort_by(|a, b| a.index.cmp(&b.index).then(a.pci.cmp(&b.pci)));
    for pair in out.gpus.windows(2) {
        if pair[0].index == pair[1].index {
            out.warnings.push(format!(
                "Device Minor {} appears twice ({} and {}); GPU {} means the first",
                pair[0].index,
                pair[0].pci.sysfs(),
                pair[1].pci.sysfs(),
                pair[0].index
            ));
        }
    }
    Ok(out)
}

fn read_gpu(dir: &Path, name: &str) -> Result<(GpuInfo, Vec<String>), String> {
    let mut warnings = Vec::new();
    let path = dir.join("information");
    let mut text = String::new();
    fs::File::open(&path)
        .and_then(|f| {
            f.take(MAX_INFORMATION_BYTES)
                .read_to_string(&mut text)
                .map(|_| ())
        })
        .map_err(|e| format!("cannot read its information file: {e}"))?;
    let info = parse_information(&text);
    let from_name: Option<PciAddress> = name.parse().ok();
    let from_content: Option<PciAddress> =
        info.bus_location.as_deref().and_then(|b| b.parse().ok());
    let pci = match (from_content, from_name) {
        (Some(c), Some(n)) => {
            if !c.same_device(&n) {
                warnings.push(format!(
                    "entry {name:?} says Bus Location {}; using the Bus Location",
                    c.sysfs()
                ));
            }
            c
        }
        (Some(c), None) => c,
        (None, Some(n)) => n,
        (None, None) => {
            return Err("neither the directory name nor its Bus Location is a PCI address".into());
        }
    };
    let index = info
        .device_minor
        .ok_or_else(|| "its information file has no numeric Device Minor".to_string())?;
    if info.excluded == Some(true) {
        warnings.push(format!(
            "GPU {index} ({}) is excluded by the driver",
            pci.sysfs()
        ));
    }
    Ok((
        GpuInfo {
            index,
            pci,
            uuid: info.uuid.unwrap_or_default(),
            model: info.model.unwrap_or_default(),
        },
        warnings,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NEW_DRIVER: &str = "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 0\nGPU UUID: \t GPU-4b1c2a3e-0000-1111-2222-333344445555\nVideo BIOS: \t 96.00.99.00.01\nBus Type: \t PCIe\nDMA Size: \t 52 bits\nDMA Mask: \t 0xfffffffffffff\nBus Location: \t 0000:18:00.0\nDevice Minor: \t 3\nGPU Firmware: \t 550.54.15\nGPU Excluded:\t No\n";
    const OLD_DRIVER: &str = "Model: \t\t Tesla V100-SXM2-16GB\nIRQ:   \t\t 88\nGPU UUID: \t GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\nVideo BIOS: \t 88.00.4f.00.09\nBus Type: \t PCIe\nDMA Size: \t 47 bits\nDMA Mask: \t 0x7fffffffffff\nBus Location: \t 0001:00:00.0\nDevice Minor: \t 0\nBlacklisted:\t No\n";

    #[test]
    fn new_driver_format() {
        let i = parse_information(NEW_DRIVER);
        assert_eq!(i.model.as_deref(), Some("NVIDIA H100 80GB HBM3"));
        assert_eq!(
            i.uuid.as_deref(),
            Some("GPU-4b1c2a3e-0000-1111-2222-333344445555")
        );
        assert_eq!(i.bus_location.as_deref(), Some("0000:18:00.0"));
        assert_eq!(i.device_minor, Some(3));
        assert_eq!(i.excluded, Some(false));
    }

    #[test]
    fn old_driver_format_and_azure_domain() {
        let i = parse_information(OLD_DRIVER);
        assert_eq!(i.device_minor, Some(0));
        assert_eq!(i.excluded, Some(false));
        let pci: PciAddress = i.bus_location.unwrap().parse().unwrap();
        assert_eq!(pci.domain, 1);
        assert_eq!(pci.canonical(), "00000001:00:00.0");
    }

    fn tree(entries: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, info) in entries {
            let d = dir.path().join(GPU_TREE).join(name);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("information"), info).unwrap();
        }
        dir
    }

    #[test]
    fn discovers_and_sorts_by_device_minor() {
        let dir = tree(&[("0000:18:00.0", NEW_DRIVER), ("0001:00:00.0", OLD_DRIVER)]);
        let d = discover(dir.path()).unwrap();
        assert_eq!(d.gpus.len(), 2);
        assert_eq!(
            (d.gpus[0].index, d.gpus[0].pci.sysfs()),
            (0, "0001:00:00.0".into())
        );
        assert_eq!(
            (d.gpus[1].index, d.gpus[1].pci.sysfs()),
            (3, "0000:18:00.0".into())
        );
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn missing_tree_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = discover(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DiscoveryError::Missing { .. }));
        assert!(
            msg.contains(&dir.path().join(GPU_TREE).display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("--proc-root"), "{msg}");
    }

    #[test]
    fn hostile_directory_names_are_data() {
        let no_bus = NEW_DRIVER.replace("Bus Location: \t 0000:18:00.0\n", "");
        let dir = tree(&[
            ("$(reboot)", &no_bus),
            (
                "0000:3b:00.0",
                &no_bus.replace("Device Minor: \t 3", "Device Minor: \t 1"),
            ),
            ("; rm -rf", "garbage without fields"),
        ]);
        let d = discover(dir.path()).unwrap();
        assert_eq!(d.gpus.len(), 1);
        assert_eq!(d.gpus[0].pci.sysfs(), "0000:3b:00.0");
        assert_eq!(d.warnings.len(), 2, "{:?}", d.warnings);
        assert!(d.warnings.iter().any(|w| w.contains("\"$(reboot)\"")));
    }

    #[test]
    fn bus_location_wins_over_a_wrong_directory_name() {
        let dir = tree(&[("0000:99:00.0", NEW_DRIVER)]);
        let d = discover(dir.path()).unwrap();
        assert_eq!(d.gpus[0].pci.sysfs(), "0000:18:00.0");
        assert_eq!(d.warnings.len(), 1);
    }

    #[test]
    fn empty_tree_is_an_empty_list() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join(GPU_TREE)).unwrap();
        assert!(discover(dir.path()).unwrap().gpus.is_empty());
    }

    proptest! {
        #[test]
        fn parser_never_panics(text in "\\PC*") {
            let _ = parse_information(&text);
        }

        #[test]
        fn parser_never_panics_on_label_soup(lines in proptest::collection::vec(
            ("(Model|GPU UUID|Bus Location|Device Minor|Blacklisted|GPU Excluded|[A-Za-z ]{0,12})",
             "[ \\t]{0,3}", "[0-9a-fA-Fx:. \\t-]{0,40}"), 0..40)) {
            let text: String = lines.iter().map(|(l, s, v)| format!("{l}:{s}{v}\n")).collect();
            let i = parse_information(&text);
            if let Some(m) = i.device_minor {
                prop_assert!(text.contains(&m.to_string()));
            }
        }
    }
}

//! On a machine with the NVIDIA driver: discovery from the real `/proc/driver/nvidia/gpus`
//! must agree with `nvidia-smi`. Skips (with the reason) everywhere else.

use gpu_fault_injector::node::discovery;
use gpu_fault_injector::xid::PciAddress;
use std::io::Write;
use std::path::Path;
use std::process::Command;

fn skip(why: std::fmt::Arguments) {
    // Straight to stderr: the harness would swallow eprintln! of a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED discovery_agrees_with_nvidia_smi: {why}"
    );
}

#[test]
fn discovery_agrees_with_nvidia_smi() {
    const NAME: &str = "discovery_agrees_with_nvidia_smi";
    if !Path::new("/proc/driver/nvidia/gpus").is_dir() {
        skip(format_args!(
            "no NVIDIA driver here (/proc/driver/nvidia/gpus is missing)"
        ));
        return;
    }
    let out = match Command::new("nvidia-smi")
        .args([
            "--query-gpu=index,pci.bus_id,uuid,minor_number",
            "--format=csv,noheader",
        ])
        .output()
    {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            skip(format_args!(
                "nvidia-smi failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
            return;
        }
        Err(e) => {
            skip(format_args!("nvidia-smi cannot run: {e}"));
            return;
        }
    };
    let found = discovery::discover(Path::new("/proc")).expect("the driver's tree is readable");
    assert!(found.warnings.is_empty(), "{:?}", found.warnings);
    let smi: Vec<(u32, PciAddress, String, Option<u32>)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].to_string(),
                f.get(3).and_then(|m| m.parse().ok()),
            )
        })
        .collect();
    assert_eq!(found.gpus.len(), smi.len(), "{:?} vs {smi:?}", found.gpus);
    for (index, pci, uuid, minor) in &smi {
        let g = found
            .gpus
            .iter()
            .find(|g| g.pci.same_device(pci))
            .unwrap_or_else(|| panic!("nvidia-smi's GPU {index} at {pci} was not discovered"));
        assert!(
            g.uuid.eq_ignore_ascii_case(uuid),
            "{pci}: {} vs {uuid}",
            g.uuid
        );
        // The API's index is the Device Minor; nvidia-smi's index is its enumeration order.
        assert_eq!(Some(g.index), minor.or(Some(*index)), "{pci}");
    }
    eprintln!("{NAME}: {} GPUs agree with nvidia-smi", smi.len());
}

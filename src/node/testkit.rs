//! Fakes for tests and benchmarks: a GPU tree shaped like the driver's.

use super::discovery::GPU_TREE;
use std::io;
use std::path::Path;

/// One fake GPU.
#[derive(Debug, Clone)]
pub struct FakeGpu {
    pub dir_name: String,
    pub minor: u32,
    pub uuid: String,
    pub model: String,
}

/// `n` GPUs `0000:<18+i>:00.0` with Device Minors `0..n`.
pub fn fake_gpus(n: u32) -> Vec<FakeGpu> {
    (0..n)
        .map(|i| FakeGpu {
            dir_name: format!("0000:{:02x}:00.0", 0x18 + i),
            minor: i,
            uuid: format!("GPU-00000000-0000-0000-0000-{:012x}", i),
            model: "NVIDIA H100 80GB HBM3".into(),
        })
        .collect()
}

/// Writes `<proc_root>/driver/nvidia/gpus/<pci>/information` files as a recent driver does.
pub fn write_gpu_tree(proc_root: &Path, gpus: &[FakeGpu]) -> io::Result<()> {
    let tree = proc_root.join(GPU_TREE);
    std::fs::create_dir_all(&tree)?;
    for g in gpus {
        let d = tree.join(&g.dir_name);
        std::fs::create_dir_all(&d)?;
        let bus = g.dir_name.clone();
        std::fs::write(
            d.join("information"),
            format!(
                "Model: \t\t {}\nIRQ:   \t\t 0\nGPU UUID: \t {}\nVideo BIOS: \t 96.00.99.00.01\nBus Type: \t PCIe\nDMA Size: \t 52 bits\nDMA Mask: \t 0xfffffffffffff\nBus Location: \t {bus}\nDevice Minor: \t {}\nGPU Firmware: \t 550.54.15\nGPU Excluded:\t No\n",
                g.model, g.uuid, g.minor
            ),
        )?;
    }
    Ok(())
}

//! Lays out the code the agent runs in one contiguous block of the binary.
//!
//! `gfi` is one binary for every role, and the agent runs only a small part of it. The kernel
//! maps executable pages in 64 KiB "fault-around" windows, so when the agent's functions are
//! scattered among the Lua host, the simulator and the Kubernetes client, each one it touches
//! makes sixteen pages resident: measured, 1.1 MiB of agent code kept 4.3 MiB of the binary in
//! memory. `data/agent-hot.order` lists the agent's functions (recorded with callgrind by
//! `tools/agent-hot-symbols`); LLD's `--symbol-ordering-file` puts them first in `.text`.
//!
//! The list is an optimisation only: symbols it names that a build lacks are skipped silently,
//! and it is applied only where the linker is known to be LLD (Rust 1.90+ links
//! x86_64-unknown-linux-gnu with its own LLD unless told otherwise). `GFI_SYMBOL_ORDERING=0`
//! turns it off.

use std::env;
use std::path::Path;
use std::process::Command;

const ORDER_FILE: &str = "data/agent-hot.order";

fn main() {
    println!("cargo:rerun-if-changed={ORDER_FILE}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=GFI_SYMBOL_ORDERING");
    match linker_is_rust_lld() {
        Ok(()) => {
            let dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
            let file = Path::new(&dir).join(ORDER_FILE);
            if file.is_file() {
                println!(
                    "cargo:rustc-link-arg-bin=gfi=-Wl,--symbol-ordering-file={}",
                    file.display()
                );
                println!("cargo:rustc-link-arg-bin=gfi=-Wl,--no-warn-symbol-ordering");
            }
        }
        Err(why) => {
            // Not an error: the binary is correct either way, only larger in memory.
            if env::var("PROFILE").as_deref() == Ok("release") {
                println!("cargo:warning=agent code layout not applied: {why}");
            }
        }
    }
}

fn linker_is_rust_lld() -> Result<(), String> {
    if env::var("GFI_SYMBOL_ORDERING").as_deref() == Ok("0") {
        return Err("GFI_SYMBOL_ORDERING=0".into());
    }
    let target = env::var("TARGET").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu" {
        return Err(format!("target {target} does not link with LLD by default"));
    }
    // Cargo passes a configured linker to build scripts; any choice of linker is the user's.
    if env::var_os("RUSTC_LINKER").is_some() {
        return Err("a linker is configured (target.<triple>.linker)".into());
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if ["linker", "link-self-contained", "fuse-ld"]
        .iter()
        .any(|f| flags.contains(f))
    {
        return Err("RUSTFLAGS choose the linker".into());
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc)
        .arg("-V")
        .output()
        .map_err(|e| format!("cannot run {rustc}: {e}"))?;
    let version = String::from_utf8_lossy(&out.stdout);
    let minor = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok())
        .ok_or_else(|| format!("cannot read the rustc version from {version:?}"))?;
    if minor < 90 {
        return Err(format!(
            "rustc 1.{minor} links with the system linker (LLD is the default from 1.90)"
        ));
    }
    Ok(())
}

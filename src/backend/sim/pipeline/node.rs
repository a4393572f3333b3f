//! The node itself, which NVSentinel acts on but does not run: the shutdown once the reboot
//! signal lands, the boot (a new boot id and a fresh kernel ring buffer; lines of the old boot
//! that the monitor had not read are never processed), the kubelet reporting Ready, which brings
//! the DaemonSet pods back, and the NVIDIA driver pod becoming Ready, on which NVSentinel's
//! labeler sets `nvsentinel.dgxc.nvidia.com/driver.installed=true` and so lets the
//! syslog-health-monitor run again. A terminated node (a TerminateNode) never comes back.
//!
//! Kept apart from the NVSentinel modules because an operator can reboot a node by hand as
//! well as janitor, and because the new boot id is what both the monitor's healthy event and
//! janitor's completion of the `RebootNode` go by.

use super::{SimState, Step};
use crate::backend::sim::state::{SimPod, hex_id};
use crate::backend::{EventKind, keys};
use crate::kmsg::LOG_KERN;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::time::Duration;

impl SimState {
    /// Reboots a node now (the janitor's signal, or an operator's hand).
    pub(crate) fn begin_reboot(&mut self, node: usize, now: Duration) {
        self.schedule(now, Step::NodeDown { node });
    }

    pub(super) fn node_down(&mut self, node: usize, now: Duration) {
        let time = self.time(now);
        let n = &mut self.nodes[node];
        if n.down {
            return;
        }
        n.down = true;
        n.ready = false;
        n.monitor.running = false;
        if !self.nvs.assume_driver_installed {
            n.labels.remove(keys::DRIVER_INSTALLED, &mut self.pools);
        }
        n.set_condition(
            "Ready",
            "Unknown",
            "NodeStatusUnknown",
            "Kubelet stopped posting node status.".into(),
            &time,
        );
        n.pods.clear();
        n.touch();
        let name = n.name.clone();
        if n.terminated {
            self.emit(
                &name,
                EventKind::Reboot,
                "node terminated (NotReady for good)".into(),
                json!({"terminated": true}),
            );
            return;
        }
        self.stats.reboots += 1;
        self.emit(
            &name,
            EventKind::Reboot,
            "node is rebooting (NotReady)".into(),
            json!(null),
        );
        let at = now + self.latency(self.cfg.timings.reboot);
        self.schedule(at, Step::NodeBoot { node });
    }

    pub(super) fn node_boot(&mut self, node: usize, now: Duration) {
        let boot_id = boot_id(&mut self.rng);
        let n = &mut self.nodes[node];
        n.down = false;
        n.boot_id = boot_id.clone();
        n.boot_count += 1;
        n.booted_at = now;
        n.kmsg.clear();
        n.next_seq = 0;
        n.monitor.pending.clear();
        for line in boot_lines() {
            n.push_kmsg(LOG_KERN, 6, line.to_string(), now);
        }
        n.touch();
        let name = n.name.clone();
        self.emit(
            &name,
            EventKind::Booted,
            format!("booted (boot id {boot_id})"),
            json!({"boot_id": boot_id}),
        );
        let at = now + self.latency(self.cfg.timings.kubelet_ready);
        self.schedule(at, Step::NodeReady { node });
    }

    pub(super) fn node_ready(&mut self, node: usize, now: Duration) {
        let time = self.time(now);
        let templates = self.cfg.pods.clone();
        let n = &mut self.nodes[node];
        n.ready = true;
        n.set_condition(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status".into(),
            &time,
        );
        let boot = n.boot_count;
        let index = n.index;
        for t in templates.iter().filter(|t| t.owner == "DaemonSet") {
            n.pods.push(SimPod {
                namespace: t.namespace.clone(),
                name: format!("{}-{:03}-b{boot}", t.name, index + 1),
                owner: t.owner.clone(),
                completes_at: None,
                shutdown: t.shutdown,
                terminating: false,
            });
        }
        n.touch();
        let name = n.name.clone();
        self.emit(&name, EventKind::Ready, "node is Ready".into(), json!(null));
        let at = now + self.latency(self.cfg.timings.driver_ready);
        self.schedule(at, Step::DriverReady { node });
    }

    /// The driver pod is Ready: the labeler sets the driver label (where the node has a driver
    /// pod, or the labeler assumes one), and the monitor's DaemonSet pod starts.
    pub(super) fn driver_ready(&mut self, node: usize, now: Duration) {
        if self.nodes[node].down {
            return;
        }
        let has_driver = self.nvs.assume_driver_installed
            || !self
                .cfg
                .nodes_without_driver
                .contains(&self.nodes[node].name);
        if has_driver {
            let n = &mut self.nodes[node];
            n.labels
                .set(keys::DRIVER_INSTALLED, "true".into(), &mut self.pools);
            n.touch();
        }
        let at = now + self.latency(self.cfg.timings.monitor_start);
        self.schedule(at, Step::MonitorStart { node });
    }
}

/// A random boot id in the kernel's UUID form.
pub(crate) fn boot_id(rng: &mut ChaCha8Rng) -> String {
    let h = hex_id(rng, 16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn boot_lines() -> [&'static str; 4] {
    [
        "Linux version 6.8.0-1017-nvidia (buildd@lcy02-amd64-012) (x86_64-linux-gnu-gcc-12 (Ubuntu 12.3.0-1ubuntu1~22.04) 12.3.0) #17-Ubuntu SMP",
        "Command line: BOOT_IMAGE=/boot/vmlinuz-6.8.0-1017-nvidia root=UUID=5d2c2a4e ro console=ttyS0",
        "nvidia: loading out-of-tree module taints kernel.",
        "NVRM: loading NVIDIA UNIX Open Kernel Module for x86_64  570.133.20  Release Build",
    ]
}

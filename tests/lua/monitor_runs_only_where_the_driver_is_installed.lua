--! sim: {nodes: 3, nodes_without_driver: [gpu-node-002]}
-- The syslog-health-monitor DaemonSet selects nodes labelled
-- nvsentinel.dgxc.nvidia.com/driver.installed=true, which NVSentinel's labeler sets once the
-- NVIDIA driver pod is Ready (or always, with labeler.assumeDriverInstalled). No label, no
-- monitor, no detection; after a reboot the monitor returns only once the driver is Ready.
local without = node("gpu-node-002")
assert(without:info().labels["nvsentinel.dgxc.nvidia.com/driver.installed"] == nil)
assert(inject_xid(without, 0, 79))
assert(not wait_condition(without, "SysLogsXIDError", { timeout = "10m" }))
-- With the label the monitor runs, and (its state file intact) reads what it had not read.
sim.label(without, "nvsentinel.dgxc.nvidia.com/driver.installed", "true")
assert(wait_condition(without, "SysLogsXIDError", { timeout = "1m" }))

-- A reboot: the label goes with the driver pod and comes back when it is Ready again.
local n = node("gpu-node-001")
assert(n:info().labels["nvsentinel.dgxc.nvidia.com/driver.installed"] == "true")
assert(inject_xid(n, 0, 79))
assert(wait_ready(n, { ready = false, timeout = "10m" }))
assert(n:info().labels["nvsentinel.dgxc.nvidia.com/driver.installed"] == nil)
local ready = assert(wait_ready(n, { timeout = "15m" }))
local label = assert(wait_label(n, "nvsentinel.dgxc.nvidia.com/driver.installed", "true", { timeout = "5m" }))
assert(label.at > ready.at, "the driver is Ready after the node")
assert(wait_uncordoned(n, { timeout = "10m" }))

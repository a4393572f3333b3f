--! sim: {nodes: 4, node_labels: {gpu-node-002: {nvsentinel.dgxc.nvidia.com/managed: "false"}}}
-- Every rule set NVSentinel ships skips nodes labelled
-- k8saas.nvidia.com/ManagedByNVSentinel=false or nvsentinel.dgxc.nvidia.com/managed=false:
-- "NVSentinel will completely ignore health events from this node".
local managed_false = node("gpu-node-002")
assert(inject_xid(managed_false, 0, 79))
assert(wait_condition(managed_false, "SysLogsXIDError"), "the monitor still reports")
assert(not wait_cordoned(managed_false, { timeout = "5m" }))
-- The other label, set during the run.
local n = node("gpu-node-003")
sim.label(n, "k8saas.nvidia.com/ManagedByNVSentinel", "false")
assert(inject_xid(n, 0, 48))
assert(not wait_cordoned(n, { timeout = "5m" }))
-- Removing the opt-out puts the node back under NVSentinel.
sim.label(n, "k8saas.nvidia.com/ManagedByNVSentinel", nil)
assert(inject_xid(n, 0, 48))
assert(wait_cordoned(n, { timeout = "2m" }))

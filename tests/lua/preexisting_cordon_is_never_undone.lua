--! values: {fault-quarantine: {ruleSets: [{name: "GPU fatal", taint: {key: AggregatedNodeHealth, value: "False", effect: NoSchedule}}]}}
-- fault-quarantine's prepareAnnotations: a node already unschedulable when quarantined is
-- marked quarantineHealthEventCordonPreExisting=True, gets no cordon labels, and is never
-- uncordoned; a taint identical to the rule set's that was already there is preExisting and
-- stays after recovery. A tool that cordons a node "for safety" before injecting finds it
-- still cordoned afterwards.
local n = node("gpu-node-001")
local boot = n:info().boot_id
sim.cordon(n)
sim.taint(n, { key = "AggregatedNodeHealth", value = "False", effect = "NoSchedule" })
assert(inject_xid(n, 0, 79))
assert(wait_state(n, "quarantined"))
local info = n:info()
assert(info.annotations.quarantineHealthEventCordonPreExisting == "True")
assert(info.labels["k8saas.nvidia.com/cordon-by"] == nil and info.labels["k8saas.nvidia.com/cordon-timestamp"] == nil)
assert(info.annotations.quarantineHealthEventIsCordoned == nil, "fault-quarantine did not cordon it")
assert(info.annotations.quarantineHealthEventAppliedTaints:find('"preExisting":true', 1, true))
-- The whole recovery runs, and the node stays cordoned and tainted.
assert(wait_rebooted(n, { since = boot }))
assert(wait_condition(n, "SysLogsXIDError", { status = "False", timeout = "30m" }))
assert(wait_state(n, nil, { timeout = "5m" }), "quarantine cleared")
assert(not wait_uncordoned(n, { timeout = "10m" }))
info = n:info()
assert(#info.taints == 1 and info.taints[1].key == "AggregatedNodeHealth")
assert(info.labels["k8saas.nvidia.com/uncordon-by"] == nil)

-- The same rule set on a node that was schedulable: cordoned, tainted, and both undone.
local m = node("gpu-node-002")
assert(inject_xid(m, 0, 79))
assert(wait_cordoned(m))
assert(#m:info().taints == 1)
assert(m:info().annotations.quarantineHealthEventAppliedTaints:find('"preExisting":false', 1, true))
assert(wait_uncordoned(m, { timeout = "30m" }))
assert(#m:info().taints == 0)

--! values: {fault-quarantine: {ruleSets: [{name: fatal, taint: {key: nvsentinel-quarantine, value: "true", effect: NoSchedule}}]}}
-- heal: undo what a test left, as an operator would: uncordon (NVSentinel takes it as a
-- cancel), remove NVSentinel's quarantine labels, annotations and the taints it applied;
-- leave the condition, the RebootNodes and the datastore to NVSentinel.
local n = node("gpu-node-001")
assert(inject_xid(n, 0, 74))
assert(wait_state(n, "remediation-failed"))
local h = heal(n)
assert(h.uncordoned == true and h.node.cordoned == false)
local info = n:info()
for _, k in ipairs({ "k8saas.nvidia.com/cordon-by", "k8saas.nvidia.com/cordon-reason", "dgxc.nvidia.com/nvsentinel-state" }) do
  assert(info.labels[k] == nil, k)
end
for _, k in ipairs({ "quarantineHealthEvent", "quarantineHealthEventIsCordoned", "quarantineHealthEventAppliedTaints", "quarantinedNodeUncordonedManually" }) do
  assert(info.annotations[k] == nil, k)
end
assert(#info.taints == 0 and #h.removed_taints == 1 and h.removed_taints[1].key == "nvsentinel-quarantine")
assert(#h.removed_labels >= 3 and #h.left == 3)
assert(info.conditions.SysLogsXIDError.status == "True", "the condition is left to NVSentinel")
-- A node that is fine: nothing to do, and healing twice is harmless.
local again = heal(n)
assert(again.uncordoned == false and #again.removed_labels == 0 and #again.removed_annotations == 0)
-- The node is NVSentinel's again: a new fault is handled from the start.
assert(inject_xid(n, 1, 79))
assert(wait_cordoned(n, { timeout = "1m" }))
expect_error(function() heal("ghost") end, "node 'ghost' not found")
expect_error(function() heal(42) end, "heal: argument #1")
assert(node("gpu-node-003"):heal().uncordoned == false, "the handle method")

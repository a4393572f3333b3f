--! sim: {nodes: 4, node_labels: {gpu-node-002: {pool: critical}}}
--! values: {janitor: {config: {nodes: {exclusions: [{matchLabels: {pool: critical}}]}}}}
-- janitor's exclusions are label selectors its admission webhook checks when a RebootNode is
-- created: the CR for a matching node is rejected, so fault-remediation marks the node
-- remediation-failed and it stays cordoned. Other nodes reboot as usual.
local excluded = node("gpu-node-002")
assert(inject_xid(excluded, 0, 79))
assert(wait_state(excluded, "remediation-failed"))
assert(#sim.reboot_nodes() == 0, "no RebootNode exists")
assert(not wait_uncordoned(excluded, { timeout = "30m" }))
local other = node("gpu-node-003")
assert(inject_xid(other, 0, 79))
assert(wait_state(other, "remediation-succeeded"))
assert(#sim.reboot_nodes() == 1)

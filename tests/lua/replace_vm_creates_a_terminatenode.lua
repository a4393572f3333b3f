--! values: {platform-connector: {transformers: {OverrideTransformer: {rules: [{when: 'event.agent == "syslog-health-monitor" && "79" in event.errorCode', override: {recommendedAction: REPLACE_VM}}]}}}}
-- REPLACE_VM: the chart's fault-remediation maps it to a TerminateNode (completeCondition
-- NodeTerminated, equivalence group "terminate"), not to remediation-failed. The action is
-- changed the supported way, with a platform-connector OverrideTransformer CEL rule.
local n = node("gpu-node-001")
assert(inject_xid(n, 0, 79))
local c = assert(wait_condition(n, "SysLogsXIDError"))
assert(c.observed.conditions.SysLogsXIDError.message:find("Recommended Action=REPLACE_VM;", 1, true))
assert(wait_state(n, "remediation-succeeded"))
local state = n:info().annotations.latestFaultRemediationState
assert(state:find('"terminate"', 1, true) and state:find('"actionName":"REPLACE_VM"', 1, true), state)
assert(#sim.reboot_nodes() == 0)
local tn = sim.terminate_nodes()
assert(#tn == 1 and tn[1].kind == "TerminateNode" and tn[1].name:find("^maintenance%-gpu%-node%-001%-%x+$"), tn[1].name)
-- The node goes away for good: NotReady, never back, still cordoned.
assert(wait_ready(n, { ready = false, timeout = "5m" }))
assert(not wait_ready(n, { timeout = "1h" }))
local done = sim.terminate_nodes()[1]
local kinds = {}
for _, cond in ipairs(done.conditions) do kinds[cond.type] = cond.status end
assert(kinds.SignalSent == "True" and kinds.NodeTerminated == "True" and done.completion_time ~= nil)

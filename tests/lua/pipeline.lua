-- NVSentinel's reaction as the sim models it, seen through the API.

-- Fatal with a reboot: the whole chain, in order, with the RebootNode.
local n = node("gpu-node-001")
assert(inject_xid(n, 1, 79))
assert(wait_cordoned(n, { timeout = "1m" }))
local info = n:info()
assert(info.labels["k8saas.nvidia.com/cordon-reason"] == "Syslog-fatal-error-ruleset")
assert(info.labels["k8saas.nvidia.com/cordon-timestamp"]:match("^2026%-01%-01T00%-00%-%d%dZ$"))
assert(info.annotations.quarantineHealthEventIsCordoned == "True")
-- NVSentinel's own JSON: numeric action (RESTART_BM = 24), the error code as text.
local stored = info.annotations.quarantineHealthEvent
assert(stored:find('"errorCode":["79"]', 1, true) and stored:find('"recommendedAction":24', 1, true), stored)
assert(info.annotations.quarantineHealthEventAppliedTaints == nil, "no taint rule, no taint annotation")
local cond = info.conditions.SysLogsXIDError
assert(cond.status == "True" and cond.reason == "SysLogsXIDErrorIsNotHealthy")
assert(cond.message:find("^ErrorCode:79 PCI:0000:2a:00 GPU_UUID:GPU%-%x+%-[%x-]+ NVRM: Xid %(PCI:0000:2a:00%): 79, pid="), cond.message)
assert(cond.message:find("Recommended Action=RESTART_BM;$"), cond.message)
assert(wait_state(n, "remediation-succeeded"))
local crs = sim.reboot_nodes()
assert(#crs == 1 and crs[1].name:find("^maintenance%-gpu%-node%-001%-%x+$"), crs[1].name)
assert(wait_uncordoned(n))
crs = sim.reboot_nodes()
local kinds = {}
for _, c in ipairs(crs[1].conditions) do kinds[c.type] = c.status end
assert(kinds.SignalSent == "True" and kinds.NodeReady == "True")
assert(crs[1].completion_time ~= nil)
-- The kernel log starts over after the reboot.
assert(#kmsg_tail(n, { grep = "Xid" }) == 0)
assert(kmsg_tail(n)[1].seq == 0)

-- CONTACT_SUPPORT: cordoned, drained, remediation-failed, and it stays that way.
local m = node("gpu-node-002")
assert(inject_xid(m, 0, 74))
assert(wait_state(m, "remediation-failed"))
assert(not wait_uncordoned(m, { timeout = "1h" }))
assert(m:cordoned())
assert(m:info().annotations.latestFaultRemediationState == nil, "not written for an action without remediation")

-- Non-fatal: an Event, no cordon, no condition.
local k = node("gpu-node-003")
assert(inject_xid(k, 0, 13))
assert(not wait_cordoned(k, { timeout = "2m" }))
local evs = events(k)
assert(#evs == 1 and evs[1].reason == "SysLogsXIDErrorIsNotHealthy" and evs[1].namespace == "default")
assert(evs[1].type == "SysLogsXIDError" and evs[1].source == "syslog-health-monitor" and evs[1].count == 1)
-- The same line again bumps the Event's count instead of adding one.
assert(inject_xid(k, 0, 13))
sleep("1m")
evs = events(k)
assert(#evs == 1 and evs[1].count == 2, "count " .. tostring(evs[1].count))
assert(evs[1].message:find("ErrorCode:13", 1, true))
assert(k:condition("SysLogsXIDError") == nil)

-- A malformed line (no identifier guard) is never detected, here as in a real cluster.
local q = node("gpu-node-004")
assert(inject_xid(q, 0, 79, { style = "unguarded" }))
assert(not wait_condition(q, "SysLogsXIDError", { timeout = "5m" }))
assert(#kmsg_tail(q, { grep = "Xid" }) == 1, "the record is in kmsg all the same")

-- A manual uncordon is a cancel: the condition stays and nothing more happens.
local w = node("gpu-node-005")
local boot = w:info().boot_id
assert(inject_xid(w, 0, 79))
assert(wait_cordoned(w))
local after = uncordon(w)
assert(after.cordoned == false and after.annotations.quarantinedNodeUncordonedManually == "True")
assert(after.conditions.SysLogsXIDError.status == "True")
assert(not wait_state(w, "remediating", { timeout = "10m" }))
assert(w:info().boot_id == boot)

-- XID 154 takes its action from the line.
local x = node("gpu-node-006")
assert(inject_xid(x, 0, 154, { text = "GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot Required)" }))
local r = assert(wait_condition(x, "SysLogsXIDError"))
assert(r.observed.conditions.SysLogsXIDError.message:find("RESTART_BM", 1, true))
assert(inject_xid("gpu-node-007", 0, 154, { text = "GPU recovery action changed from 0x1 (GPU Reset Required) to 0x0 (None)" }))
assert(not wait_cordoned("gpu-node-007", { timeout = "2m" }))
assert(#events("gpu-node-007") == 1)

-- Two XIDs on one node while quarantined: one quarantine, the event added to it.
local y = node("gpu-node-008")
assert(inject_xid(y, 0, 48))
assert(wait_cordoned(y))
assert(inject_xid(y, 1, 94))
assert(inject_xid(y, 2, 95))
sleep("30s")
assert(y:info().annotations.quarantineHealthEvent:find('"errorCode":["95"]', 1, true))
-- One condition entry per distinct line.
local msg = y:condition("SysLogsXIDError").message
assert(select(2, msg:gsub("ErrorCode:", "")) == 2, msg)
assert(sim.stats().cordons == 5, "cordons: " .. sim.stats().cordons)

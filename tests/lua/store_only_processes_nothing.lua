--! values: {syslog-health-monitor: {processingStrategy: STORE_ONLY}}
-- syslog-health-monitor's processingStrategy STORE_ONLY: events are stored and never acted on:
-- no condition, no Event, no cordon.
local n = node("gpu-node-001")
assert(inject_xid(n, 0, 79))
assert(not wait_condition(n, "SysLogsXIDError", { timeout = "5m" }))
assert(not n:cordoned() and #events(n) == 0)
assert(sim.stats().detections == 1, "detected all the same")

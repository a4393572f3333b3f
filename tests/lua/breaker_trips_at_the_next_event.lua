--! sim: {nodes: 8}
-- NVSentinel's circuit breaker (fault-quarantine breaker.go): a cordon is counted when it
-- happens, and the breaker is evaluated before the next event of any kind. Once the distinct
-- nodes cordoned within 5 minutes reach ceil(50 % of the GPU nodes) it trips, and
-- fault-quarantine stops processing (uncordons included) until it is reset and restarted.
local ns = gpu_nodes()
for i = 1, 4 do assert(inject_xid(ns[i], 0, 79)) end
for i = 1, 4 do assert(wait_cordoned(ns[i])) end
assert(circuit_breaker().status == "CLOSED", "4 of 8 reached, but nothing evaluated it yet")
-- The next event, here a non-fatal XID on another node, trips it.
assert(inject_xid(ns[7], 0, 13))
sleep("1m")
local b = circuit_breaker()
assert(b.status == "TRIPPED" and b.since ~= nil, b.status)
-- Halted: a fatal XID is detected (the condition is platform-connectors') but not cordoned.
assert(inject_xid(ns[5], 0, 79))
assert(wait_condition(ns[5], "SysLogsXIDError"))
assert(not wait_cordoned(ns[5], { timeout = "5m" }))
-- The first node reboots and reports healthy, but is not uncordoned while tripped.
assert(wait_condition(ns[1], "SysLogsXIDError", { status = "False", timeout = "1h" }))
assert(not wait_uncordoned(ns[1], { timeout = "10m" }))
-- Reset as the runbook does (status CLOSED, cursor CREATE, restart): what arrived while
-- tripped is skipped, so node 1 stays cordoned and node 5 is never cordoned.
sim.reset_breaker()
assert(circuit_breaker().status == "CLOSED")
assert(not wait_uncordoned(ns[1], { timeout = "5m" }))
assert(not ns[5]:cordoned())
-- New events are processed again.
assert(inject_xid(ns[6], 0, 48))
assert(wait_cordoned(ns[6]))
expect_error(function() sim.reset_breaker({ cursor = "LATEST" }) end, "option 'cursor' must be \"CREATE\"")

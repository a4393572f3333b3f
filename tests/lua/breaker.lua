--! sim: {nodes: 8}
-- The circuit breaker: 50 % of GPU nodes cordoned within 5 minutes trips it and halts
-- fault-quarantine, uncordons included, until it is reset.
local ns = gpu_nodes()
for i = 1, 3 do assert(inject_xid(ns[i], 0, 79)) end
for i = 1, 3 do assert(wait_cordoned(ns[i])) end
assert(circuit_breaker().status == "CLOSED", "3 of 8 is below 50 %")
assert(inject_xid(ns[4], 0, 79))
assert(wait_cordoned(ns[4]))
local b = circuit_breaker()
assert(b.status == "TRIPPED" and b.since ~= nil)
-- Halted: a fifth fatal XID is detected (condition) but not cordoned.
assert(inject_xid(ns[5], 0, 79))
assert(wait_condition(ns[5], "SysLogsXIDError"))
assert(not wait_cordoned(ns[5], { timeout = "5m" }))
-- The first node reboots, becomes healthy, but is not uncordoned while tripped.
assert(wait_condition(ns[1], "SysLogsXIDError", { status = "False", timeout = "1h" }))
assert(not wait_uncordoned(ns[1], { timeout = "10m" }))
-- An operator resets it; the next XID is handled again.
sim.reset_breaker()
assert(circuit_breaker().status == "CLOSED")
assert(inject_xid(ns[6], 0, 48))
assert(wait_cordoned(ns[6]))

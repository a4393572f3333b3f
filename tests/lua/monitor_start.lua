--! sim: {nodes: 4, timings: {monitor_first_start: 5m}}
-- A monitor's first start seeks to the end of the journal: a line written before it is never
-- seen, one written after is.
local n = node("gpu-node-001")
assert(inject_xid(n, 0, 79))
assert(not wait_cordoned(n, { timeout = "10m" }), "written before the monitor started")
assert(inject_xid(n, 0, 79))
assert(wait_cordoned(n, { timeout = "1m" }))
-- Restarting a monitor without its state loses what it has not read yet.
local m = node("gpu-node-002")
assert(inject_xid(m, 0, 48))
sim.restart_monitor(m)
assert(not wait_cordoned(m, { timeout = "2m" }))

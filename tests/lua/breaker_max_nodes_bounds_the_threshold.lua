--! sim: {nodes: 20}
--! values: {fault-quarantine: {circuitBreaker: {percentage: 50, maxNodes: 2}}}
-- circuitBreaker.maxNodes (NVSentinel PR #1713): the threshold is the lower of
-- ceil(percentage x GPU nodes) (10 here) and maxNodes (2). A reset with cursor RESUME
-- processes the events that arrived while tripped.
local ns = gpu_nodes()
assert(inject_xid(ns[1], 0, 79))
assert(inject_xid(ns[2], 0, 79))
assert(wait_cordoned(ns[1]) and wait_cordoned(ns[2]))
assert(circuit_breaker().status == "CLOSED")
assert(inject_xid(ns[3], 0, 79))
assert(wait_condition(ns[3], "SysLogsXIDError"))
assert(not wait_cordoned(ns[3], { timeout = "2m" }), "the third node's event trips the breaker")
assert(circuit_breaker().status == "TRIPPED")
sim.reset_breaker({ cursor = "RESUME" })
assert(wait_cordoned(ns[3], { timeout = "1m" }), "replayed after the restart")

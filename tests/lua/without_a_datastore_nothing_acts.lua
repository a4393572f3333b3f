--! values: {global: {faultQuarantine: {enabled: true}, nodeDrainer: {enabled: true}, faultRemediation: {enabled: true}}}
-- fault-quarantine, node-drainer and fault-remediation read their work from NVSentinel's
-- datastore (global.mongodbStore.enabled, or global.datastore for PostgreSQL), which the chart
-- leaves off: values that enable the modules without one get a warning, and nothing beyond the
-- condition happens, as on a real cluster.
local c = sim.config().nvsentinel
assert(c.store == "none")
assert(c.warnings[1]:find("global.mongodbStore.enabled", 1, true), c.warnings[1])
local n = node("gpu-node-001")
assert(inject_xid(n, 0, 79))
assert(wait_condition(n, "SysLogsXIDError"))
assert(not wait_cordoned(n, { timeout = "5m" }))

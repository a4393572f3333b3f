--! values: {global: {image: {tag: v1.13.0}}}
-- NVSentinel v1.13.0 alone (PR #1426, reverted before v1.13.1) read only journal entries with
-- SYSLOG_FACILITY=0; a /dev/kmsg write is facility user, so no injection is ever seen. The run
-- starts with a warning saying so, and the sim sees nothing either.
local c = sim.config().nvsentinel
assert(c.version == "v1.13.0")
assert(c.warnings[1]:find("v1.13.0", 1, true) and c.warnings[1]:find("SYSLOG_FACILITY=0", 1, true), c.warnings[1])
local n = node("gpu-node-001")
assert(inject_xid(n, 0, 79))
assert(not wait_condition(n, "SysLogsXIDError", { timeout = "10m" }))

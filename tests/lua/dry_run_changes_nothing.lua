--! values: {global: {dryRun: true}}
-- global.dryRun: fault-quarantine records the event but does not cordon, taint or label;
-- node-drainer's evictions are dry runs; fault-remediation creates no CR, and the state still
-- ends remediation-succeeded (NVSentinel #1776's table).
local n = node("gpu-node-001")
local boot = n:info().boot_id
assert(inject_xid(n, 0, 79))
assert(wait_condition(n, "SysLogsXIDError"))
assert(wait_state(n, "remediation-succeeded", { timeout = "5m" }))
assert(not n:cordoned())
assert(n:info().annotations.quarantineHealthEvent ~= nil)
assert(#sim.reboot_nodes() == 0)
for _, p in ipairs(pods(n)) do assert(not p.terminating, p.name) end
assert(not wait_rebooted(n, { since = boot, timeout = "30m" }))

-- After a reboot syslog-health-monitor never processes lines of the previous boot
-- (isStaleBootEntry), and without its state file (its hostPath is tmpfs on most distributions:
-- the default) it seeks to the end of the journal, so a line written after the boot but before
-- its first poll is lost. monitor_state_survives_reboot: true is the other case (next file).
local n = node("gpu-node-001")
local boot = n:info().boot_id
-- Written, then the node reboots before the monitor's next poll: never processed.
assert(inject_xid(n, 0, 79))
sim.reboot(n)
local rb = assert(wait_rebooted(n, { since = boot }))
-- Written right after the boot, before the monitor is back: lost when it seeks to the end.
assert(inject_xid(n, 2, 48))
assert(not wait_condition(n, "SysLogsXIDError", { timeout = "30m" }), "neither line was processed")
assert(not n:cordoned() and sim.stats().detections == 0)
-- Once the monitor runs, new lines are seen again.
assert(inject_xid(n, 2, 48))
assert(wait_cordoned(n, { timeout = "1m" }))

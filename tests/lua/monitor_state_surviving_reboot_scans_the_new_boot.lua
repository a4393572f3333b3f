--! sim: {nodes: 2, monitor_state_survives_reboot: true}
-- With its state file kept across the reboot, syslog-health-monitor scans the new boot from its
-- start (initializeJournalFromBootStart): a line written after the boot and before its first
-- poll is processed; the previous boot's lines still are not.
local n = node("gpu-node-001")
local boot = n:info().boot_id
assert(inject_xid(n, 0, 79))
assert(wait_state(n, "remediation-succeeded"))
assert(wait_rebooted(n, { since = boot }))
assert(inject_xid(n, 2, 48))
assert(wait_uncordoned(n, { timeout = "20m" }))
assert(wait_cordoned(n, { timeout = "2m" }), "the new boot's line is seen")

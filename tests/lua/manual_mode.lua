--! values: {janitor: {config: {manualMode: true}}}
-- Janitor in manual mode: the RebootNode gets ManualMode=True and nothing reboots until an
-- operator does it.
local n = node("gpu-node-001")
local boot = n:info().boot_id
assert(inject_xid(n, 0, 79))
assert(wait_state(n, "remediation-succeeded"))
assert(not wait_rebooted(n, { since = boot, timeout = "1h" }))
local cr = sim.reboot_nodes()[1]
assert(cr.conditions[1].type == "ManualMode" and cr.conditions[1].status == "True")
assert(n:cordoned())
-- The operator reboots the node; recovery and uncordon follow.
sim.reboot(n)
assert(wait_rebooted(n, { since = boot }))
assert(wait_uncordoned(n))
assert(sim.config().nvsentinel.manual_mode == true)

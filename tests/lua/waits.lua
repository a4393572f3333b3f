-- Waits: timeouts, results, bad arguments.
local n = node("gpu-node-001")

-- A wait that is already true returns at once.
local r = assert(wait_uncordoned(n))
assert(r.ok and r.elapsed == 0 and r.node == "gpu-node-001" and r.waited_for == "uncordoned")
assert(r.observed.cordoned == false)

-- A timeout is nil, a message, and the result.
local t0 = now()
local none, msg, res = wait_cordoned(n, { timeout = "2m" })
assert(none == nil)
assert(msg == "wait_cordoned: gpu-node-001 not cordoned within 2m (observed: schedulable, state=<none>)", msg)
assert(res.ok == false and res.timeout == 120 and res.elapsed == 120)
assert(now() - t0 == 120, "virtual time advanced by the timeout")
assert(not pcall(function() assert(wait_cordoned(n, { timeout = 1 })) end))

-- Durations in every form.
assert(select(3, wait_cordoned(n, { timeout = 90 })).timeout == 90)
assert(select(3, wait_cordoned(n, { timeout = "1m30s" })).timeout == 90)
expect_error(function() wait_cordoned(n, { timeout = "soon" }) end, "invalid duration 'soon'")
expect_error(function() wait_cordoned(n, { timeout = -1 }) end, "not a non-negative number")
expect_error(function() wait_cordoned(n, { timout = "1m" }) end, "unknown key 'timout' (known: timeout, since)")
expect_error(function() wait_cordoned("ghost") end, "node 'ghost' not found")
expect_error(function() wait_condition(n) end, "wait_condition: argument #2 (type) must be a condition type")
expect_error(function() wait_condition(n, "Ready", { status = "maybe" }) end, "option 'status' must be \"True\", \"False\" or \"Unknown\"")
expect_error(function() wait_state(n, 5) end, "wait_state: argument #2 (value) must be a state")
expect_error(function() wait_state(n, {}) end, "a list of states")
expect_error(function() wait_ready(n, { ready = "yes" }) end, "option 'ready' must be true or false")

-- The whole sequence, watched stage by stage.
local boot = n:info().boot_id
assert(inject_xid(n, 0, 79))
assert(wait_condition(n, "SysLogsXIDError", { timeout = "1m" }))
local c = assert(wait_cordoned(n, { timeout = "1m" }))
assert(c.observed.state == "quarantined" and c.observed.labels["k8saas.nvidia.com/cordon-by"] == "NVSentinel")
assert(wait_state(n, "draining"))
assert(wait_state(n, { "drain-succeeded", "remediating", "remediation-succeeded" }))
assert(wait_label(n, "dgxc.nvidia.com/nvsentinel-state", "remediation-succeeded"))
assert(wait_ready(n, { ready = false, timeout = "5m" }))
local rb = assert(wait_rebooted(n, { since = boot }))
assert(rb.observed.boot_id ~= boot)
assert(wait_ready(n))
local u = assert(n:wait_uncordoned({ timeout = "30m" }))
assert(u.observed.state == nil and u.observed.labels["k8saas.nvidia.com/uncordon-by"] == "NVSentinel")
assert(wait_state(n, nil, { timeout = 1 }), "state label removed")
assert(wait_condition(n, "SysLogsXIDError", { status = "False" }))
-- wait_rebooted without since measures from now.
assert(not wait_rebooted(n, { timeout = "10m" }))

-- since = the fault: elapsed is the time since the injection, waited the call's own wait.
local m = node("gpu-node-002")
local f = assert(inject_xid(m, 0, 79))
sleep(2)
local w = assert(wait_cordoned(m, { since = f, timeout = "1m" }))
assert(w.since == f.at and w.elapsed == w.at - f.at and w.waited == w.at - f.at - 2, w.waited)
local s = assert(wait_state(m, "draining", { since = f }))
assert(s.elapsed > w.elapsed)
expect_error(function() wait_cordoned(m, { since = "soon" }) end, "wait_cordoned: option 'since' must be a fault (what inject_xid returned) or a run time in seconds (now()), got")

-- A state that lasts no time is seen: fault-remediation writes remediating, creates the
-- RebootNode and writes remediation-succeeded in the same instant, as separate writes.
local r3 = node("gpu-node-003")
assert(inject_xid(r3, 0, 79))
local drained = assert(wait_state(r3, "drain-succeeded", { timeout = "5m" }))
local remediating = assert(wait_state(r3, "remediating", { timeout = "5m" }))
assert(remediating.observed.state == "remediating", "the version that satisfied the wait")
local done = assert(wait_state(r3, "remediation-succeeded", { timeout = 1 }))
assert(done.at == remediating.at and remediating.at > drained.at)

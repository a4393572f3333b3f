-- wait_remediation: a RebootNode for the node appears, then completes; the result has its
-- name and each condition's time, measured from the injection when `since` is the fault.
local n = node("gpu-node-001")
local fault = assert(inject_xid(n, 0, 79))
local r = assert(wait_remediation(n, { since = fault, timeout = "1h" }))
assert(r.ok and r.kind == "RebootNode" and r.succeeded == true)
assert(r.name:find("^maintenance%-gpu%-node%-001%-%x+$"), r.name)
assert(r.since == fault.at and r.elapsed == r.at - fault.at and r.waited <= r.elapsed)
-- janitor's conditions as its reconciler writes them.
local c = r.conditions
assert(c.SignalSent.status == "True" and c.SignalSent.reason == "Succeeded")
assert(c.NodeReady.status == "True" and c.NodeReady.reason == "Succeeded")
assert(c.NodeReady.message == "Node reached ready state post-reboot")
assert(r.times.created < r.times.SignalSent and r.times.SignalSent < r.times.NodeReady)
assert(r.times.completed == r.times.NodeReady)
-- janitor looks again 30 s after the signal, then every 60 s: NodeReady follows the node's
-- Ready by up to a minute.
local ready_at = run_time_of(n:info().conditions.Ready.last_transition)
assert(r.times.NodeReady >= ready_at and r.times.NodeReady - ready_at <= 61, r.times.NodeReady - ready_at)

-- A RebootNode from before `since` does not count: a timeout, saying what was seen.
local none, msg, res = wait_remediation(n, { since = now(), timeout = "5m" })
assert(none == nil and res.ok == false and res.name == nil)
assert(msg == "wait_remediation: gpu-node-001 not RebootNode complete within 5m (observed: no RebootNode)", msg)
-- Without since, the newest RebootNode of the node counts, measured from the call.
local again = assert(wait_remediation(n, { timeout = 1 }))
assert(again.name == r.name and again.elapsed == 0)

-- Manual mode never completes: the timeout shows how far it got.
local m = node("gpu-node-002")
local f2 = assert(inject_xid(m, 0, 74))
local nope, _, seen = wait_remediation(m, { since = f2, timeout = "20m" })
assert(nope == nil and seen.name == nil, "CONTACT_SUPPORT has no RebootNode")

expect_error(function() wait_remediation(n, { since = "yesterday" }) end, "option 'since' must be a fault (what inject_xid returned) or a run time in seconds")
expect_error(function() wait_remediation(n, { since = {} }) end, "option 'since' is a table without 'at'")
expect_error(function() wait_remediation(n, { timeout = "soon" }) end, "invalid duration 'soon'")
expect_error(function() wait_remediation(n, { tiemout = 1 }) end, "unknown key 'tiemout'")
expect_error(function() wait_remediation("ghost") end, "node 'ghost' not found")

--! values: {janitor: {config: {manualMode: true}}}
-- In manual mode the RebootNode appears and waits for an operator: wait_remediation times out
-- and its result shows ManualMode=True (OutsideActorRequired).
local n = node("gpu-node-001")
local fault = assert(inject_xid(n, 0, 79))
local none, msg, r = wait_remediation(n, { since = fault, timeout = "30m" })
assert(none == nil and r.ok == false and r.name ~= nil)
assert(r.conditions.ManualMode.status == "True" and r.conditions.ManualMode.reason == "OutsideActorRequired")
assert(msg:find("ManualMode=True OutsideActorRequired", 1, true), msg)

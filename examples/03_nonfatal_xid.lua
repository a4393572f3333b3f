-- 03: a non-fatal XID must not cordon the node.
--
--   gfi run examples/03_nonfatal_xid.lua
--
-- XID 13 (Graphics Engine Exception) has the recommended action NONE: NVSentinel records a
-- Kubernetes Event and leaves the node schedulable. Proving that nothing happens needs a wait
-- that is expected to time out.
local n = node("gpu-node-002")
local x = xid(13)
print(("XID %d (%s): action %s, fatal: %s"):format(x.xid, x.description, x.action, tostring(x.fatal)))

assert(inject_xid(n, 3, 13))

-- Two poll intervals and then some: long enough for NVSentinel to have acted if it would.
-- How long to watch for a cordon that must not come (--arg window=30s on a real cluster).
local window = param("window", "2m")
local cordoned, why = wait_cordoned(n, { timeout = window })
check("XID 13 does not cordon", cordoned == nil, why)

-- What NVSentinel did instead: an Event about the node.
-- NVSentinel's Event, beside gfi's own XidInjected record of the injection.
local nvsentinel = 0
for _, e in ipairs(assert(events(n))) do
  print(("Event %s: %s"):format(e.reason, e.message))
  if e.reason == "SysLogsXIDErrorIsNotHealthy" then nvsentinel = nvsentinel + 1 end
end
check("an Event was recorded", nvsentinel == 1)

-- 04: why the injected line starts with "NVRM: NVRM:".
--
--   gfi run examples/04_malformed_line.lua
--
-- The kernel stamps userspace writes to /dev/kmsg with facility LOG_USER, so journald takes a
-- leading "NVRM:" as the syslog identifier and strips it from MESSAGE. A line with a single
-- "NVRM:" is stored as "Xid (PCI:...)" and NVSentinel's regex never matches. The sim parses
-- the bytes the same way, so the mistake shows here before it costs a day on a real cluster.
local good, bad = node("gpu-node-003"), node("gpu-node-004")

local f1 = assert(inject_xid(bad, 0, 79, { style = "unguarded" }))
local f2 = assert(inject_xid(good, 0, 79)) -- style "driver", the default
print("unguarded: " .. f1.line)
print("guarded:   " .. f2.line)

-- Both records are in the kernel log...
assert(#assert(kmsg_tail(bad, { grep = "Xid" })) == 1)

-- ...but only the guarded one is detected.
-- How long to watch for the cordon that must not come (--arg window=30s on a real cluster).
local window = param("window", "2m")
check("the guarded line is detected", wait_cordoned(good, { timeout = "2m" }) ~= nil)
check("the unguarded line is not", wait_cordoned(bad, { timeout = window }) == nil)

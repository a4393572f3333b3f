-- 01: a first injection, and a wait for NVSentinel to cordon the node.
--
--   gfi run examples/01_first_injection.lua
--
-- Runs on the built-in simulated cluster by default: 8 GPU nodes with 8 GPUs each, and a
-- model of NVSentinel that reacts to the exact bytes written, on a virtual clock.

-- Nodes are handles: the name, looked up afresh every time it is used.
local n = assert(gpu_nodes())[1]
local g = assert(gpus(n))[1]
print(("target: %s GPU %d at PCI %s (%s)"):format(n.name, g.index, g.pci, g.uuid))

-- XID 79: "GPU has fallen off the bus". inject_xid writes one kernel log record, exactly as
-- the driver would, and returns what it wrote.
local fault = assert(inject_xid(n, g, 79))
print("wrote: " .. fault.line)

-- NVSentinel's monitor polls the journal every 15 s, then fault-quarantine cordons the node.
-- A wait returns what it saw and how long it took; on timeout it returns nil and a message,
-- so assert() stops the script with that message.
local r = assert(wait_cordoned(n, { timeout = "2m" }))
print(("cordoned %s after the injection; state label: %s"):format(fmt_duration(r.elapsed), r.observed.state))

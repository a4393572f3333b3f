-- 02: a full XID 79 recovery, stage by stage, with the time of each stage.
--
--   gfi run examples/02_xid79_recovery.lua --journal recovery.json
--
-- NVSentinel's chain: the monitor detects the line, platform-connectors set the node condition
-- SysLogsXIDError, fault-quarantine cordons, node-drainer evicts, fault-remediation creates a
-- RebootNode, the janitor reboots, and after the new boot fault-quarantine uncordons.
local report = require "report"

local n = node(param("node", "gpu-node-001"))
local boot = n:info().boot_id
local fault = assert(inject_xid(n, param("gpu", 0), 79))
local t0 = fault.at

local stages = {}
local function stage(name, result, err)
  assert(result, err) -- a timeout stops the script with what was observed
  stages[#stages + 1] = { stage = name, at = result.at - t0 }
end

stage("detected (condition)", wait_condition(n, "SysLogsXIDError", { timeout = "2m" }))
stage("cordoned", wait_cordoned(n, { timeout = "1m" }))
stage("draining", wait_state(n, "draining", { timeout = "1m" }))
stage("drained", wait_state(n, { "drain-succeeded", "remediating", "remediation-succeeded" }, { timeout = "30m" }))
stage("RebootNode created", wait_state(n, "remediation-succeeded", { timeout = "10m" }))
stage("rebooted", wait_rebooted(n, { since = boot, timeout = "30m" }))
stage("Ready", wait_ready(n, { timeout = "15m" }))
stage("uncordoned", wait_uncordoned(n, { timeout = "30m" }))

print(report.table(stages, {
  { "stage", "stage" },
  { key = "at", title = "since injection", fmt = function(v) return fmt_duration(v) end },
}))

-- The labels NVSentinel leaves behind after the uncordon.
local labels = n:labels()
print("uncordon-reason: " .. tostring(labels["k8saas.nvidia.com/uncordon-reason"]))
check("recovered within 15 minutes", stages[#stages].at <= duration("15m"), fmt_duration(stages[#stages].at))

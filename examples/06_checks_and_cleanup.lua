-- 06: checks, thresholds and a cleanup that always runs.
--
--   gfi run examples/06_checks_and_cleanup.lua; echo "exit status $?"
--
-- check() records a named pass or failure in the journal; any failure makes `gfi run` exit
-- with status 3, so a CI job can gate on NVSentinel's behaviour. cleanup() registers what must
-- happen at the end even when the script fails or is interrupted with Ctrl-C.
local check = require "check"
local scenario = require "scenario"

local n = node("gpu-node-005")
cleanup(function()
  if n:cordoned() then uncordon(n) end
end, "leave gpu-node-005 schedulable")

local times = {}
for round = 1, 3 do
  local r = scenario.run(n, round, 79)
  check.that(("round %d recovered"):format(round), r.ok, r.error)
  times[#times + 1] = r.timings.cordoned
end
check.threshold("time to cordon", times, "p95 < 30s")
check.within("slowest cordon", math.max(table.unpack(times)), "30s")

-- XID 74 asks for CONTACT_SUPPORT: the node stays cordoned, and the cleanup above uncordons it.
local stuck = scenario.run(n, 0, 74, { timeouts = { hold = param("hold", "5m") } })
check.eq("XID 74 leaves the node cordoned", stuck.outcome, "stays cordoned (remediation-failed)")

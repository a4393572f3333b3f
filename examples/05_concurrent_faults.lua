-- 05: faults on several nodes at once, followed concurrently, summarised.
--
--   gfi run examples/05_concurrent_faults.lua --seed 7
--
-- spawn() runs a function next to the script; scenario.run() injects one XID and follows
-- NVSentinel's reaction stage by stage, judging it against the catalogue's expectation.
local scenario = require "scenario"
local report = require "report"

-- Three fatal XIDs on three nodes, a few seconds apart: below the circuit breaker's 50 %.
local faults = { { "gpu-node-001", 79 }, { "gpu-node-002", 48 }, { "gpu-node-003", 74 } }
local tasks = {}
for i, f in ipairs(faults) do
  local gpu = rand.int(0, 7) -- seeded by --seed: the same run every time
  tasks[i] = spawn(f[1], function()
    sleep(i * 5)
    -- hold: how long XID 74 must leave its node cordoned (--arg hold=30s on a real cluster).
    return scenario.run(f[1], gpu, f[2], { timeouts = { hold = param("hold", "10m") } })
  end)
end

local results = {}
for i, t in ipairs(tasks) do
  results[i] = t:wait()
  print(scenario.describe(results[i]))
end
print(report.stage_table(results))
for _, r in ipairs(results) do
  check(("%s XID %d: %s"):format(r.node, r.xid, r.expected), r.ok, r.error)
end

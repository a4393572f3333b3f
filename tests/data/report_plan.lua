-- A plan for tests/report.rs: three faults on three nodes (a recovery, a stays-cordoned and a
-- no-cordon), a check that fails on purpose, then a script error (a node that is not there).
local scenario = require "scenario"

local faults = { { "gpu-node-001", 79 }, { "gpu-node-002", 74 }, { "gpu-node-003", 13 } }
local tasks = {}
for i, f in ipairs(faults) do
  tasks[i] = spawn(function()
    sleep(i * 5)
    return scenario.run(f[1], 0, f[2], { timeouts = { hold = "2m" } })
  end)
end
for _, t in ipairs(tasks) do
  local r = t:wait()
  check(("%s XID %d: %s"):format(r.node, r.xid, r.expected), r.ok, r.error)
end

check("time to cordon", false, "p95 = 9.3s, want p95 < 1s")
inject_xid("gpu-node-404", 0, 79)

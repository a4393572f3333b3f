--! sim: {nodes: 20, gpus_per_node: 4}
-- plan: seeded random plans, run concurrently, summarised.
local plan = require "plan"
local report = require "report"
local p = plan.random { duration = "3h", faults = 12, xids = { [79] = 2, [13] = 1, [74] = 1 } }
assert(#p.faults == 12)
for i = 2, #p.faults do assert(p.faults[i - 1].at <= p.faults[i].at) end
for _, f in ipairs(p.faults) do
  assert(f.at >= 0 and f.at <= 3 * 3600)
  assert(f.gpu >= 0 and f.gpu <= 3)
  assert(f.xid == 79 or f.xid == 13 or f.xid == 74)
end
assert(p:describe():find("^12 faults over 3h: "), p:describe())
local s = p:run()
assert(s.planned == 12 and s.injected + s.skipped == 12)
assert(s.unexpected == 0, "unexpected results: " .. s.unexpected)
assert(s.as_expected == s.injected)
assert(#s.timings.cordoned > 0)
assert(report.stage_table(s.results):find("cordoned", 1, true))
assert(now() >= p.faults[#p.faults].at)

-- The same seed gives the same plan.
math.randomseed(99)
local a = plan.random { duration = "1h", faults = 5 }
math.randomseed(99)
local b = plan.random { duration = "1h", faults = 5 }
for i = 1, 5 do
  assert(a.faults[i].node == b.faults[i].node and a.faults[i].at == b.faults[i].at and a.faults[i].xid == b.faults[i].xid)
end
local q = plan.random { duration = "1h", faults = 30, arrival = "poisson", nodes = { "gpu-node-001", node("gpu-node-002") }, xids = { 13 } }
for _, f in ipairs(q.faults) do assert(f.node == "gpu-node-001" or f.node == "gpu-node-002") end
local e = plan.from { { at = "10m", node = "gpu-node-010", gpu = 1, xid = 48 }, { at = 0, node = "gpu-node-011", xid = 13 } }
assert(e.faults[1].node == "gpu-node-011" and e.faults[2].at == 600)
local es = e:run()
assert(es.as_expected == 2, "explicit plan ran as expected")
expect_error(function() plan.random { faults = 1, colour = "red" } end, "unknown field 'colour'")
expect_error(function() plan.random { faults = -1 } end, "faults must be a whole number")
expect_error(function() plan.random { faults = 1, xids = { 0 } } end, "out of range")
expect_error(function() plan.random { faults = 1, arrival = "sometimes" } end, "arrival must be")
expect_error(function() p:run { on_busy = "panic" } end, "on_busy must be")

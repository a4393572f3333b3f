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

-- Arrivals: fixed is evenly spaced, exponential (poisson) grows; one GPU per node.
local fx = plan.random { duration = "1h", faults = 4, arrival = "fixed", nodes = "nvidia.com/gpu.present=true" }
for i, f in ipairs(fx.faults) do assert(f.at == (i - 1) * 900, ("fixed: %d at %s"):format(i, f.at)) end
local one = plan.random { duration = "1h", faults = 40, gpus = "one_per_node", nodes = { "gpu-node-001", "gpu-node-002" } }
local gpu_of = {}
for _, f in ipairs(one.faults) do
  gpu_of[f.node] = gpu_of[f.node] or f.gpu
  assert(gpu_of[f.node] == f.gpu, "one GPU per node")
end
local ex = plan.random { duration = "1h", faults = 20, arrival = "exponential", xids = { 13 } }
for i = 2, #ex.faults do assert(ex.faults[i].at > ex.faults[i - 1].at) end
expect_error(function() plan.random { faults = 1, gpus = "all" } end, "gpus must be 'any' or 'one_per_node'")
expect_error(function() plan.random { faults = 1, nodes = "nope=1" } end, "no nodes to inject into")

-- The guard decides the targets: only opted-in nodes, once a guard requires the label.
sim.label("gpu-node-005", "gfi.dev/fault-target", "true")
guard { require_label = true }
local g = plan.random { duration = "1h", faults = 6 }
for _, f in ipairs(g.faults) do assert(f.node == "gpu-node-005", f.node) end
assert(#plan.random({ duration = "1h", faults = 6, guarded = false }).faults == 6)

-- A burst: n lines evenly within the window, or n-1.
local b = plan.burst { node = "gpu-node-005", gpu = 1, xid = 13, count = 4, within = "1m", at = "10s" }
assert(#b.faults == 4 and b.faults[1].at == 10 and b.faults[4].at == 10 + 45, b.faults[4].at)
local short = plan.burst { node = "gpu-node-005", xid = 13, count = 4, within = "1m", below = true }
assert(#short.faults == 3)
local before = sim.stats().injections
local bs = short:run()
assert(bs.lines == 3 and sim.stats().injections == before + 3 and bs.injected == 0)
assert(b:schedule():find("gpu%-node%-005%s+1%s+13%s+line"), b:schedule())
expect_error(function() plan.burst { node = "gpu-node-005", xid = 13, count = 0 } end, "count must be a whole number")
expect_error(function() plan.burst { xid = 13, count = 2 } end, "node and xid are required")

-- A cap on concurrent faults: at most two followed at once.
sim.label("gpu-node-006", "gfi.dev/fault-target", "true")
sim.label("gpu-node-007", "gfi.dev/fault-target", "true")
local capped = plan.from {
  { at = 0, node = "gpu-node-005", xid = 79 }, { at = 0, node = "gpu-node-006", xid = 79 },
  { at = 0, node = "gpu-node-007", xid = 79 },
}
local cs = capped:run { max_concurrent = 2 }
assert(cs.injected == 3 and cs.as_expected == 3 and cs.delayed == 1, ("%d %d %d"):format(cs.injected, cs.as_expected, cs.delayed))
local third = cs.results[3]
local first_free = math.min(cs.results[1].at + cs.results[1].timings.uncordoned, cs.results[2].at + cs.results[2].timings.uncordoned)
assert(third.at >= first_free - 0.001, ("the third waited for a slot: %s < %s"):format(third.at, first_free))
expect_error(function() capped:run { max_concurrent = 0 } end, "max_concurrent must be")

-- A plan that would trip NVSentinel's breaker (50 % of 20 GPU nodes within 5 minutes) is
-- warned about before it starts.
local many = {}
for i = 1, 10 do many[i] = { at = i, node = ("gpu-node-%03d"):format(i), xid = 79 } end
local warning = plan.from(many):breaker_warning()
assert(warning and warning:find("expect it to TRIP"), tostring(warning))
assert(plan.from(many):breaker_warning(3) == nil, "a cap of 3 cannot reach 10")
local limits = breaker_limits()
assert(limits.threshold == 10 and limits.window == 300)

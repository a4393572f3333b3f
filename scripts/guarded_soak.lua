-- A seeded randomized soak with guardrails: faults arrive as a Poisson process over the GPU
-- nodes the guard allows, one GPU per node, a weighted XID mix, at most a few followed at
-- once; the guard stops the soak before more than max_unavailable nodes are out, and the
-- tripwire stops it on a real GPU fault. `--dry-run` prints its schedule.
--
--   gfi run scripts/guarded_soak.lua --seed 7 --sim-nodes 50 --arg duration=24h
--   gfi run scripts/guarded_soak.lua --seed 7 --dry-run
local plan = require "plan"
local report = require "report"
local check = require "check"
local scenario = require "scenario"

return scenario.define {
  name = "guarded-soak",
  description = "seeded randomized soak under guardrails: Poisson arrivals, one GPU per node, capped concurrency",
  categories = { "randomized", "cordons-node", "drains-node", "reboots-node", "slow" },
  args = {
    duration = { default = "6h", description = "how long faults keep arriving" },
    per_node = { default = 2, description = "faults per target node, on average" },
    max_unavailable = { default = "25%", description = "guard: most pool nodes unavailable at once" },
    require_label = { default = "", description = "guard: only nodes with this label (key=value)" },
    window = { default = "", description = "guard: inject only within this window, e.g. \"Mon-Fri 09:00-17:00 +01:00\"" },
    concurrent = { default = 2, description = "most faults followed at once" },
    p95_recovery = { default = "20m", description = "threshold: p95 time to uncordon after a fatal XID" },
  },
  setup = function(ctx)
    local a = ctx.args
    guard {
      max_unavailable = a.max_unavailable,
      require_label = a.require_label ~= "" and a.require_label or nil,
      window = a.window ~= "" and a.window or nil,
    }
    local targets = guard_targets(assert(gpu_nodes()))
    assert(#targets > 0, "the guard allows no node (is the opt-in label set?)")
    ctx.state.plan = plan.random {
      duration = a.duration,
      faults = math.max(1, math.floor(#targets * a.per_node)),
      nodes = targets,
      gpus = "one_per_node",
      arrival = "exponential",
      xids = { [79] = 5, [48] = 3, [94] = 2, [119] = 1, [13] = 3, [31] = 2, [74] = 1 },
    }
    log(("soak: %s on %d nodes"):format(ctx.state.plan:describe(), #targets))
  end,
  action = function(ctx)
    ctx.state.summary = ctx.state.plan:run { max_concurrent = math.floor(ctx.args.concurrent), log = false }
  end,
  verify = function(ctx)
    if dry_run then return end
    local s = ctx.state.summary
    report.print_summary(s)
    check.eq("every followed fault got the expected reaction", s.unexpected, 0)
    check.threshold("time to uncordon after a fatal XID", s.timings.uncordoned, "p95 < " .. ctx.args.p95_recovery)
    check.eq("the circuit breaker never tripped", assert(circuit_breaker()).status, "CLOSED")
  end,
}

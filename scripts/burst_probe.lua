-- A burst probe for a detector's window ("n lines within t"): n lines of one XID on one GPU
-- within t, then n-1 lines on another node, which must not trigger. Tells whether the
-- cluster's NVSentinel reacts to repeats, and checks it against what you expect.
--
--   gfi run scripts/burst_probe.lua --arg xid=13 --arg count=5 --arg within=1m
local plan = require "plan"
local check = require "check"
local scenario = require "scenario"

return scenario.define {
  name = "burst-probe",
  description = "n lines of one XID within t must trigger (when expected); n-1 must not",
  categories = { "probe", "safe" },
  args = {
    xid = { default = 13, description = "the XID to repeat (a non-fatal one keeps the probe safe)" },
    count = { default = 5, description = "n: lines the detector needs" },
    within = { default = "1m", description = "t: the detector's window" },
    hold = { default = "5m", description = "how long to watch for a cordon after each burst" },
    expect_trigger = { default = false, description = "whether n lines within t should cordon the node" },
  },
  setup = function(ctx)
    local targets = guard_targets(assert(gpu_nodes()))
    assert(#targets >= 2, "the probe needs two nodes the guard allows")
    ctx.state.full, ctx.state.short = targets[1], targets[2]
  end,
  action = function(ctx)
    local a = ctx.args
    local n = math.floor(a.count)
    local function probe(target, below)
      plan.burst { node = target, gpu = 0, xid = math.floor(a.xid), count = n, within = a.within, below = below }:run()
      if dry_run then return false end
      return wait_cordoned(target, { timeout = a.hold }) ~= nil
    end
    ctx.state.full_cordoned = probe(ctx.state.full, false)
    ctx.state.short_cordoned = probe(ctx.state.short, true)
    log(("XID %d: %d lines within %s %s; %d lines %s"):format(a.xid, n, a.within,
      ctx.state.full_cordoned and "cordoned" or "did not cordon", n - 1,
      ctx.state.short_cordoned and "cordoned" or "did not cordon"))
  end,
  verify = function(ctx)
    if dry_run then return end
    local a = ctx.args
    check.eq(("%d lines within %s trigger as expected"):format(a.count, a.within), ctx.state.full_cordoned, a.expect_trigger)
    if a.expect_trigger then
      check.that(("%d lines (n-1) do not trigger"):format(a.count - 1), not ctx.state.short_cordoned)
    end
  end,
  cleanup = function(ctx)
    for _, n in ipairs { ctx.state.full, ctx.state.short } do
      if n and node(n):cordoned() then uncordon(n) end
    end
  end,
}

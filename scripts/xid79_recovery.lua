-- XID 79 (GPU has fallen off the bus): NVSentinel must detect it, cordon, drain, reboot the
-- node and uncordon it once it is healthy again. Every stage is timed.
--
--   gfi run scripts/xid79_recovery.lua --arg node=gpu-node-003 --arg within=30m
local scenario = require "scenario"
local check = require "check"

return scenario.define {
  name = "xid79-recovery",
  description = "XID 79 on one GPU: detect, cordon, drain, reboot, uncordon, each stage timed",
  categories = { "cordons-node", "drains-node", "reboots-node" },
  args = {
    node = { default = "", description = "the node (default: the first GPU node the guard allows)" },
    gpu = { default = 0, description = "GPU index" },
    within = { default = "30m", description = "the whole recovery must finish within this" },
  },
  setup = function(ctx)
    local candidates = ctx.args.node ~= "" and { ctx.args.node } or assert(gpu_nodes())
    ctx.state.node = assert(guard_targets(candidates)[1], "no node the guard allows")
    local n = node(ctx.state.node)
    assert(not n:cordoned(), ctx.state.node .. " is already cordoned: pick another node")
  end,
  action = function(ctx)
    ctx.state.result = scenario.recovery(ctx.state.node, math.floor(ctx.args.gpu), 79)
  end,
  verify = function(ctx)
    local r = ctx.state.result
    log(scenario.describe(r))
    check.that("XID 79 fully recovered", r.ok, r.error)
    check.within("time to uncordon", r.timings.uncordoned, ctx.args.within)
  end,
  cleanup = function(ctx)
    if ctx.state.node and node(ctx.state.node):cordoned() then uncordon(ctx.state.node) end
  end,
}

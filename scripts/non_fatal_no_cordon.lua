-- Every non-fatal XID of the catalogue, one after another on one node: NVSentinel must record
-- each (a Kubernetes Event) and never cordon the node for it.
--
--   gfi run scripts/non_fatal_no_cordon.lua --arg window=2m
local scenario = require "scenario"
local check = require "check"

return scenario.define {
  name = "non-fatal-no-cordon",
  description = "every non-fatal catalogue XID: an Event, and no cordon within the window",
  categories = { "safe" },
  args = {
    node = { default = "", description = "the node (default: the first GPU node the guard allows)" },
    window = { default = "3m", description = "how long each XID must leave the node schedulable" },
    limit = { default = 0, description = "test only the first N non-fatal XIDs (0: all)" },
  },
  setup = function(ctx)
    local candidates = ctx.args.node ~= "" and { ctx.args.node } or assert(gpu_nodes())
    ctx.state.node = assert(guard_targets(candidates)[1], "no node the guard allows")
    ctx.state.xids = {}
    for _, x in ipairs(xids()) do
      if not x.fatal and (ctx.args.limit == 0 or #ctx.state.xids < ctx.args.limit) then
        ctx.state.xids[#ctx.state.xids + 1] = x.xid
      end
    end
  end,
  action = function(ctx)
    ctx.state.results = {}
    for i, x in ipairs(ctx.state.xids) do
      local r = scenario.no_cordon(ctx.state.node, (i - 1) % #assert(gpus(ctx.state.node)), x,
        { timeouts = { hold = ctx.args.window } })
      ctx.state.results[#ctx.state.results + 1] = r
      if not r.ok then warn(scenario.describe(r)) end
    end
  end,
  verify = function(ctx)
    local bad = 0
    for _, r in ipairs(ctx.state.results) do
      if not r.ok then bad = bad + 1 end
    end
    log(("%d non-fatal XIDs, %d cordoned or unrecorded"):format(#ctx.state.results, bad))
    check.eq("no non-fatal XID cordoned its node", bad, 0)
  end,
  cleanup = function(ctx)
    if ctx.state.node and node(ctx.state.node):cordoned() then uncordon(ctx.state.node) end
  end,
}

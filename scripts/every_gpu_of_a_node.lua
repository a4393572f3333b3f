-- One XID on every GPU of one node in turn, each followed to its end: does NVSentinel handle
-- each GPU the same (the PCI address, the UUID, the remediation)?
--
--   gfi run scripts/every_gpu_of_a_node.lua --arg xid=79
local scenario = require "scenario"
local report = require "report"
local check = require "check"

return scenario.define {
  name = "every-gpu-of-a-node",
  description = "the same XID on each GPU of one node in turn, each judged and timed",
  categories = { "cordons-node", "drains-node", "reboots-node", "slow" },
  args = {
    node = { default = "", description = "the node (default: the first GPU node the guard allows)" },
    xid = { default = 79, description = "the XID to inject" },
  },
  setup = function(ctx)
    local candidates = ctx.args.node ~= "" and { ctx.args.node } or assert(gpu_nodes())
    ctx.state.node = assert(guard_targets(candidates)[1], "no node the guard allows")
    ctx.state.gpus = assert(gpus(ctx.state.node))
  end,
  action = function(ctx)
    ctx.state.results = {}
    for _, g in ipairs(ctx.state.gpus) do
      local r = scenario.run(ctx.state.node, g.index, math.floor(ctx.args.xid), { timeouts = { hold = "5m" } })
      ctx.state.results[#ctx.state.results + 1] = r
      log(scenario.describe(r))
      -- A node held cordoned on purpose is released before the next GPU.
      if r.ok and r.expected == "stay_cordoned" then uncordon(ctx.state.node) end
    end
  end,
  verify = function(ctx)
    for _, r in ipairs(ctx.state.results) do
      check.that(("GPU %d: %s"):format(r.gpu, r.expected), r.ok, r.error)
    end
    print(report.stage_table(ctx.state.results))
  end,
  cleanup = function(ctx)
    if ctx.state.node and node(ctx.state.node):cordoned() then uncordon(ctx.state.node) end
  end,
}

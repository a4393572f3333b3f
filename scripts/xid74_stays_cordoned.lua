-- XID 74 (NVLink error): CONTACT_SUPPORT. NVSentinel cordons and drains, does not reboot,
-- and leaves the node cordoned (remediation-failed) for a person to look at.
--
--   gfi run scripts/xid74_stays_cordoned.lua --arg hold=30m
local scenario = require "scenario"
local check = require "check"

return scenario.define {
  name = "xid74-stays-cordoned",
  description = "XID 74 (contact support): cordon, no reboot, the node stays cordoned",
  categories = { "cordons-node", "drains-node" },
  args = {
    node = { default = "", description = "the node (default: the first GPU node the guard allows)" },
    gpu = { default = 2, description = "GPU index" },
    hold = { default = "15m", description = "how long the node must stay cordoned" },
    release = { default = true, description = "uncordon the node at the end, as an operator would" },
  },
  setup = function(ctx)
    local candidates = ctx.args.node ~= "" and { ctx.args.node } or assert(gpu_nodes())
    ctx.state.node = assert(guard_targets(candidates)[1], "no node the guard allows")
    ctx.state.boot = node(ctx.state.node):info().boot_id
  end,
  action = function(ctx)
    ctx.state.result = scenario.run(ctx.state.node, math.floor(ctx.args.gpu), 74,
      { timeouts = { hold = ctx.args.hold } })
  end,
  verify = function(ctx)
    local r = ctx.state.result
    log(scenario.describe(r))
    check.eq("XID 74 is expected to stay cordoned", r.expected, "stay_cordoned")
    check.that("cordoned and held for " .. ctx.args.hold, r.ok, r.error)
    local n = node(ctx.state.node)
    check.that("never rebooted", n:info().boot_id == ctx.state.boot)
    check.that("still cordoned", n:cordoned())
  end,
  cleanup = function(ctx)
    if ctx.args.release and ctx.state.node and node(ctx.state.node):cordoned() then uncordon(ctx.state.node) end
  end,
}

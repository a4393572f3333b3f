-- XID 48 (double-bit ECC error): the catalogue's action is COMPONENT_RESET, which NVSentinel
-- carries out as a RebootNode when it knows the GPU's UUID (its GPU metadata), and as a VM
-- restart when it does not. Either way the node must recover.
--
--   gfi run scripts/xid48_component_reset.lua --arg node=gpu-node-002
local scenario = require "scenario"
local check = require "check"

return scenario.define {
  name = "xid48-component-reset",
  description = "XID 48 takes the component-reset path: cordon, drain, RebootNode, uncordon",
  categories = { "cordons-node", "drains-node", "reboots-node" },
  args = {
    node = { default = "", description = "the node (default: the first GPU node the guard allows)" },
    gpu = { default = 1, description = "GPU index" },
  },
  setup = function(ctx)
    local info = xid(48)
    check.eq("the catalogue's action for XID 48", info.action, "COMPONENT_RESET")
    local candidates = ctx.args.node ~= "" and { ctx.args.node } or assert(gpu_nodes())
    ctx.state.node = assert(guard_targets(candidates)[1], "no node the guard allows")
  end,
  action = function(ctx)
    ctx.state.result = scenario.run(ctx.state.node, math.floor(ctx.args.gpu), 48)
  end,
  verify = function(ctx)
    local r = ctx.state.result
    log(scenario.describe(r))
    check.eq("XID 48 is expected to recover", r.expected, "recover")
    check.that("XID 48 recovered through remediation", r.ok, r.error)
    check.that("a remediation ran", r.timings.remediated ~= nil)
  end,
  cleanup = function(ctx)
    if ctx.state.node and node(ctx.state.node):cordoned() then uncordon(ctx.state.node) end
  end,
}

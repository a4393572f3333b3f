-- The Lua half of the API, loaded into every fresh state: methods on node and GPU handles,
-- and helpers built on the primitives. Each method calls the global primitive with the handle,
-- so there is one implementation of everything.
local gfi = gfi
local Node, Gpu = gfi.Node, gfi.Gpu

function Node.info(self) return gfi.node_info(self) end
function Node.gpus(self) return gfi.gpus(self) end
function Node.gpu(self, which) return gfi.gpu(self, which) end
function Node.pods(self) return gfi.pods(self) end
function Node.events(self) return gfi.events(self) end
function Node.kmsg_tail(self, opts) return gfi.kmsg_tail(self, opts) end
function Node.inject_xid(self, gpu, xid, opts) return gfi.inject_xid(self, gpu, xid, opts) end
function Node.uncordon(self) return gfi.uncordon(self) end
function Node.wait_cordoned(self, opts) return gfi.wait_cordoned(self, opts) end
function Node.wait_uncordoned(self, opts) return gfi.wait_uncordoned(self, opts) end
function Node.wait_condition(self, type, opts) return gfi.wait_condition(self, type, opts) end
function Node.wait_state(self, value, opts) return gfi.wait_state(self, value, opts) end
function Node.wait_label(self, key, value, opts) return gfi.wait_label(self, key, value, opts) end
function Node.wait_rebooted(self, opts) return gfi.wait_rebooted(self, opts) end
function Node.wait_ready(self, opts) return gfi.wait_ready(self, opts) end
function Node.wait_remediation(self, opts) return gfi.wait_remediation(self, opts) end
function Node.wait_drained(self, opts) return gfi.wait_drained(self, opts) end
function Node.heal(self) return gfi.heal(self) end
function Node.cordoned(self) return assert(gfi.node_info(self)).cordoned end
function Node.ready(self) return assert(gfi.node_info(self)).ready end
function Node.state(self) return assert(gfi.node_info(self)).state end
function Node.labels(self) return assert(gfi.node_info(self)).labels end
function Node.condition(self, type) return assert(gfi.node_info(self)).conditions[type] end

function Gpu.inject_xid(self, xid, opts) return gfi.inject_xid(self.node, self, xid, opts) end

--- Runs functions concurrently and returns their first results, in order. Raises after all
--- have finished when any of them failed.
function gfi.parallel(...)
  local fns = ...
  if select("#", ...) ~= 1 or type(fns) ~= "table" then fns = { ... } end
  local tasks = {}
  for i, f in ipairs(fns) do
    if type(f) ~= "function" then
      error(("parallel: item %d must be a function, got %s"):format(i, type(f)), 2)
    end
    tasks[i] = gfi.spawn("parallel-" .. i, f)
  end
  local results, failures = {}, {}
  for i, t in ipairs(tasks) do
    local ok, r = pcall(t.wait, t)
    if ok then results[i] = r else failures[#failures + 1] = tostring(r) end
  end
  if #failures > 0 then
    error(("parallel: %d of %d failed: %s"):format(#failures, #tasks, table.concat(failures, "; ")), 2)
  end
  return results
end

--- Nodes labelled nvidia.com/gpu.present=true.
function gfi.gpu_nodes()
  return gfi.nodes("nvidia.com/gpu.present=true")
end

--- A script argument (`--arg name=value`) converted to the type of `default`.
function gfi.param(name, default)
  if type(name) ~= "string" then
    error("param: argument #1 (name) must be a string", 2)
  end
  local v = args[name]
  if v == nil then return default end
  local t = type(default)
  if t == "number" then
    local n = tonumber(v)
    if n == nil then error(("param: --arg %s=%s is not a number"):format(name, v), 2) end
    return n
  elseif t == "boolean" then
    if v == "true" or v == "1" or v == "yes" then return true end
    if v == "false" or v == "0" or v == "no" then return false end
    error(("param: --arg %s=%s is not true or false"):format(name, v), 2)
  end
  return v
end

for _, name in ipairs { "parallel", "gpu_nodes", "param" } do
  _G[name] = gfi[name]
end

-- The run's clock for os.time/os.date: virtual on the sim, so journals stay reproducible.
do
  local raw_time, raw_date = os.time, os.date
  os.time = function(t)
    if t == nil then return math.floor(gfi.time()) end
    return raw_time(t)
  end
  os.date = function(fmt, t)
    return raw_date(fmt, t or math.floor(gfi.time()))
  end
end

rand = require "rand"
gfi.rand = rand

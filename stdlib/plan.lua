--- Seeded randomized fault plans: what to inject where and when, built from the run's seed,
--- then run concurrently with each fault followed by a scenario.
local M = {}
local rand = require "rand"
local scenario = require "scenario"

local Plan = {}
Plan.__index = Plan

local function name_of(node)
  if type(node) == "string" then return node end
  return node.name
end

M.DEFAULT_XIDS = { [79] = 4, [48] = 2, [94] = 2, [95] = 1, [119] = 1, [13] = 2, [31] = 2, [74] = 1 }

--- A random plan. spec: duration ("1h"), faults (10), nodes (gpu_nodes()), xids (weights
--- { [79] = 4, ... } or a list), start ("0s"), arrival ("uniform" or "poisson").
function M.random(spec)
  spec = spec or {}
  local known = { duration = 1, faults = 1, nodes = 1, xids = 1, start = 1, arrival = 1 }
  for k in pairs(spec) do
    if not known[k] then error(("plan.random: unknown field '%s' (duration, faults, nodes, xids, start, arrival)"):format(k), 2) end
  end
  local duration = gfi.duration(spec.duration or "1h")
  local start = gfi.duration(spec.start or 0)
  local count = spec.faults or 10
  if math.type(count) ~= "integer" or count < 0 then error("plan.random: faults must be a whole number >= 0", 2) end
  local nodes = spec.nodes or assert(gfi.gpu_nodes())
  if #nodes == 0 then error("plan.random: no nodes to inject into", 2) end
  local xids = spec.xids or M.DEFAULT_XIDS
  local pick_xid
  if #xids > 0 then
    for _, x in ipairs(xids) do gfi.xid(x) end
    pick_xid = function() return rand.choice(xids) end
  else
    for x in pairs(xids) do gfi.xid(x) end
    pick_xid = function() return rand.weighted(xids) end
  end
  local arrival = spec.arrival or "uniform"
  local gpu_count = {}
  local faults = {}
  local t = start
  for i = 1, count do
    local at
    if arrival == "uniform" then
      at = start + rand.float(0, duration)
    elseif arrival == "poisson" then
      t = t + rand.exp(duration / math.max(count, 1))
      at = t
    else
      error(("plan.random: arrival must be 'uniform' or 'poisson', got %s"):format(tostring(arrival)), 2)
    end
    local node = name_of(rand.choice(nodes))
    if gpu_count[node] == nil then gpu_count[node] = #assert(gfi.gpus(node)) end
    if gpu_count[node] == 0 then error(("plan.random: node %s has no GPUs"):format(node), 2) end
    faults[i] = { index = i, at = at, node = node, gpu = rand.int(0, gpu_count[node] - 1), xid = pick_xid() }
  end
  table.sort(faults, function(a, b) if a.at == b.at then return a.index < b.index end return a.at < b.at end)
  return setmetatable({ faults = faults, duration = duration, start = start }, Plan)
end

--- A plan from an explicit list of { at = duration, node = ..., gpu = ..., xid = ... }.
function M.from(list)
  local faults = {}
  for i, f in ipairs(list) do
    if f.node == nil or f.xid == nil then error(("plan.from: fault %d needs node and xid"):format(i), 2) end
    faults[i] = { index = i, at = gfi.duration(f.at or 0), node = name_of(f.node), gpu = f.gpu or 0, xid = f.xid }
  end
  table.sort(faults, function(a, b) if a.at == b.at then return a.index < b.index end return a.at < b.at end)
  return setmetatable({ faults = faults, duration = faults[#faults] and faults[#faults].at or 0, start = 0 }, Plan)
end

--- Counts by XID, as text.
function Plan:describe()
  local by = {}
  for _, f in ipairs(self.faults) do by[f.xid] = (by[f.xid] or 0) + 1 end
  local keys = {}
  for x in pairs(by) do keys[#keys + 1] = x end
  table.sort(keys)
  local parts = {}
  for _, x in ipairs(keys) do parts[#parts + 1] = ("XID %d x%d"):format(x, by[x]) end
  return ("%d faults over %s: %s"):format(#self.faults, gfi.fmt_duration(self.duration), table.concat(parts, ", "))
end

--- Runs the plan: each fault at its time, followed by scenario.run. opts: on_busy ("skip" a
--- fault whose node is cordoned or under another fault, or "inject" anyway), release (true:
--- uncordon a node that must stay cordoned once its hold is checked, as an operator would),
--- restore (true: a cleanup uncordons every node the plan left cordoned), timeouts, log (true).
function Plan:run(opts)
  opts = opts or {}
  local on_busy = opts.on_busy or "skip"
  if on_busy ~= "skip" and on_busy ~= "inject" then error("plan:run: on_busy must be 'skip' or 'inject'", 2) end
  local release = opts.release ~= false
  local t0 = gfi.now()
  local busy, touched, results = {}, {}, {}
  local skipped = 0
  if opts.restore ~= false then
    gfi.cleanup(function()
      local names = {}
      for n in pairs(touched) do names[#names + 1] = n end
      table.sort(names)
      for _, n in ipairs(names) do
        local ok, info = pcall(gfi.node_info, n)
        if ok and info.cordoned then gfi.uncordon(n) end
      end
    end, "plan: uncordon nodes left cordoned")
  end
  local tasks = {}
  for _, f in ipairs(self.faults) do
    tasks[#tasks + 1] = gfi.spawn("fault-" .. f.index, function()
      local delay = t0 + f.at - gfi.now()
      if delay > 0 then gfi.sleep(delay) end
      if on_busy == "skip" and (busy[f.node] or assert(gfi.node_info(f.node)).cordoned) then
        skipped = skipped + 1
        return
      end
      busy[f.node] = true
      touched[f.node] = true
      local r = scenario.run(f.node, f.gpu, f.xid, { timeouts = opts.timeouts })
      r.index = f.index
      results[#results + 1] = r
      if opts.log ~= false then
        if r.ok then gfi.log(scenario.describe(r)) else gfi.warn(scenario.describe(r)) end
      end
      if release and r.ok and r.expected == "stay_cordoned" then gfi.uncordon(f.node) end
      busy[f.node] = nil
    end)
  end
  for _, t in ipairs(tasks) do t:wait() end
  table.sort(results, function(a, b) return a.index < b.index end)
  local summary = { planned = #self.faults, injected = 0, skipped = skipped, as_expected = 0, unexpected = 0,
    results = results, timings = {} }
  for _, r in ipairs(results) do
    if r.fault_id then summary.injected = summary.injected + 1 end
    if r.ok then summary.as_expected = summary.as_expected + 1 else summary.unexpected = summary.unexpected + 1 end
    for stage, secs in pairs(r.timings) do
      summary.timings[stage] = summary.timings[stage] or {}
      table.insert(summary.timings[stage], secs)
    end
  end
  for _, list in pairs(summary.timings) do table.sort(list) end
  return summary
end

M.Plan = Plan
return M

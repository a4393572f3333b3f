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

local function sort_faults(faults)
  table.sort(faults, function(a, b) if a.at == b.at then return a.index < b.index end return a.at < b.at end)
end

-- A selector string, a list of nodes, or every GPU node; then only those the guard allows.
local function target_names(nodes, guarded)
  if nodes == nil then nodes = assert(gfi.gpu_nodes())
  elseif type(nodes) == "string" then nodes = assert(gfi.nodes(nodes)) end
  if type(nodes) ~= "table" then error("plan.random: nodes must be a list of nodes or a label selector", 3) end
  if guarded ~= false then nodes = gfi.guard_targets(nodes) end
  local names = {}
  for i, n in ipairs(nodes) do names[i] = name_of(n) end
  return names
end

--- A random plan. spec: duration ("1h"), faults (10), nodes (a list, or a label selector;
--- gpu_nodes() by default; only those the guard allows unless guarded = false), gpus ("any",
--- or "one_per_node": each node's faults all hit one GPU picked for it), xids (weights
--- { [79] = 4, ... } or a list), start ("0s"), arrival ("uniform": independent times,
--- "fixed": evenly spaced, "exponential" (or "poisson"): exponential gaps, a Poisson process).
function M.random(spec)
  spec = spec or {}
  local known = { duration = 1, faults = 1, nodes = 1, xids = 1, start = 1, arrival = 1, gpus = 1, guarded = 1 }
  for k in pairs(spec) do
    if not known[k] then error(("plan.random: unknown field '%s' (duration, faults, nodes, gpus, xids, start, arrival, guarded)"):format(k), 2) end
  end
  local duration = gfi.duration(spec.duration or "1h")
  local start = gfi.duration(spec.start or 0)
  local count = spec.faults or 10
  if math.type(count) ~= "integer" or count < 0 then error("plan.random: faults must be a whole number >= 0", 2) end
  local gpu_mode = spec.gpus or "any"
  if gpu_mode ~= "any" and gpu_mode ~= "one_per_node" then
    error(("plan.random: gpus must be 'any' or 'one_per_node', got %s"):format(tostring(gpu_mode)), 2)
  end
  local arrival = spec.arrival or "uniform"
  if arrival == "poisson" then arrival = "exponential" end
  if arrival ~= "uniform" and arrival ~= "fixed" and arrival ~= "exponential" then
    error(("plan.random: arrival must be 'uniform', 'fixed' or 'exponential' (or 'poisson'), got %s"):format(tostring(arrival)), 2)
  end
  local nodes = target_names(spec.nodes, spec.guarded)
  if #nodes == 0 then error("plan.random: no nodes to inject into (none given, or the guard allows none)", 2) end
  local xids = spec.xids or M.DEFAULT_XIDS
  local pick_xid
  if #xids > 0 then
    for _, x in ipairs(xids) do gfi.xid(x) end
    pick_xid = function() return rand.choice(xids) end
  else
    for x in pairs(xids) do gfi.xid(x) end
    pick_xid = function() return rand.weighted(xids) end
  end
  local gpu_count, node_gpu = {}, {}
  local faults = {}
  local t = start
  for i = 1, count do
    local at
    if arrival == "uniform" then
      at = start + rand.float(0, duration)
    elseif arrival == "exponential" then
      t = t + rand.exp(duration / math.max(count, 1))
      at = t
    else
      at = start + (i - 1) * duration / count
    end
    local node = rand.choice(nodes)
    if gpu_count[node] == nil then gpu_count[node] = #assert(gfi.gpus(node)) end
    if gpu_count[node] == 0 then error(("plan.random: node %s has no GPUs"):format(node), 2) end
    local gpu
    if gpu_mode == "one_per_node" then
      node_gpu[node] = node_gpu[node] or rand.int(0, gpu_count[node] - 1)
      gpu = node_gpu[node]
    else
      gpu = rand.int(0, gpu_count[node] - 1)
    end
    faults[i] = { index = i, at = at, node = node, gpu = gpu, xid = pick_xid() }
  end
  sort_faults(faults)
  return setmetatable({ faults = faults, duration = duration, start = start }, Plan)
end

--- A burst aimed at a detector's window: count lines of one XID on one GPU, evenly spaced so
--- that all fall within `within` (the detector's "n lines within t"). below = true writes
--- count - 1, the case that must not trigger. The lines are injected, not followed: judge
--- the reaction with a wait or a check. spec: node, gpu (0), xid, count, within, at ("0s").
function M.burst(spec)
  local known = { node = 1, gpu = 1, xid = 1, count = 1, within = 1, at = 1, below = 1 }
  for k in pairs(spec or {}) do
    if not known[k] then error(("plan.burst: unknown field '%s' (node, gpu, xid, count, within, at, below)"):format(k), 2) end
  end
  if spec.node == nil or spec.xid == nil then error("plan.burst: node and xid are required", 2) end
  local count = spec.count
  if math.type(count) ~= "integer" or count < 1 then error("plan.burst: count must be a whole number >= 1", 2) end
  gfi.xid(spec.xid)
  local within = gfi.duration(spec.within or "1m")
  if within <= 0 then error("plan.burst: within must be above 0", 2) end
  local at = gfi.duration(spec.at or 0)
  local n = spec.below and count - 1 or count
  local faults = {}
  for i = 1, n do
    faults[i] = { index = i, at = at + (i - 1) * within / count, node = name_of(spec.node), gpu = spec.gpu or 0,
      xid = spec.xid, follow = false }
  end
  return setmetatable({ faults = faults, duration = within, start = at, burst = { count = count, within = within, lines = n } }, Plan)
end

--- A plan from an explicit list of { at = duration, node = ..., gpu = ..., xid = ... }.
function M.from(list)
  local faults = {}
  for i, f in ipairs(list) do
    if f.node == nil or f.xid == nil then error(("plan.from: fault %d needs node and xid"):format(i), 2) end
    faults[i] = { index = i, at = gfi.duration(f.at or 0), node = name_of(f.node), gpu = f.gpu or 0, xid = f.xid }
  end
  sort_faults(faults)
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

--- The schedule as text: one line per fault (run time, node, GPU, XID), what `gfi run
--- --dry-run` prints. The same seed and nodes give the same text on every backend.
function Plan:schedule()
  local rows = {}
  for _, f in ipairs(self.faults) do
    rows[#rows + 1] = { at = ("%10.3f"):format(f.at), t = gfi.fmt_duration(math.floor(f.at)), node = f.node, gpu = f.gpu,
      xid = f.xid, mode = f.follow == false and "line" or "followed" }
  end
  return require("report").table(rows, { { "at", "at (s)" }, { "t", "t+" }, "node", { "gpu", "GPU" }, { "xid", "XID" }, "mode" })
end

-- The most distinct nodes that get a fatal XID within any `window` seconds of the plan.
local function fatal_nodes_within(faults, window)
  local fatal = {}
  for _, f in ipairs(faults) do
    if f.follow ~= false and gfi.xid(f.xid).fatal then fatal[#fatal + 1] = f end
  end
  local most, j = 0, 1
  for i = 1, #fatal do
    while fatal[i].at - fatal[j].at > window do j = j + 1 end
    local seen, n = {}, 0
    for k = j, i do
      if not seen[fatal[k].node] then seen[fatal[k].node] = true; n = n + 1 end
    end
    most = math.max(most, n)
  end
  return most
end

--- Warns, before a plan starts, when it would trip NVSentinel's circuit breaker (as far as
--- the run knows the breaker's settings: the NVSentinel values it was given).
function Plan:breaker_warning(cap)
  local b = gfi.breaker_limits()
  if not b then return nil end
  local most = fatal_nodes_within(self.faults, b.window)
  if cap then most = math.min(most, cap) end
  if most >= b.threshold then
    local msg = ("plan: up to %d distinct nodes get a fatal XID within %s, and NVSentinel's circuit breaker trips at %d cordoned nodes in that window: expect it to TRIP (and a guard to stop the plan)")
      :format(most, gfi.fmt_duration(b.window), b.threshold)
    gfi.warn(msg)
    return msg
  end
  return nil
end

--- Runs the plan: each fault at its time, followed by scenario.run (a burst's lines are only
--- injected). opts: on_busy ("skip" a fault whose node is cordoned or under another fault, or
--- "inject" anyway), release (true: uncordon a node that must stay cordoned once its hold is
--- checked, as an operator would), restore (true: a cleanup uncordons every node the plan left
--- cordoned), max_concurrent (at most this many faults followed at once; later ones wait for
--- a slot), timeouts, log (true). Under `gfi run --dry-run` it prints the schedule instead.
function Plan:run(opts)
  opts = opts or {}
  local on_busy = opts.on_busy or "skip"
  if on_busy ~= "skip" and on_busy ~= "inject" then error("plan:run: on_busy must be 'skip' or 'inject'", 2) end
  local cap = opts.max_concurrent
  if cap ~= nil and (math.type(cap) ~= "integer" or cap < 1) then error("plan:run: max_concurrent must be a whole number >= 1", 2) end
  local summary = { planned = #self.faults, injected = 0, skipped = 0, as_expected = 0, unexpected = 0, delayed = 0,
    results = {}, timings = {}, lines = 0 }
  self:breaker_warning(cap)
  if gfi.dry_run then
    print(("dry run: %d faults, nothing injected (seed %d)"):format(#self.faults, gfi.seed))
    print(self:schedule())
    return summary
  end
  local names, seen = {}, {}
  for _, f in ipairs(self.faults) do
    if not seen[f.node] then seen[f.node] = true; names[#names + 1] = f.node end
  end
  gfi.guard { targets = names }
  local release = opts.release ~= false
  local t0 = gfi.now()
  local busy, touched, results = {}, {}, {}
  if opts.restore ~= false then
    gfi.cleanup(function()
      local list = {}
      for n in pairs(touched) do list[#list + 1] = n end
      table.sort(list)
      for _, n in ipairs(list) do
        local ok, info = pcall(gfi.node_info, n)
        if ok and info.cordoned then gfi.uncordon(n) end
      end
    end, "plan: uncordon nodes left cordoned")
  end
  local function run_fault(f)
    local delay = t0 + f.at - gfi.now()
    if delay > 0 then gfi.sleep(delay) elseif delay < -0.5 then summary.delayed = summary.delayed + 1 end
    if f.follow == false then
      touched[f.node] = true
      assert(gfi.inject_xid(f.node, f.gpu, f.xid))
      summary.lines = summary.lines + 1
      return
    end
    if on_busy == "skip" and (busy[f.node] or assert(gfi.node_info(f.node)).cordoned) then
      summary.skipped = summary.skipped + 1
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
  end
  local tasks = {}
  if cap then
    -- A pool of workers taking faults in time order: at most `cap` followed at once.
    local next_i = 1
    for w = 1, math.min(cap, #self.faults) do
      tasks[w] = gfi.spawn("plan-worker-" .. w, function()
        while next_i <= #self.faults do
          local f = self.faults[next_i]
          next_i = next_i + 1
          run_fault(f)
        end
      end)
    end
  else
    -- Each fault's task starts when its time comes (the faults are in time order), so only the
    -- faults under way hold a task: a day of 12,000 faults has a few hundred at once, not 12,000
    -- sleeping from the start.
    local dispatch = gfi.spawn("plan-dispatch", function()
      for _, f in ipairs(self.faults) do
        local delay = t0 + f.at - gfi.now()
        if delay > 0 then gfi.sleep(delay) end
        tasks[#tasks + 1] = gfi.spawn("fault-" .. f.index, function() run_fault(f) end)
      end
    end)
    dispatch:wait()
  end
  for _, t in ipairs(tasks) do t:wait() end
  table.sort(results, function(a, b) return a.index < b.index end)
  summary.results = results
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

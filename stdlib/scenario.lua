--- Reusable scenarios: inject one XID and follow NVSentinel's reaction stage by stage,
--- judging it against what the catalogue says should happen.
---
--- Every scenario returns a result table:
---   { ok, expected, outcome, node, gpu, xid, fault_id, at, timings = { stage = seconds
---     since the injection }, error }
--- `ok` is true when NVSentinel did what was expected; a timeout or a surprise is a result with
--- ok = false and an error, never a raised error.
local M = {}

--- Stages of a full recovery, in order.
M.STAGES = { "detected", "cordoned", "draining", "drained", "remediated", "rebooted", "ready", "uncordoned" }

M.DEFAULT_TIMEOUTS = {
  detected = "2m", cordoned = "2m", draining = "5m", drained = "2h", remediated = "10m",
  rebooted = "40m", ready = "15m", uncordoned = "30m", hold = "10m",
}

local REBOOTING = { COMPONENT_RESET = true, RESTART_VM = true, RESTART_BM = true }

local function name_of(node)
  if type(node) == "string" then return node end
  return node.name
end

--- What NVSentinel should do for an XID: "recover" (cordon, drain, reboot, uncordon),
--- "stay_cordoned" (cordon, remediation-failed), or "no_cordon" (an Event only). The action
--- is the catalogue's as the NVSentinel values the run was given change it (their XID
--- overrides; modules that are off or cannot act), when the run knows them.
function M.expectation(xid_number)
  local action, _, fatal = gfi.expected_action(xid_number)
  local nvs = gfi.nvsentinel()
  if not fatal or (nvs and (not nvs.acts or not nvs.quarantine or not nvs.monitor)) then return "no_cordon" end
  if REBOOTING[action] and (nvs == nil or nvs.remediation) then return "recover" end
  return "stay_cordoned"
end

local function timeouts(opts)
  local t = {}
  for k, v in pairs(M.DEFAULT_TIMEOUTS) do t[k] = v end
  for k, v in pairs(opts and opts.timeouts or {}) do
    if M.DEFAULT_TIMEOUTS[k] == nil then
      error(("scenario: unknown timeout '%s'"):format(k), 3)
    end
    t[k] = v
  end
  return t
end

local function new_result(node, gpu, xid_number, expected)
  return {
    ok = true, expected = expected, node = name_of(node),
    gpu = type(gpu) == "number" and gpu or gpu.index, xid = xid_number, timings = {},
  }
end

local function fail(res, stage, err)
  res.ok = false
  res.failed_stage = stage
  res.error = err
  return res
end

-- Waits for one stage; records its time since the injection.
local function stage(res, name, r, err)
  if not r then
    fail(res, name, err)
    return false
  end
  res.timings[name] = r.at - res.at
  return r
end

--- Injects and follows the whole chain. opts: timeouts = {stage = duration}, line = inject
--- options, expect = override the expectation.
function M.run(node, gpu, xid_number, opts)
  opts = opts or {}
  local expected = opts.expect or M.expectation(xid_number)
  local res = new_result(node, gpu, xid_number, expected)
  local t = timeouts(opts)
  local before = assert(gfi.node_info(node))
  local fault, err = gfi.inject_xid(node, gpu, xid_number, opts.line)
  if not fault then return fail(res, "inject", err) end
  res.fault_id, res.at, res.gpu = fault.id, fault.at, fault.gpu

  if expected == "no_cordon" then
    local r, _ = gfi.wait_cordoned(node, { timeout = t.hold })
    if r then return fail(res, "no_cordon", ("%s was cordoned for non-fatal XID %d"):format(res.node, xid_number)) end
    -- A fatal XID that NVSentinel does not act on sets the condition, not an Event.
    local fatal = select(3, gfi.expected_action(xid_number))
    local ok, events = pcall(gfi.events, node)
    if ok and not fatal then
      local seen = false
      for _, e in ipairs(events) do
        if e.reason == "SysLogsXIDErrorIsNotHealthy" and e.message:find("ErrorCode:" .. xid_number, 1, true) then seen = true end
      end
      if not seen then return fail(res, "event", ("no SysLogsXIDErrorIsNotHealthy Event for XID %d on %s"):format(xid_number, res.node)) end
    end
    res.outcome = "event, no cordon"
    return res
  end

  if not stage(res, "detected", gfi.wait_condition(node, "SysLogsXIDError", { timeout = t.detected })) then return res end
  if not stage(res, "cordoned", gfi.wait_cordoned(node, { timeout = t.cordoned })) then return res end
  local r = stage(res, "draining", gfi.wait_state(node,
    { "draining", "drain-succeeded", "drain-failed", "remediating", "remediation-succeeded", "remediation-failed" },
    { timeout = t.draining }))
  if not r then return res end
  r = stage(res, "drained", gfi.wait_state(node,
    { "drain-succeeded", "drain-failed", "remediating", "remediation-succeeded", "remediation-failed" },
    { timeout = t.drained }))
  if not r then return res end
  if r.observed.state == "drain-failed" then return fail(res, "drained", res.node .. ": drain-failed") end
  r = stage(res, "remediated", gfi.wait_state(node, { "remediation-succeeded", "remediation-failed" }, { timeout = t.remediated }))
  if not r then return res end
  local remediation = r.observed.state

  if expected == "stay_cordoned" then
    if remediation ~= "remediation-failed" then
      return fail(res, "remediated", ("expected remediation-failed for XID %d, got %s"):format(xid_number, remediation))
    end
    local u = gfi.wait_uncordoned(node, { timeout = t.hold })
    if u then return fail(res, "hold", res.node .. " was uncordoned although remediation failed") end
    res.outcome = "stays cordoned (remediation-failed)"
    return res
  end

  if remediation ~= "remediation-succeeded" then
    return fail(res, "remediated", ("expected remediation-succeeded for XID %d, got %s"):format(xid_number, remediation))
  end
  if not stage(res, "rebooted", gfi.wait_rebooted(node, { since = before.boot_id, timeout = t.rebooted })) then return res end
  if not stage(res, "ready", gfi.wait_ready(node, { timeout = t.ready })) then return res end
  if not stage(res, "uncordoned", gfi.wait_uncordoned(node, { timeout = t.uncordoned })) then return res end
  res.outcome = "recovered"
  return res
end

local function by_name(list)
  local out = {}
  for _, p in ipairs(list or {}) do out[p.namespace .. "/" .. p.name] = p end
  return out
end

--- Stage assertions with measured latency: runs one fault (scenario.run) and records a check
--- per stage NVSentinel should reach for this XID (scenario.expectation): detected, cordoned,
--- draining, drained, remediated, then rebooted, ready, uncordoned for a recovery, or held
--- cordoned; a non-fatal XID must not cordon within opts.window. After a drain it checks that
--- only the namespaces NVSentinel drains lost pods and the others kept theirs (where the run
--- knows NVSentinel's values), and after a recovery that a RebootNode was created and
--- completed. opts: within = { stage = limit }, window (default 10m), timeouts, line, expect.
function M.expect(node, gpu, xid_number, opts)
  opts = opts or {}
  local t = {}
  for k, v in pairs(opts.timeouts or {}) do t[k] = v end
  if opts.window then t.hold = opts.window end
  local pods_ok, before = pcall(gfi.pods, node)
  local r = M.run(node, gpu, xid_number, { timeouts = t, line = opts.line, expect = opts.expect })
  local label = ("XID %d on %s GPU %s"):format(xid_number, r.node, tostring(r.gpu))
  local function limit_of(stage)
    local l = opts.within and opts.within[stage]
    return l and gfi.duration(l)
  end
  if r.expected == "no_cordon" then
    gfi.check(("%s: not cordoned within %s"):format(label, gfi.fmt_duration(gfi.duration(t.hold or M.DEFAULT_TIMEOUTS.hold))), r.ok, r.error)
    return r
  end
  local stages = r.expected == "recover" and M.STAGES or { "detected", "cordoned", "draining", "drained", "remediated" }
  for _, st in ipairs(stages) do
    local secs, lim = r.timings[st], limit_of(st)
    if secs == nil then
      gfi.check(("%s: %s"):format(label, st), false, r.failed_stage == st and r.error
        or ("not reached (stopped at %s: %s)"):format(tostring(r.failed_stage), tostring(r.error)))
      return r
    end
    if lim then
      gfi.check(("%s: %s within %s"):format(label, st, gfi.fmt_duration(lim)), secs <= lim, "after " .. gfi.fmt_duration(secs))
    else
      gfi.check(("%s: %s"):format(label, st), true, "after " .. gfi.fmt_duration(secs))
    end
  end
  if r.expected == "stay_cordoned" then gfi.check(label .. ": stays cordoned", r.ok, r.error) end
  -- The drain: pods left only where NVSentinel drains; DaemonSets and other namespaces stay.
  if pods_ok and gfi.drains_namespace("default") ~= nil then
    local d, _, partial = gfi.wait_drained(node, { since = r.at, timeout = "1s" })
    d = d or partial
    local left = by_name(d and d.evicted)
    local wrong, kept, gone = {}, 0, 0
    for key, p in pairs(by_name(before)) do
      local drained = gfi.drains_namespace(p.namespace) and p.owner ~= "DaemonSet"
      if left[key] and not drained then wrong[#wrong + 1] = key
      elseif left[key] then gone = gone + 1
      elseif not drained then kept = kept + 1 end
    end
    table.sort(wrong)
    gfi.check(("%s: drained only the drained namespaces (%d pods evicted, %d others untouched)"):format(label, gone, kept),
      #wrong == 0, #wrong > 0 and ("evicted outside them: " .. table.concat(wrong, ", ")) or nil)
  end
  if r.expected == "recover" then
    local nvs = gfi.nvsentinel()
    if nvs == nil or nvs.remediation then
      local cr, err = gfi.wait_remediation(node, { since = r.at, timeout = "2m" })
      gfi.check(label .. ": RebootNode created and completed", cr and cr.succeeded, cr and cr.name or err)
    end
  end
  return r
end

--- Shorthand for a fault that must be fully recovered from.
function M.recovery(node, gpu, xid_number, opts)
  opts = opts or {}
  opts.expect = "recover"
  return M.run(node, gpu, xid_number, opts)
end

--- Shorthand for a non-fatal XID that must not cordon.
function M.no_cordon(node, gpu, xid_number, opts)
  opts = opts or {}
  opts.expect = "no_cordon"
  return M.run(node, gpu, xid_number, opts)
end

--- One line per result, for logs.
function M.describe(res)
  if res.ok then
    local last = res.timings.uncordoned or res.timings.remediated or 0
    return ("%s GPU %s XID %d: %s (%s)"):format(res.node, tostring(res.gpu), res.xid, res.outcome, gfi.fmt_duration(last))
  end
  return ("%s GPU %s XID %d: UNEXPECTED at %s: %s"):format(res.node, tostring(res.gpu), res.xid,
    tostring(res.failed_stage), tostring(res.error))
end

--- Categories a scenario may declare; others are allowed but should be rare.
M.CATEGORIES = { "safe", "cordons-node", "drains-node", "reboots-node", "destructive", "randomized", "slow", "probe" }

local function need(cond, msg) if not cond then error(msg, 3) end end

--- Declares a scenario: metadata (name, description, categories, args = { name = { default,
--- description } }, timeout) and phases (setup, action, verify, cleanup), each a function of a
--- context { args, state, name }. A script returns it (`return scenario.define { ... }`); `gfi
--- run` reads the metadata without running anything (`--list`, `--help-args`, `--category`),
--- then runs the phases in order. cleanup always runs: on error, timeout, Ctrl-C and a
--- guardrail stop; its own failure is reported.
function M.define(spec)
  need(type(spec) == "table", "scenario.define: expected a table")
  local known = { name = 1, description = 1, categories = 1, args = 1, timeout = 1, setup = 1, action = 1, verify = 1, cleanup = 1 }
  for k in pairs(spec) do
    need(known[k], ("scenario.define: unknown field '%s' (name, description, categories, args, timeout, setup, action, verify, cleanup)"):format(tostring(k)))
  end
  need(type(spec.name) == "string" and spec.name:match("^[%w][%w_.-]*$"),
    "scenario.define: name must be a word of letters, digits, '-', '_' or '.'")
  need(type(spec.description) == "string" and #spec.description > 0, "scenario.define: description must be a non-empty string")
  local cats = spec.categories or {}
  need(type(cats) == "table", "scenario.define: categories must be a list of words")
  for i, c in ipairs(cats) do
    need(type(c) == "string" and c:match("^[%a][%w-]*$"), ("scenario.define: category %d must be a word like 'safe' or 'reboots-node'"):format(i))
  end
  local args = spec.args or {}
  need(type(args) == "table", "scenario.define: args must be a table { name = { default = ..., description = ... } }")
  for name, a in pairs(args) do
    need(type(name) == "string" and name:match("^[%a_][%w_]*$"), ("scenario.define: arg name %s must be an identifier"):format(tostring(name)))
    need(type(a) == "table" and type(a.description) == "string",
      ("scenario.define: arg '%s' must be { default = ..., description = \"...\" }"):format(name))
    local t = type(a.default)
    need(t == "nil" or t == "string" or t == "number" or t == "boolean",
      ("scenario.define: arg '%s': default must be a string, number or boolean"):format(name))
  end
  need(type(spec.action) == "function", "scenario.define: action must be a function (the phase that injects)")
  for _, ph in ipairs { "setup", "verify", "cleanup" } do
    need(spec[ph] == nil or type(spec[ph]) == "function", ("scenario.define: %s must be a function"):format(ph))
  end
  spec.categories = cats
  spec.args = args
  spec.__scenario = true
  return spec
end

-- The --arg values, converted to each default's type; undeclared ones are warned about.
local function resolve_args(def)
  local out = {}
  local names = {}
  for name in pairs(def.args) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do out[name] = gfi.param(name, def.args[name].default) end
  for k in pairs(args or {}) do
    if def.args[k] == nil then
      gfi.warn(("scenario %s: --arg %s is not one of its args (%s)"):format(def.name, k,
        #names > 0 and table.concat(names, ", ") or "it declares none"))
    end
  end
  return out
end

--- Runs a defined scenario's phases (gfi run does, for a script that returns one).
function M.run_defined(def)
  local ctx = { args = resolve_args(def), state = {}, name = def.name }
  if def.cleanup then
    gfi.cleanup(function() def.cleanup(ctx) end, ("scenario %s: cleanup"):format(def.name))
  end
  gfi.log(("scenario %s: %s"):format(def.name, def.description))
  local function phases()
    for _, ph in ipairs { "setup", "action", "verify" } do
      if def[ph] then
        local ok, err = pcall(def[ph], ctx)
        if not ok then error(("scenario %s: %s failed: %s"):format(def.name, ph, tostring(err)), 0) end
      end
    end
  end
  if def.timeout then
    local limit = gfi.duration(def.timeout)
    local task = gfi.spawn("scenario " .. def.name, phases)
    local done, err = task:wait(limit)
    if done == nil and task:status() == "running" then
      task:cancel()
      error(("scenario %s: timed out after %s (%s)"):format(def.name, gfi.fmt_duration(limit), tostring(err)), 0)
    end
  else
    phases()
  end
  return ctx
end

return M

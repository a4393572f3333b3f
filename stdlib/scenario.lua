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

--- What NVSentinel should do for an XID by default: "recover" (cordon, drain, reboot,
--- uncordon), "stay_cordoned" (cordon, remediation-failed), or "no_cordon" (an Event only).
function M.expectation(xid_number)
  local info = gfi.xid(xid_number)
  if not info.fatal then return "no_cordon" end
  if REBOOTING[info.action] then return "recover" end
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
    local ok, events = pcall(gfi.events, node)
    if ok then
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

return M

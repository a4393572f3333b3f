--- Checks and thresholds in the manner of k6: each records a pass or a failure in the run
--- journal; any failure makes `gfi run` exit with status 3.
local M = {}
local report = require "report"

--- Passes when cond is truthy.
function M.that(name, cond, detail) return gfi.check(name, cond, detail) end

local function cmp(op)
  return function(name, got, want)
    local ok
    if type(got) ~= "number" or type(want) ~= "number" then ok = false
    elseif op == "<" then ok = got < want
    elseif op == "<=" then ok = got <= want
    elseif op == ">" then ok = got > want
    elseif op == ">=" then ok = got >= want end
    return gfi.check(name, ok, ("%s %s %s"):format(tostring(got), op, tostring(want)))
  end
end

--- Passes when got == want.
function M.eq(name, got, want)
  return gfi.check(name, got == want, ("got %s, want %s"):format(tostring(got), tostring(want)))
end
M.lt, M.le, M.gt, M.ge = cmp "<", cmp "<=", cmp ">", cmp ">="

--- Passes when a duration in seconds is within a limit ("2m", 90, ...).
function M.within(name, seconds, limit)
  local lim = gfi.duration(limit)
  return gfi.check(name, type(seconds) == "number" and seconds <= lim,
    ("%s <= %s"):format(seconds and gfi.fmt_duration(seconds) or "nil", gfi.fmt_duration(lim)))
end

--- A threshold over a list of values: "p95 < 10m", "max <= 2h", "mean < 90s", "count >= 100".
function M.threshold(name, values, expr)
  if type(expr) ~= "string" then error("check.threshold: expr must be text like \"p95 < 10m\"", 2) end
  local stat, op, limit = expr:match("^%s*(%w+)%s*([<>]=?)%s*(%S+)%s*$")
  if not stat then error(("check.threshold: cannot read %q (expected e.g. \"p95 < 10m\")"):format(expr), 2) end
  local st = report.stats(values)
  local got = st[stat]
  if stat ~= "count" and not ({ min = 1, max = 1, mean = 1, p50 = 1, p90 = 1, p95 = 1, p99 = 1 })[stat] then
    error(("check.threshold: unknown statistic %q (count, min, max, mean, p50, p90, p95, p99)"):format(stat), 2)
  end
  local lim = stat == "count" and tonumber(limit) or gfi.duration(limit)
  local ok = got ~= nil and ((op == "<" and got < lim) or (op == "<=" and got <= lim)
    or (op == ">" and got > lim) or (op == ">=" and got >= lim))
  local shown = got == nil and "no values" or (stat == "count" and tostring(got) or gfi.fmt_duration(got))
  return gfi.check(name, ok, ("%s = %s, want %s"):format(stat, shown, expr))
end

-- The module itself can be called like gfi.check: check("name", cond).
return setmetatable(M, { __call = function(_, ...) return gfi.check(...) end })

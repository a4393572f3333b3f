--- Figures and tables for the end of a run: statistics over durations, aligned text tables,
--- and the stage-timing table of a set of scenario results.
local M = {}

local function sorted_numbers(values)
  local out = {}
  for _, v in ipairs(values or {}) do
    if type(v) == "number" then out[#out + 1] = v end
  end
  table.sort(out)
  return out
end

--- The p-th percentile (0-100) of a list of numbers, nearest-rank; nil for an empty list.
function M.percentile(values, p)
  local s = sorted_numbers(values)
  if #s == 0 then return nil end
  if type(p) ~= "number" or p < 0 or p > 100 then error("report.percentile: p must be within 0..100", 2) end
  local rank = math.max(1, math.ceil(p / 100 * #s))
  return s[rank]
end

--- count, min, max, mean, p50, p90, p95, p99 of a list of numbers.
function M.stats(values)
  local s = sorted_numbers(values)
  local st = { count = #s }
  if #s == 0 then return st end
  local sum = 0
  for _, v in ipairs(s) do sum = sum + v end
  st.min, st.max, st.mean = s[1], s[#s], sum / #s
  for _, p in ipairs { 50, 90, 95, 99 } do st["p" .. p] = M.percentile(s, p) end
  return st
end

local function fmt_cell(v)
  if v == nil then return "-" end
  if type(v) == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    return ("%.1f"):format(v)
  end
  return tostring(v)
end

--- Aligned text table. columns: list of keys, or of {key, title, fmt = function(v) ... end}.
function M.table(rows, columns)
  if type(rows) ~= "table" then error("report.table: rows must be a list of tables", 2) end
  local cols = {}
  for i, c in ipairs(columns or {}) do
    if type(c) == "string" then cols[i] = { key = c, title = c }
    else cols[i] = { key = c.key or c[1], title = c.title or c[2] or c.key or c[1], fmt = c.fmt } end
  end
  local cells, widths, right = {}, {}, {}
  for j, c in ipairs(cols) do
    widths[j] = #c.title
    -- Numbers line up on the right, text on the left.
    for _, r in ipairs(rows) do
      if r[c.key] ~= nil then right[j] = type(r[c.key]) == "number" break end
    end
  end
  for i, r in ipairs(rows) do
    cells[i] = {}
    for j, c in ipairs(cols) do
      local v = r[c.key]
      local text = c.fmt and c.fmt(v, r) or fmt_cell(v)
      cells[i][j] = text
      widths[j] = math.max(widths[j], #text)
    end
  end
  local lines = {}
  local function line(parts)
    local out = {}
    for j, p in ipairs(parts) do
      local pad = (" "):rep(widths[j] - #p)
      out[j] = right[j] and pad .. p or p .. pad
    end
    return table.concat(out, "  ")
  end
  local titles = {}
  for j, c in ipairs(cols) do titles[j] = c.title end
  lines[1] = line(titles)
  for i = 1, #cells do lines[#lines + 1] = line(cells[i]) end
  for i, l in ipairs(lines) do lines[i] = l:gsub("%s+$", "") end
  return table.concat(lines, "\n")
end

local function dur(v) return v and gfi.fmt_duration(v) or "-" end

--- Stage timings of scenario results: one row per stage with count and percentiles of the
--- time from injection to that stage.
function M.stage_table(results)
  local scenario = require "scenario"
  local rows = {}
  for _, stage in ipairs(scenario.STAGES) do
    local values = {}
    for _, r in ipairs(results) do
      local t = r.timings and r.timings[stage]
      if t then values[#values + 1] = t end
    end
    if #values > 0 then
      local st = M.stats(values)
      st.stage = stage
      rows[#rows + 1] = st
    end
  end
  return M.table(rows, {
    { "stage", "stage (from injection)" }, { "count", "n" },
    { key = "min", title = "min", fmt = dur }, { key = "p50", title = "p50", fmt = dur },
    { key = "p95", title = "p95", fmt = dur }, { key = "max", title = "max", fmt = dur },
  })
end

--- Prints a plan summary (from plan:run()).
function M.print_summary(summary)
  print(("faults: %d planned, %d injected, %d skipped (node busy), %d as expected, %d unexpected")
    :format(summary.planned, summary.injected, summary.skipped, summary.as_expected, summary.unexpected))
  if #summary.results > 0 then print(M.stage_table(summary.results)) end
  for i, r in ipairs(summary.results) do
    if not r.ok and i <= 20 then
      print(("  unexpected: %s GPU %s XID %d: %s"):format(r.node, tostring(r.gpu), r.xid, tostring(r.error)))
    end
  end
end

return M

-- report: statistics and tables.
local report = require "report"
local st = report.stats({ 5, 1, 4, 2, 3, "ignored" })
assert(st.count == 5 and st.min == 1 and st.max == 5 and st.mean == 3 and st.p50 == 3)
assert(report.stats({}).count == 0 and report.stats({}).p95 == nil)
assert(report.percentile({ 10, 20, 30, 40 }, 100) == 40 and report.percentile({ 10, 20, 30, 40 }, 25) == 10)
expect_error(function() report.percentile({ 1 }, 101) end, "p must be within 0..100")
local t = report.table({ { name = "a", n = 1 }, { name = "long-name", n = 22.5 } }, { "name", { "n", "N" } })
local lines = {}
for l in t:gmatch("[^\n]+") do lines[#lines + 1] = l end
assert(lines[1] == "name          N", lines[1])
assert(lines[2] == "a             1", lines[2])
assert(lines[3] == "long-name  22.5", lines[3])
local results = {
  { timings = { cordoned = 10, uncordoned = 400 } },
  { timings = { cordoned = 20 } },
}
local st2 = report.stage_table(results)
assert(st2:find("cordoned", 1, true) and st2:find("uncordoned", 1, true) and st2:find("6m40s", 1, true), st2)

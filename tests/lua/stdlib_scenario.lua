-- scenario: one fault followed stage by stage, judged against the catalogue.
local scenario = require "scenario"
assert(scenario.expectation(79) == "recover")
assert(scenario.expectation(74) == "stay_cordoned")
assert(scenario.expectation(13) == "no_cordon")

local ok_recover = scenario.run("gpu-node-001", 0, 79)
assert(ok_recover.ok, scenario.describe(ok_recover))
assert(ok_recover.outcome == "recovered")
local t = ok_recover.timings
assert(t.detected > 0 and t.detected <= 17, "detection within a poll interval: " .. t.detected)
for i = 2, #scenario.STAGES do
  local prev, cur = scenario.STAGES[i - 1], scenario.STAGES[i]
  assert(t[cur] >= t[prev], cur .. " after " .. prev)
end
assert(scenario.describe(ok_recover):find("recovered", 1, true))

local stays = scenario.run("gpu-node-002", 1, 74, { timeouts = { hold = "5m" } })
assert(stays.ok and stays.outcome == "stays cordoned (remediation-failed)", scenario.describe(stays))

local quiet = scenario.run("gpu-node-003", 0, 13)
assert(quiet.ok and quiet.outcome == "event, no cordon", scenario.describe(quiet))

-- A surprise is a result, not an error: an unguarded line is never detected.
local missed = scenario.run("gpu-node-004", 0, 79, { line = { style = "unguarded" }, timeouts = { detected = "1m" } })
assert(not missed.ok and missed.failed_stage == "detected", scenario.describe(missed))
assert(missed.error:find("not condition SysLogsXIDError=True within 1m", 1, true), missed.error)
assert(scenario.describe(missed):find("UNEXPECTED at detected", 1, true))

-- Expecting a recovery where NVSentinel gives up is reported as unexpected.
local wrong = scenario.recovery("gpu-node-005", 0, 74)
assert(not wrong.ok and wrong.failed_stage == "remediated")
expect_error(function() scenario.run("gpu-node-006", 0, 79, { timeouts = { bogus = 1 } }) end, "unknown timeout 'bogus'")

-- Declared scenarios: metadata checked, phases in order, cleanup always.
local order = {}
local def = scenario.define {
  name = "demo", description = "a demo", categories = { "safe" },
  args = { answer = { default = 1, description = "a number" }, colour = { default = "red", description = "text" } },
  setup = function(ctx) order[#order + 1] = "setup:" .. ctx.args.answer end,
  action = function(ctx) order[#order + 1] = "action:" .. ctx.args.colour; ctx.state.x = 1 end,
  verify = function(ctx) order[#order + 1] = "verify:" .. ctx.state.x end,
  cleanup = function() order[#order + 1] = "cleanup" end,
}
assert(def.__scenario and def.categories[1] == "safe")
local ctx = scenario.run_defined(def)
-- --arg answer=42 (the test harness passes it) is converted to the default's type.
assert(table.concat(order, ",") == "setup:42,action:red,verify:1", table.concat(order, ","))
assert(ctx.args.answer == 42)

local failing = scenario.define {
  name = "fails", description = "fails in verify",
  action = function() end,
  verify = function() error("the node is still cordoned") end,
}
expect_error(function() scenario.run_defined(failing) end, "scenario fails: verify failed: ")
local slow = scenario.define {
  name = "slow", description = "too slow", timeout = "10m",
  action = function() sleep("1h") end,
}
expect_error(function() scenario.run_defined(slow) end, "scenario slow: timed out after 10m")

for _, case in ipairs {
  { { description = "x", action = print }, "name must be a word" },
  { { name = "a b", description = "x", action = print }, "name must be a word" },
  { { name = "a", action = print }, "description must be" },
  { { name = "a", description = "x" }, "action must be a function" },
  { { name = "a", description = "x", action = print, categories = { "Not OK" } }, "category 1 must be a word" },
  { { name = "a", description = "x", action = print, args = { n = 3 } }, "arg 'n' must be" },
  { { name = "a", description = "x", action = print, args = { n = { description = "n", default = {} } } }, "default must be" },
  { { name = "a", description = "x", action = print, teardown = print }, "unknown field 'teardown'" },
  { { name = "a", description = "x", action = print, verify = 3 }, "verify must be a function" },
} do
  expect_error(function() scenario.define(case[1]) end, case[2])
end

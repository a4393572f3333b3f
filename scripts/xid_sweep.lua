-- Every catalogue XID once, one at a time, on one node: does NVSentinel's reaction match
-- what the catalogue says for each? (On the sim this takes a few virtual hours; on a real
-- cluster, run it on a node you can spare: it reboots the node for every fatal XID.)
--
--   gfi run scripts/xid_sweep.lua --arg node=gpu-node-001
local scenario = require "scenario"
local report = require "report"
local check = require "check"

local n = node(param("node", assert(gpu_nodes())[1].name))
local only = param("only", "") -- e.g. --arg only=79,48
-- How long a non-fatal XID must leave the node uncordoned (and a CONTACT_SUPPORT one cordoned).
local hold = param("hold", "3m")
local wanted = {}
for x in only:gmatch("%d+") do wanted[tonumber(x)] = true end

cleanup(function()
  if n:cordoned() then uncordon(n) end
end, "leave the node schedulable")

local rows = {}
for _, x in ipairs(xids()) do
  if next(wanted) == nil or wanted[x.xid] then
    local r = scenario.run(n, 0, x.xid, { timeouts = { hold = hold } })
    rows[#rows + 1] = {
      xid = x.xid, action = x.action, expected = r.expected, outcome = r.outcome or ("UNEXPECTED: " .. tostring(r.error)),
      cordon = r.timings.cordoned, recovery = r.timings.uncordoned,
    }
    check.that(("XID %d: %s"):format(x.xid, r.expected), r.ok, r.error)
    -- A node left cordoned on purpose (CONTACT_SUPPORT) is released for the next XID.
    if r.ok and r.expected == "stay_cordoned" then uncordon(n) end
  end
end

local d = function(v) return v and fmt_duration(v) or "-" end
print(report.table(rows, {
  { "xid", "XID" }, { "action", "action" }, { "expected", "expected" },
  { key = "cordon", title = "cordon", fmt = d }, { key = "recovery", title = "uncordon", fmt = d },
  { "outcome", "outcome" },
}))

-- A seeded, randomized day of GPU faults over every GPU node, each fault followed through
-- NVSentinel's whole reaction and judged against the catalogue.
--
--   gfi run scripts/random_day.lua --seed 42 --sim-nodes 100 --arg faults=150
--   gfi run scripts/random_day.lua --seed 42 --sim-nodes 1000 --arg faults=1200 -q
--
-- Arguments (--arg name=value): duration (24h), faults (1.5 per node), arrival (uniform or
-- poisson), p95_cordon (threshold for time to cordon, 1m), p95_recovery (20m), hold (how long
-- a non-fatal XID must leave its node schedulable, 10m).
-- The same seed gives the same plan and, on the sim, a byte-identical journal.
local plan = require "plan"
local report = require "report"
local check = require "check"

local targets = assert(gpu_nodes())
local p = plan.random {
  duration = param("duration", "24h"),
  faults = math.floor(param("faults", math.max(1, math.floor(#targets * 1.5)))),
  nodes = targets,
  arrival = param("arrival", "uniform"),
  -- Mostly faults NVSentinel reboots for, some it only records, a few it gives up on.
  xids = { [79] = 6, [48] = 3, [94] = 2, [95] = 2, [119] = 2, [120] = 1, [13] = 3, [31] = 2, [43] = 1, [74] = 1, [64] = 1 },
}
log(("plan: %s on %d nodes"):format(p:describe(), #targets))

local summary = p:run { log = param("log_each", false), timeouts = { hold = param("hold", "10m") } }
if dry_run then return end
report.print_summary(summary)

check.eq("every injected fault got the expected reaction", summary.unexpected, 0)
check.threshold("time to cordon", summary.timings.cordoned, "p95 < " .. param("p95_cordon", "1m"))
check.threshold("time to uncordon after a fatal XID", summary.timings.uncordoned, "p95 < " .. param("p95_recovery", "20m"))
check.eq("the circuit breaker never tripped", assert(circuit_breaker()).status, "CLOSED")

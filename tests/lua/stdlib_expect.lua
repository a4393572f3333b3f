--! values: {platform-connector: {transformers: {OverrideTransformer: {rules: [{when: 'event.agent == "syslog-health-monitor" && "13" in event.errorCode', override: {isFatal: true, recommendedAction: RESTART_VM}}]}}}}
-- scenario.expect: a check per stage with its latency, expectations from the catalogue as the
-- run's NVSentinel values change them (here XID 13 is made fatal, RESTART_VM).
local scenario = require "scenario"

local action, from, fatal = expected_action(13)
assert(action == "RESTART_VM" and from == "values" and fatal, ("%s %s %s"):format(action, from, tostring(fatal)))
assert(expected_action(79) == "RESTART_BM" and select(2, expected_action(79)) == "catalogue")
assert(scenario.expectation(13) == "recover", scenario.expectation(13))
assert(scenario.expectation(31) == "no_cordon")
local nvs = nvsentinel()
assert(nvs.acts and nvs.remediation and nvs.user_namespaces[1] == "*", tostring(nvs.user_namespaces[1]))
assert(drains_namespace("default") == true and drains_namespace("kube-system") == false)

-- XID 13, overridden to fatal: a full recovery, every stage checked, with latency limits.
local r = scenario.expect("gpu-node-001", 0, 13, { within = { cordoned = "1m", uncordoned = "30m" } })
assert(r.ok and r.expected == "recover", scenario.describe(r))
-- A non-fatal XID must not cordon within the window.
local q = scenario.expect("gpu-node-003", 0, 31, { window = "2m" })
assert(q.ok and q.expected == "no_cordon")

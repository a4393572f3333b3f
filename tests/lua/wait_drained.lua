--! sim: {nodes: 2, pods: [{namespace: dynamo, name: vllm-worker, count: 2, shutdown: 10s}, {namespace: batch, name: job, owner: Job, runs_for: 2h}, {namespace: kube-system, name: kube-proxy, owner: DaemonSet}]}
--! values: {node-drainer: {userNamespaces: [{name: dynamo, mode: Immediate}, {name: "*", mode: AllowCompletion}]}}
-- wait_drained: the pods of the namespaces node-drainer drains are gone from the node; the
-- result lists which left and when, measured from the injection.
local n = node("gpu-node-001")
local fault = assert(inject_xid(n, 0, 79))
-- Only the Immediate namespace: its pods are evicted within seconds.
local r = assert(wait_drained(n, { since = fault, namespaces = { "dynamo" }, timeout = "5m" }))
assert(r.ok and #r.evicted == 2 and #r.remaining == 0)
assert(r.evicted[1].namespace == "dynamo" and r.evicted[1].how == "evicted")
assert(r.evicted[1].at > fault.at and r.elapsed == r.at - fault.at)
-- Every drained namespace: the AllowCompletion job keeps the node from being drained.
local none, msg, res = wait_drained(n, { since = fault, timeout = "10m" })
assert(none == nil and #res.remaining == 1 and res.remaining[1].namespace == "batch")
assert(msg:find("still there: batch/job%-001%-0"), msg)
-- DaemonSet pods and system namespaces never count.
for _, p in ipairs(res.remaining) do assert(p.namespace ~= "kube-system") end
-- It finishes on its own; then the node is drained.
local done = assert(wait_drained(n, { since = fault, timeout = "3h" }))
assert(#done.evicted == 3 and done.evicted[3].how == "completed")

expect_error(function() wait_drained(n, { namespaces = "dynamo" }) end, "option 'namespaces' must be a list of namespace names")
expect_error(function() wait_drained(n, { namespaces = { 1 } }) end, "option 'namespaces' must list namespace names")
expect_error(function() wait_drained(n, { since = -5 }) end, "must be a run time of 0 or more seconds")

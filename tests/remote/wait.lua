-- A plan for the remote-run tests that waits (on a real-time cluster) for a cordon that never
-- comes, so that it can be cancelled mid-wait; its cleanup must still run.
local n = assert(gpu_nodes())[1]
cleanup(function() print("cleanup ran for " .. n.name) end, "the cancel test's cleanup")
print("waiting for a cordon that never comes")
local _, err = wait_cordoned(n, { timeout = "10m" })
print("the wait ended: " .. tostring(err))

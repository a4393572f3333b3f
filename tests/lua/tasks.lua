-- spawn, task handles, parallel.
local t = spawn(function(a, b) sleep(10) return a + b, "x" end, 2, 3)
assert(t:status() == "running" and not t:done())
assert(tostring(t):find("^task%(1 'task%-1', running%)"))
assert(t.name == "task-1" and t.id == 1)
local sum, x = t:wait()
assert(sum == 5 and x == "x" and t:status() == "done")

-- A wait with a timeout on a task still running.
local slow = spawn("slow", function() sleep("1h") return 1 end)
local none, msg = slow:wait("1m")
assert(none == nil and msg == "task 'slow' still running after 1m", msg)
assert(slow:cancel() == true and slow:status() == "cancelled")
expect_error(function() slow:wait() end, "task 'slow' was cancelled")

-- A failing task raises when waited for, and says why.
local bad = spawn("bad", function() error("kaput") end)
expect_error(function() bad:wait() end, "task 'bad' failed: ")
assert(bad:status() == "failed" and bad:error():find("kaput"))

-- Tasks really run concurrently on the virtual clock.
local t0 = now()
local rs = parallel(function() sleep("5m") return 1 end, function() sleep("3m") return 2 end)
assert(rs[1] == 1 and rs[2] == 2)
assert(now() - t0 == 300, "two sleeps overlap: " .. (now() - t0))
local list = parallel({ function() return "a" end, function() return "b" end })
assert(list[1] == "a" and list[2] == "b")
expect_error(function() parallel(function() error("one") end, function() return 1 end) end, "parallel: 1 of 2 failed")
expect_error(function() parallel(1, 2) end, "parallel: item 1 must be a function")
expect_error(function() spawn(42) end, "spawn: argument #1 (fn) must be a function")
expect_error(function() cleanup("nope") end, "cleanup: argument #1 (fn) must be a function")
expect_error(function() return t.bogus end, "a task has no field 'bogus'")

-- Waits in parallel on different nodes.
local ns = gpu_nodes()
local waits = {}
for i = 1, 3 do
  assert(inject_xid(ns[i], 0, 48))
  waits[i] = spawn(function() return wait_cordoned(ns[i]) end)
end
for i = 1, 3 do assert(waits[i]:wait().ok) end

--! sim: {nodes: 6, node_labels: {gpu-node-002: {gfi.dev/fault-target: "true"}, gpu-node-003: {gfi.dev/fault-target: "true"}, gpu-node-004: {nvsentinel.dgxc.nvidia.com/managed: "false", gfi.dev/fault-target: "true"}}}
-- guard{...}: settings read and reported back, bad ones named; guard_targets() keeps only the
-- nodes a guarded plan may pick. (The stops themselves are tested in tests/lua_api.rs.)
local g = guard()
assert(g.armed == false and g.tripwire == true and g.breaker == true, "unarmed by default")
assert(g.pool == "nvidia.com/gpu.present=true")

-- Unarmed, every node is a target, even an opted-out one (tests of NVSentinel need them).
local all = gpu_nodes()
local kept, refused = guard_targets(all)
assert(#kept == #all and #refused == 0)

g = guard { max_unavailable = "34%", require_label = true, window = "Mon-Sun 00:00-24:00 UTC" }
assert(g.armed and g.max_unavailable == "34%", tostring(g.max_unavailable))
assert(g.require_label == "gfi.dev/fault-target=true", g.require_label)
assert(g.window == "Mon-Sun 00:00-24:00 UTC")
kept, refused = guard_targets(all)
local names = {}
for _, n in ipairs(kept) do names[#names + 1] = n.name end
assert(table.concat(names, ",") == "gpu-node-002,gpu-node-003", table.concat(names, ","))
assert(#refused == 4)
local why = {}
for _, r in ipairs(refused) do why[r.node] = r.rule end
assert(why["gpu-node-004"] == "opted_out", tostring(why["gpu-node-004"]))
assert(why["gpu-node-001"] == "require_label")
-- Names work as well as handles, and come back as given.
kept = guard_targets { "gpu-node-003" }
assert(kept[1] == "gpu-node-003")

-- An injection within the guard goes ahead and is counted.
assert(inject_xid("gpu-node-002", 0, 13))
assert(guard().checks == 1)

expect_error(function() guard { max_unavailable = "lots" } end, "option 'max_unavailable'")
expect_error(function() guard { max_unavailable = -1 } end, "a node count (3) or a percentage")
assert(guard { window = "Tue 10:00-16:00 Europe/Berlin" }.window == "Tue 10:00-16:00 Europe/Berlin")
expect_error(function() guard { window = "Tue 10:00-16:00 Europe/Berln" } end, "a zone looks like Europe/Berlin")
expect_error(function() guard { window = "Tus 10:00-16:00" } end, "'Tus' is not a day")
expect_error(function() guard { require_label = 3 } end, "option 'require_label'")
expect_error(function() guard { pool = "a b" } end, "option 'pool'")
expect_error(function() guard { max_unavail = 3 } end, "max_unavail")
expect_error(function() guard_targets("gpu-node-001") end, "must be a list of nodes")
expect_error(function() sim.real_xid("gpu-node-001", 0, 0) end, "xid")

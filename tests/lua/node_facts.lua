-- A node's facts: scalars at once, labels/annotations/taints/conditions built on first use,
-- and to a script indistinguishable from a plain table.
local n = node("gpu-node-002")
local f = assert(node_info(n))
assert(f.name == "gpu-node-002" and f.cordoned == false and f.ready == true)
assert(f.unschedulable == false and type(f.boot_id) == "string")
assert(f.nonsense == nil)

-- Each deferred field, read first, gives the whole set.
assert(f.labels["nvidia.com/gpu.present"] == "true", "labels")
assert(type(f.annotations) == "table" and type(f.taints) == "table")
assert(f.conditions.Ready.status == "True", "conditions by type")
assert(getmetatable(f) == nil, "a built facts table is a plain table")

-- pairs() sees every field, built or not.
local seen = {}
for k in pairs(assert(node_info(n))) do seen[k] = true end
for _, k in ipairs { "name", "cordoned", "unschedulable", "ready", "boot_id", "labels",
  "annotations", "taints", "conditions" } do
  assert(seen[k], "pairs() must list " .. k)
end

-- A wait's observed facts are the same kind of table.
local none, msg, r = wait_cordoned(n, { timeout = "1s" })
assert(none == nil and msg:find("not cordoned", 1, true), msg)
assert(r.ok == false and r.observed.name == "gpu-node-002")
assert(r.observed.taints and #r.observed.taints == 0)
assert(r.observed.conditions.Ready.status == "True")

-- Facts are a snapshot: a later change shows in a new read, not in the old table.
local before = assert(node_info(n))
sim.label(n, "gfi.dev/probe", "1")
assert(before.labels["gfi.dev/probe"] == nil)
assert(assert(node_info(n)).labels["gfi.dev/probe"] == "1")

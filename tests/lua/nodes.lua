-- nodes(), node(), node_info(), gpus(), gpu(), handles.
local all = nodes()
assert(#all == 8, "default sim has 8 GPU nodes, got " .. #all)
assert(all[1].name == "gpu-node-001" and all[8].name == "gpu-node-008")
assert(#gpu_nodes() == 8)
assert(#nodes("nvidia.com/gpu.present=true,zone!=nowhere") == 8)
assert(#nodes("nvidia.com/gpu.present=false") == 0)
assert(#nodes("topology.kubernetes.io/zone=zone-a") == 3)
expect_error(function() nodes("=bad") end, "nodes: argument #1 (selector)")
expect_error(function() nodes(42) end, "must be a label selector")

-- Handles are names looked up again each time.
local n = node("gpu-node-003")
assert(tostring(n) == "node(gpu-node-003)")
assert(n == node("gpu-node-003") and n ~= node("gpu-node-004"))
assert(node("gpu-node-001") < node("gpu-node-002"))
assert(n.name == "gpu-node-003")
expect_error(function() return n.nonsense end, "a node has no field or method 'nonsense'")
expect_error(function() node("gpu-node-999") end, "node 'gpu-node-999' not found (known: gpu-node-001")
expect_error(function() node(12) end, "node: argument #1 (node) must be a node")
expect_error(function() node("") end, "empty string")

local info = node_info("gpu-node-003")
assert(info.name == "gpu-node-003")
assert(info.cordoned == false and info.unschedulable == false and info.ready == true)
assert(info.state == nil)
assert(info.labels["nvidia.com/gpu.present"] == "true")
assert(info.conditions.Ready.status == "True")
assert(type(info.boot_id) == "string" and #info.boot_id == 36)
assert(n:info().name == "gpu-node-003" and n:ready() and not n:cordoned() and n:state() == nil)
assert(n:labels()["kubernetes.io/hostname"] == "gpu-node-003")
assert(n:condition("Ready").reason == "KubeletReady")

-- GPUs.
local gs = gpus(n)
assert(#gs == 8)
local g = gs[3]
assert(g.index == 2 and g.node == "gpu-node-003")
assert(g.pci == "00000000:3A:00.0", g.pci)
assert(g.uuid:match("^GPU%-%x+%-%x+%-%x+%-%x+%-%x+$"), g.uuid)
assert(g.model == "NVIDIA H100 80GB HBM3")
assert(tostring(g) == "gpu(gpu-node-003#2 00000000:3A:00.0)")
assert(gpu(n, 2) == g)
assert(gpu("gpu-node-003", "0000:3a:00.0") == g, "by sysfs PCI")
assert(gpu(n, "0000:3A:00").index == 2, "by driver PCI")
assert(gpu(n, g.uuid).index == 2, "by UUID")
assert(#n:gpus() == 8 and n:gpu(0).index == 0)
expect_error(function() gpu(n, 9) end, "GPU 9 not found (GPUs present: 0 (0000:18:00.0), 1 (0000:2a:00.0)")
expect_error(function() gpu(n, "zz") end, "neither a GPU UUID")
expect_error(function() gpu(n, gpus("gpu-node-001")[1]) end, "is GPU 0 of node gpu-node-001, not of node gpu-node-003")
expect_error(function() return g.bogus end, "a GPU has no field or method 'bogus'")

-- Pods and events.
local ps = pods(n)
local user = 0
for _, p in ipairs(ps) do
  assert(p.phase == "Running" and p.terminating == false)
  if p.namespace == "dynamo" then user = user + 1 end
end
assert(user == 2, "two vllm workers per node")
assert(#events(n) == 0)
assert(circuit_breaker().status == "CLOSED" and circuit_breaker().enabled == true)
assert(gfi.backend == "sim")

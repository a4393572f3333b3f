-- rand: seeded helpers with argument checks.
local r = require "rand"
assert(r == rand)
for _ = 1, 100 do
  local i = rand.int(3, 5)
  assert(i >= 3 and i <= 5 and math.type(i) == "integer")
  local f = rand.float(1, 2)
  assert(f >= 1 and f < 2)
end
local list = { "a", "b", "c", "d" }
local s = rand.shuffle(list)
assert(#s == 4 and list[1] == "a", "shuffle copies")
local seen = {}
for _, v in ipairs(s) do seen[v] = true end
assert(seen.a and seen.b and seen.c and seen.d)
assert(#rand.sample(list, 2) == 2)
assert(seen[rand.choice(list)])
local counts = { [79] = 0, [48] = 0 }
for _ = 1, 2000 do
  local k = rand.weighted({ [79] = 3, [48] = 1 })
  counts[k] = counts[k] + 1
end
assert(counts[79] > counts[48] * 2, "weights are respected")
assert(rand.weighted({ { "x", 0 }, { "y", 1 } }) == "y")
local mean = 0
for _ = 1, 2000 do mean = mean + rand.exp(10) end
assert(math.abs(mean / 2000 - 10) < 1.5)
local d = rand.duration("1m", "2m")
assert(d >= 60 and d <= 120)
assert(rand.gpu("gpu-node-001").node == "gpu-node-001")
expect_error(function() rand.int(5, 3) end, "rand.int: empty range")
expect_error(function() rand.int(1.5, 3) end, "must be integers")
expect_error(function() rand.choice({}) end, "non-empty list")
expect_error(function() rand.weighted({ [1] = 0 }) end, "add up to 0")
expect_error(function() rand.sample(list, 9) end, "k must be 0..4")
expect_error(function() rand.bool(2) end, "within 0..1")
expect_error(function() rand.normal(0, -1) end, "rand.normal: sigma must be a number, 0 or more")
expect_error(function() rand.normal("a", 1) end, "rand.normal: mu must be a number")
assert(rand.normal(5, 0) == 5)
-- The same seed gives the same draws.
math.randomseed(1)
local a = rand.shuffle({ 1, 2, 3, 4, 5, 6, 7, 8 })
math.randomseed(1)
local b = rand.shuffle({ 1, 2, 3, 4, 5, 6, 7, 8 })
assert(table.concat(a, ",") == table.concat(b, ","))

--- Seeded randomness for fault plans. Everything draws from math.random, which gfi seeds from
--- --seed, so a plan is the same on every run with the same seed.
local M = {}
local random, log, sqrt, cos, pi = math.random, math.log, math.sqrt, math.cos, math.pi

local function need(cond, msg, level)
  if not cond then error(msg, (level or 2) + 1) end
end

--- An integer in [a, b].
function M.int(a, b)
  need(math.type(a) == "integer" and math.type(b) == "integer", "rand.int: a and b must be integers")
  need(a <= b, ("rand.int: empty range [%d, %d]"):format(a, b))
  return random(a, b)
end

--- A float in [a, b).
function M.float(a, b)
  a, b = a or 0, b or 1
  need(type(a) == "number" and type(b) == "number" and a <= b, "rand.float: expected numbers a <= b")
  return a + (b - a) * random()
end

--- True with probability p.
function M.bool(p)
  p = p or 0.5
  need(type(p) == "number" and p >= 0 and p <= 1, "rand.bool: p must be within 0..1")
  return random() < p
end

--- One element of a non-empty list.
function M.choice(list)
  need(type(list) == "table" and #list > 0, "rand.choice: expected a non-empty list")
  return list[random(#list)]
end

--- A shuffled copy of a list.
function M.shuffle(list)
  need(type(list) == "table", "rand.shuffle: expected a list")
  local out = {}
  for i, v in ipairs(list) do out[i] = v end
  for i = #out, 2, -1 do
    local j = random(i)
    out[i], out[j] = out[j], out[i]
  end
  return out
end

--- k distinct elements of a list.
function M.sample(list, k)
  need(type(list) == "table", "rand.sample: expected a list")
  need(math.type(k) == "integer" and k >= 0 and k <= #list, ("rand.sample: k must be 0..%d"):format(#list))
  local s = M.shuffle(list)
  local out = {}
  for i = 1, k do out[i] = s[i] end
  return out
end

--- Exponentially distributed value with this mean (gaps of a Poisson process).
function M.exp(mean)
  need(type(mean) == "number" and mean > 0, "rand.exp: mean must be above 0")
  return -mean * log(1 - random())
end

--- Normally distributed value.
function M.normal(mu, sigma)
  mu, sigma = mu or 0, sigma or 1
  need(type(mu) == "number", "rand.normal: mu must be a number")
  need(type(sigma) == "number" and sigma >= 0, "rand.normal: sigma must be a number, 0 or more")
  local u1, u2 = 1 - random(), random()
  return mu + sigma * sqrt(-2 * log(u1)) * cos(2 * pi * u2)
end

--- A key picked by weight: weighted { [79] = 3, [48] = 1 } or weighted { {79, 3}, {48, 1} }.
function M.weighted(weights)
  need(type(weights) == "table", "rand.weighted: expected a table of weights")
  local items = {}
  if #weights > 0 and type(weights[1]) == "table" then
    for _, pair in ipairs(weights) do items[#items + 1] = { pair[1], pair[2] } end
  else
    for k, w in pairs(weights) do items[#items + 1] = { k, w } end
    -- pairs() order is not stable: sort so a seed always gives the same pick.
    table.sort(items, function(x, y) return tostring(x[1]) < tostring(y[1]) end)
  end
  local total = 0
  for _, it in ipairs(items) do
    need(type(it[2]) == "number" and it[2] >= 0, "rand.weighted: weights must be numbers >= 0")
    total = total + it[2]
  end
  need(total > 0, "rand.weighted: the weights add up to 0")
  local r = random() * total
  for _, it in ipairs(items) do
    r = r - it[2]
    if r < 0 then return it[1] end
  end
  return items[#items][1]
end

--- Seconds between two durations ("1m", "5m", or seconds).
function M.duration(a, b)
  local lo, hi = gfi.duration(a), gfi.duration(b)
  need(lo <= hi, "rand.duration: the first duration must not exceed the second")
  return lo + (hi - lo) * random()
end

--- A 0-based GPU index of a node.
function M.gpu(node)
  local gs = assert(gfi.gpus(node))
  need(#gs > 0, ("rand.gpu: %s has no GPUs"):format(tostring(node)))
  return gs[random(#gs)]
end

return M

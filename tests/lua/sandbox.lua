-- The sandbox: what is gone, what is there, require, script arguments.
assert(io == nil and debug == nil and loadfile == nil and dofile == nil)
assert(os.execute == nil and os.exit == nil and os.remove == nil and os.getenv == nil)
assert(string.dump == nil and package.loadlib == nil)
assert(type(os.time) == "function" and type(os.clock) == "function" and type(os.date) == "function")
expect_error(function() load(string.char(27) .. "Lua", "x", "b") end, "only text chunks")
assert(load("return 6 * 7")() == 42)
assert(load("return x", "chunk", "t", { x = 5 })() == 5)

-- require: stdlib by name or under gfi., modules beside the script, clear failures.
assert(require("report") == require("gfi.report"))
assert(require("gfi") == gfi)
assert(require("_helper_module").value == "beside the script")
local msg = expect_error(function() require("no_such_module") end, "module 'no_such_module' not found")
assert(msg:find("no_such_module.lua", 1, true) and msg:find("stdlib/no_such_module.lua (embedded)", 1, true), msg)
expect_error(function() require("../etc/passwd") end, "is not valid")

-- Script arguments: raw strings in args, typed through param().
assert(args.answer == "42")
assert(param("answer", 0) == 42 and math.type(param("answer", 0)) == "integer")
assert(param("flag", false) == true)
assert(param("missing", "default") == "default")
assert(param("answer", "x") == "42")
expect_error(function() param("flag", 1) end, "--arg flag=yes is not a number")

-- math.random is seeded from the run's seed: reseeding replays the same numbers.
math.randomseed(gfi.seed)
local a = { math.random(1000), math.random(1000), math.random(1000) }
math.randomseed(gfi.seed)
local b = { math.random(1000), math.random(1000), math.random(1000) }
assert(a[1] == b[1] and a[2] == b[2] and a[3] == b[3])
assert(gfi.seed == 7 and gfi.run_id == "rtest")

-- check: records passes and failures (this test restores a clean slate by only passing).
local check = require "check"
assert(check.that("truthy", 1))
assert(check.eq("equal", 2, 2))
assert(check.lt("lt", 1, 2) and check.le("le", 2, 2) and check.gt("gt", 3, 2) and check.ge("ge", 2, 2))
assert(check.within("fast enough", 30, "1m"))
assert(check.threshold("p95", { 10, 20, 30 }, "p95 < 1m"))
assert(check.threshold("count", { 1, 2, 3 }, "count >= 3"))
expect_error(function() check.threshold("x", { 1 }, "p95 maybe 3") end, "cannot read")
expect_error(function() check.threshold("x", { 1 }, "median < 3") end, "unknown statistic")
expect_error(function() check(nil, true) end, "check: argument #1 (name) must be a string")
assert(check("callable module", true))

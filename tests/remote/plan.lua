-- A plan for the remote-run tests (tests/controller_runs.rs): a local module that requires
-- another, args, an injection, a wait, checks and a cleanup. `--arg outcome=check` makes a
-- check fail (exit 3), `--arg outcome=raise` makes the script fail (exit 1), and
-- `--arg outcome=module` makes it fail inside a module (the traceback names the module).
local steps = require "lib.steps"
local check = require "check"

local n = assert(gpu_nodes())[2]
cleanup(function() steps.note("cleanup for " .. n.name) end, "note the end")

local r = steps.inject_and_wait(n, 79)
check.that("node cordoned", r ~= nil)
local outcome = param("outcome", "pass")
if outcome == "check" then
  check.that("a check asked to fail", false, "outcome=check")
elseif outcome == "raise" then
  error("asked to fail (outcome=raise)")
elseif outcome == "module" then
  steps.fail("asked to fail in a module (outcome=module)")
end

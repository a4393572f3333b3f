-- Required by ../plan.lua; requires lib.util in turn (both travel in the bundle).
local util = require "lib.util"
local M = {}

M.note = util.note

function M.inject_and_wait(n, xid)
  local g = assert(gpus(n))[1]
  assert(inject_xid(n, g, xid))
  local r = wait_cordoned(n, { timeout = "2m" })
  util.note(("%s cordoned: %s"):format(n.name, tostring(r ~= nil)))
  return r
end

function M.fail(why) error(why) end

return M

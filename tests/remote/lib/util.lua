-- Required by steps.lua.
local M = {}

function M.note(text) print("note: " .. text) end

return M

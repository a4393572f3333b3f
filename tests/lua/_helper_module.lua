-- Loaded by sandbox.lua through require: modules beside the script are found.
return { value = "beside the script" }

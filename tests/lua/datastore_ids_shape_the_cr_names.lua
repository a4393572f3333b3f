--! values: {global: {datastore: {provider: postgresql}}}
-- The RebootNode's name embeds the health event's document id: a MongoDB ObjectID (24 hex)
-- by default, a UUID with PostgreSQL.
local n = node("gpu-node-001")
assert(inject_xid(n, 0, 79))
assert(wait_state(n, "remediation-succeeded"))
local name = sim.reboot_nodes()[1].name
assert(name:find("^maintenance%-gpu%-node%-001%-%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x+$"), name)
assert(sim.config().nvsentinel.store == "postgresql")

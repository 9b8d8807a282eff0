-- The seed's psql exercises, run against agent-api's database. (README.md shows them;
-- test/examples/agent-api-collector.test.ts runs them, with :org_id set.)

-- 1. Which agents enrolled, with their labels, and when were they last seen?
SELECT id, org_id, labels, status, last_seen_at, created_at FROM agents ORDER BY created_at;

-- 2. Did their configs arrive? One row per config offered: offered → applying → applied | failed.
SELECT agent_id, config_revision, status, offered_at, applied_at, error
  FROM agent_config_deliveries ORDER BY offered_at DESC;

-- 3. Health as the agents report it.
SELECT name, health->>'healthy' AS healthy, health->>'status' AS status, health->>'last_error' AS last_error FROM agents;

-- 4. After changing assignments or revisions by hand, make agent-api push them.
SELECT pg_notify('agent_config_changed', json_build_object('org_id', :'org_id')::text);

-- Integrity that does not rest on this database (issue 15). A key kept outside it (BISMAN_SIGNING_KEY)
-- makes MACs that whoever can write these tables cannot forge:
--   * audit_log.mac: HMAC of the row's (still plain SHA-256) `hash` under the key named in key_id; null for
--     rows written before a key was set (accepted only as the chain's first rows);
--   * requests.seal: per-field digests of everything in the row that decides what runs, and their MAC;
--   * approvals.plan_hash: the plan hash the approver's click carried; approvals.seal: its MAC, bound to the
--     request's seal.
alter table bisman_ops.audit_log add column mac text, add column key_id text;
alter table bisman_ops.requests add column seal jsonb;
alter table bisman_ops.approvals add column plan_hash text;
alter table bisman_ops.approvals add column seal text;

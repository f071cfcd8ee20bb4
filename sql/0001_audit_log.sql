-- The audit log: append-only and hash-chained. Each row's hash covers its canonical content and the
-- previous row's hash (computed by core/audit.ts), so an edited or deleted row breaks the chain.
create table bisman_ops.audit_log (
  seq bigint primary key,
  at timestamptz not null,
  actor text not null,
  actor_name text,
  action text not null,
  target text,
  request_id bigint,
  outcome text not null,
  details jsonb not null default '{}'::jsonb,
  prev_hash text not null,
  hash text not null unique
);
create index audit_log_request_idx on bisman_ops.audit_log (request_id) where request_id is not null;
create index audit_log_at_idx on bisman_ops.audit_log (at);
create index audit_log_actor_idx on bisman_ops.audit_log (actor, at);

create function bisman_ops.audit_log_refuse_change() returns trigger
language plpgsql as $$
begin
  raise exception 'bisman_ops.audit_log is append-only: % refused', tg_op
    using errcode = 'insufficient_privilege';
end
$$;

create trigger audit_log_no_update_delete
  before update or delete on bisman_ops.audit_log
  for each row execute function bisman_ops.audit_log_refuse_change();
create trigger audit_log_no_truncate
  before truncate on bisman_ops.audit_log
  for each statement execute function bisman_ops.audit_log_refuse_change();

-- The seed's auditing, for a BISMAN target: the DML audit table and trigger (migration 011 of the seed),
-- service-name tracking (migration 013), the security_events table, a DDL event trigger, and the
-- pgaudit / pg_stat_statements extensions where the server preloads them.
--
-- Applied by `apply-target-sql` only when asked, in one transaction; idempotent, so it can run again after
-- new application tables are added (the attachment step below picks them up).
--
-- Context the triggers read (the application sets them per transaction with set_config(..., true) or SET LOCAL):
--   app.user_id       the application user on whose behalf the statement runs
--   app.service_name  the service (web, mobile, payments, bisman-ops, ...) that runs it
-- plus inet_client_addr(), current_user, session_user, application_name and current_query().

-- ---------------------------------------------------------------------------------------------------------
-- audit_logs_dml: one row per changed row.
-- ---------------------------------------------------------------------------------------------------------
create table if not exists public.audit_logs_dml (
  id bigint generated always as identity primary key,
  occurred_at timestamptz not null default now(),
  table_schema text not null default 'public',
  table_name text not null,
  action text not null check (action in ('INSERT', 'UPDATE', 'DELETE')),
  row_id text,
  old_data jsonb,
  new_data jsonb,
  db_user text not null default current_user,
  session_user_name text not null default session_user,
  app_user_id text default nullif(current_setting('app.user_id', true), ''),
  service_name text default nullif(current_setting('app.service_name', true), ''),
  client_addr inet default inet_client_addr(),
  application_name text default nullif(current_setting('application_name', true), ''),
  query_text text,
  txid bigint default txid_current(),
  backend_pid integer default pg_backend_pid()
);

-- The searches of `/bisman audit` and `/bisman detect`: each filter column leads, time follows, so
-- "newest first, filtered" is a backward index scan that stops at the limit, at any table size.
create index if not exists audit_logs_dml_occurred_at_idx on public.audit_logs_dml (occurred_at);
create index if not exists audit_logs_dml_table_time_idx on public.audit_logs_dml (table_name, occurred_at);
create index if not exists audit_logs_dml_app_user_time_idx on public.audit_logs_dml (app_user_id, occurred_at)
  where app_user_id is not null;
create index if not exists audit_logs_dml_db_user_time_idx on public.audit_logs_dml (db_user, occurred_at);
create index if not exists audit_logs_dml_service_time_idx on public.audit_logs_dml (service_name, occurred_at)
  where service_name is not null;
-- Writes without application context are what bypass detection looks for; they should be rare, so a
-- partial index keeps that query cheap without costing the common insert much.
create index if not exists audit_logs_dml_no_context_idx on public.audit_logs_dml (occurred_at)
  where app_user_id is null and service_name is null;
create index if not exists audit_logs_dml_client_addr_idx on public.audit_logs_dml (client_addr, occurred_at)
  where client_addr is not null;

comment on table public.audit_logs_dml is
  'DML audit trail written by public.audit_dml(); search it with /bisman audit. Columns default to the session context.';

-- ---------------------------------------------------------------------------------------------------------
-- security_events: incidents and security-relevant actions (role locked, address blocked, credentials
-- rotated, grants applied, DDL seen by the event trigger), written by bisman-ops, the application, and
-- the DDL event trigger below.
-- ---------------------------------------------------------------------------------------------------------
create table if not exists public.security_events (
  id bigint generated always as identity primary key,
  occurred_at timestamptz not null default now(),
  -- what happened: role_locked, role_unlocked, sessions_terminated, address_blocked, address_unblocked,
  -- grants_applied, credentials_rotated, ddl, ... (lower-case words and underscores)
  event_type text not null check (event_type ~ '^[a-z][a-z0-9_.]{0,62}$'),
  severity text not null default 'info' check (severity in ('info', 'warning', 'critical')),
  -- who wrote the row: 'bisman-ops', 'app', 'event_trigger', ...
  source text not null default coalesce(nullif(current_setting('app.service_name', true), ''), 'unknown'),
  -- who asked (bisman-ops: the Slack user ID or cli:<name> of the requester)
  actor text default nullif(current_setting('app.user_id', true), ''),
  -- the bisman-ops approval request that ran the action, when there was one
  request_id bigint,
  -- the role and the client address acted on, when the event is about one
  target_role text,
  target_address inet,
  db_user text not null default session_user,
  app_user_id text default nullif(current_setting('app.user_id', true), ''),
  service_name text default nullif(current_setting('app.service_name', true), ''),
  client_addr inet default inet_client_addr(),
  application_name text default nullif(current_setting('application_name', true), ''),
  txid bigint default txid_current(),
  -- free-form detail: statements run, sessions terminated, pg_hba.conf line, reason, ...
  details jsonb not null default '{}'::jsonb
);
create index if not exists security_events_occurred_at_idx on public.security_events (occurred_at);
create index if not exists security_events_type_time_idx on public.security_events (event_type, occurred_at);
create index if not exists security_events_txid_idx on public.security_events (txid);

comment on table public.security_events is
  'Security events: bisman-ops incident actions, DDL seen by public.audit_ddl_event(), application reports.';

-- ---------------------------------------------------------------------------------------------------------
-- The generic DML trigger. SECURITY INVOKER on purpose, as the seed grants INSERT on audit_logs_dml to
-- each writing role: current_user is then the role that really wrote (SET ROLE included), and a role
-- without that grant cannot write to audited tables at all (fail closed).
-- ---------------------------------------------------------------------------------------------------------
create or replace function public.audit_dml() returns trigger
language plpgsql
set search_path = pg_catalog, public
as $$
declare
  v_old jsonb;
  v_new jsonb;
begin
  if tg_op in ('UPDATE', 'DELETE') then
    v_old := to_jsonb(old);
  end if;
  if tg_op in ('INSERT', 'UPDATE') then
    v_new := to_jsonb(new);
  end if;
  insert into public.audit_logs_dml (
    table_schema, table_name, action, row_id, old_data, new_data, db_user, session_user_name,
    app_user_id, service_name, client_addr, application_name, query_text, txid, backend_pid
  ) values (
    tg_table_schema, tg_table_name, tg_op, coalesce(v_new ->> 'id', v_old ->> 'id'), v_old, v_new,
    current_user, session_user,
    nullif(current_setting('app.user_id', true), ''),
    nullif(current_setting('app.service_name', true), ''),
    inet_client_addr(),
    nullif(current_setting('application_name', true), ''),
    left(current_query(), 4096),
    txid_current(),
    pg_backend_pid()
  );
  return null;
end
$$;

-- Attach the trigger to every ordinary or partitioned table of schema public except the audit tables
-- themselves. Re-running this file attaches it to tables added since.
do $$
declare
  t record;
begin
  for t in
    select c.relname
      from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'public'
       and c.relkind in ('r', 'p')
       and not c.relispartition
       and c.relname not in ('audit_logs_dml', 'security_events')
       and not exists (
         select 1 from pg_trigger tg where tg.tgrelid = c.oid and tg.tgname = 'audit_dml' and not tg.tgisinternal
       )
  loop
    execute format(
      'create trigger audit_dml after insert or update or delete on public.%I for each row execute function public.audit_dml()',
      t.relname
    );
  end loop;
end
$$;

-- ---------------------------------------------------------------------------------------------------------
-- DDL seen in this database, recorded in security_events so /bisman detect can tell changes made by the
-- bot (same transaction as its own security_events row) from changes made by hand. SECURITY DEFINER so
-- any role's DDL is recorded; db_user is therefore session_user (the login role). Role changes (CREATE /
-- ALTER / DROP ROLE) are cluster-wide and never reach event triggers: detect reads them from
-- pg_stat_statements instead.
-- ---------------------------------------------------------------------------------------------------------
create or replace function public.audit_ddl_event() returns event_trigger
language plpgsql
security definer
set search_path = pg_catalog, public
as $$
declare
  r record;
  v_query text := regexp_replace(left(current_query(), 1000), '(password\s+)''[^'']*''', '\1''[redacted]''', 'gi');
begin
  if tg_event = 'sql_drop' then
    for r in select * from pg_event_trigger_dropped_objects() where original loop
      insert into public.security_events (event_type, severity, source, db_user, details)
      values ('ddl', 'warning', 'event_trigger', session_user, jsonb_build_object(
        'command_tag', tg_tag, 'object_type', r.object_type, 'object_identity', r.object_identity,
        'query', v_query));
    end loop;
  else
    for r in select * from pg_event_trigger_ddl_commands() loop
      insert into public.security_events (event_type, severity, source, db_user, details)
      values ('ddl', 'info', 'event_trigger', session_user, jsonb_build_object(
        'command_tag', r.command_tag, 'object_type', r.object_type, 'object_identity', r.object_identity,
        'query', v_query));
    end loop;
  end if;
end
$$;
revoke all on function public.audit_ddl_event() from public;

do $$
begin
  if not exists (select 1 from pg_event_trigger where evtname = 'bisman_audit_ddl') then
    create event trigger bisman_audit_ddl on ddl_command_end execute function public.audit_ddl_event();
  end if;
  if not exists (select 1 from pg_event_trigger where evtname = 'bisman_audit_drop') then
    create event trigger bisman_audit_drop on sql_drop execute function public.audit_ddl_event();
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------------------------
-- pgaudit and pg_stat_statements, where the server preloads them (shared_preload_libraries needs a
-- restart, which this file never does). The seed's database-wide pgaudit settings are set per database
-- here because ALTER SYSTEM cannot run in a transaction; the per-role pgaudit.log lives in roles.sql.
-- ---------------------------------------------------------------------------------------------------------
do $$
declare
  libs text[] := string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',');
begin
  if 'pgaudit' = any (libs) then
    create extension if not exists pgaudit;
    execute format('alter database %I set pgaudit.log_catalog = off', current_database());
    execute format('alter database %I set pgaudit.log_parameter = on', current_database());
  end if;
  if 'pg_stat_statements' = any (libs) then
    create extension if not exists pg_stat_statements;
  end if;
end
$$;

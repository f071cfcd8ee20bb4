-- The seed's least-privilege role hierarchy (runbook section 1), for a BISMAN target.
--
--   bisman_readonly  reports, analytics: SELECT on every table, present and future
--   bisman_app       web/mobile app: SELECT, INSERT, UPDATE, DELETE on app tables; INSERT only on
--                    audit_logs_dml and security_events (it can add audit rows, never read or change them)
--   bisman_admin     admin operations: everything bisman_app has (membership), DELETE on audit_logs_dml,
--                    EXECUTE on the schema's functions
--   bisman_dba       database administration: superuser, NOLOGIN; granted to named DBAs, who SET ROLE to it
--                    for migrations and maintenance, so every superuser session has a person's login
--   svc_payments     the payments service: SELECT, INSERT, UPDATE on payment_requests and payments;
--                    INSERT on audit_logs_dml (its writes are audited like everyone's)
--
-- No password appears here: login roles are created without one (they cannot log in with
-- scram-sha-256 until one is set) and `/bisman rotate <role>` sets it from Vault. This is what replaces
-- the seed's 'rotate-me' placeholders.
--
-- Run after audit.sql (the audit tables must exist) by the role that owns the application tables, since
-- ALTER DEFAULT PRIVILEGES applies to tables that role creates later. Idempotent.
-- /bisman roles compares the database against the policy in config (derived from this file by default).

do $$
declare
  r text;
begin
  foreach r in array array['bisman_readonly', 'bisman_app', 'bisman_admin', 'svc_payments'] loop
    if not exists (select 1 from pg_roles where rolname = r) then
      execute format('create role %I login', r);
    end if;
  end loop;
  if not exists (select 1 from pg_roles where rolname = 'bisman_dba') then
    create role bisman_dba nologin superuser;
  end if;
  execute format(
    'grant connect on database %I to bisman_readonly, bisman_app, bisman_admin, svc_payments',
    current_database()
  );
end
$$;

grant usage on schema public to bisman_readonly, bisman_app, bisman_admin, svc_payments;

-- Read-only role for reports
grant select on all tables in schema public to bisman_readonly;
alter default privileges in schema public grant select on tables to bisman_readonly;

-- App role for web/mobile
grant select, insert, update, delete on all tables in schema public to bisman_app;
alter default privileges in schema public grant select, insert, update, delete on tables to bisman_app;
revoke all on table public.audit_logs_dml, public.security_events from bisman_app;
grant insert on public.audit_logs_dml, public.security_events to bisman_app;

-- Admin role
grant bisman_app to bisman_admin;
grant delete on public.audit_logs_dml to bisman_admin;
grant execute on all functions in schema public to bisman_admin;
alter default privileges in schema public grant execute on functions to bisman_admin;

-- Service-specific roles (the tables may not exist yet on a fresh target: grant what exists)
do $$
declare
  t text;
begin
  foreach t in array array['payment_requests', 'payments'] loop
    if to_regclass(format('public.%I', t)) is not null then
      execute format('grant select, insert, update on public.%I to svc_payments', t);
    end if;
  end loop;
end
$$;
grant insert on public.audit_logs_dml to svc_payments;

-- pgaudit per role (runbook section 4), where the server preloads pgaudit.
do $$
begin
  if 'pgaudit' = any (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')) then
    alter role bisman_app set pgaudit.log = 'write';
    alter role bisman_admin set pgaudit.log = 'all';
  end if;
end
$$;

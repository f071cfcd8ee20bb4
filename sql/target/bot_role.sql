-- The runtime role of bisman-ops on a BISMAN target, with the least privileges its commands need.
-- The README section "The bot's own role on a BISMAN target" explains each line. Run as a superuser, after audit.sql, in the target database
-- (grants on pg_catalog functions are per database). No password here: set it from Vault.
--
-- Parameters, as session settings set before running this file (apply-target-sql sets them):
--   bisman.bot_role       the role name (default bisman_ops): the `user` of the target in the bot's config
--   bisman.allow_promote  on | off (default off): EXECUTE on pg_promote() only where promotion is enabled
--   bisman.owner_role     optional: the non-superuser role that owns the application tables; membership lets
--                         `/bisman roles apply` GRANT and REVOKE on them (REVOKE of grants made by others
--                         needs the owner's rights)

do $$
declare
  bot text := coalesce(nullif(current_setting('bisman.bot_role', true), ''), 'bisman_ops');
  promote boolean := coalesce(nullif(current_setting('bisman.allow_promote', true), ''), 'off')::boolean;
  owner_role text := nullif(current_setting('bisman.owner_role', true), '');
begin
  if bot !~ '^[a-z_][a-z0-9_]{0,62}$' then
    raise exception 'bisman.bot_role must be a lower-case identifier, not %', bot;
  end if;
  if not exists (select 1 from pg_roles where rolname = bot) then
    execute format('create role %I login', bot);
  elsif exists (select 1 from pg_roles where rolname = bot and rolsuper) then
    -- Stripping superuser from a login someone uses (perhaps the one running this file) is not this file's job.
    raise exception 'bisman.bot_role % is a superuser: give the bot its own role (default bisman_ops)', bot;
  end if;
  -- CREATEROLE: ALTER ROLE ... PASSWORD (rotation) and ALTER ROLE ... [NO]LOGIN (lock-role, unlock-role).
  -- Never superuser, replication, bypassrls or createdb.
  execute format('alter role %I login createrole nosuperuser noreplication nobypassrls nocreatedb', bot);

  -- Reading: pg_stat_activity / pg_stat_ssl / pg_stat_replication of every session, pg_stat_statements
  -- text of every role, every setting (hba_file, ssl, pgaudit.*), pg_database_size.
  execute format('grant pg_monitor to %I', bot);
  -- Terminating sessions (lock-role, terminate, block): pg_terminate_backend() of non-superuser sessions.
  execute format('grant pg_signal_backend to %I', bot);

  execute format('grant connect on database %I to %I', current_database(), bot);
  execute format('grant usage on schema public to %I', bot);
  -- Audit search and detection read these; incident actions append to security_events.
  execute format('grant select on public.audit_logs_dml to %I', bot);
  execute format('grant select, insert on public.security_events to %I', bot);

  -- pg_hba.conf checks (tls, block, unblock) and the reload after a managed pg_hba.conf edit.
  execute format('grant select on pg_catalog.pg_hba_file_rules to %I', bot);
  execute format('grant execute on function pg_catalog.pg_hba_file_rules() to %I', bot);
  execute format('grant execute on function pg_catalog.pg_reload_conf() to %I', bot);

  -- Promotion, only where config enables it for this target.
  if promote then
    execute format('grant execute on function pg_catalog.pg_promote(boolean, integer) to %I', bot);
  else
    execute format('revoke execute on function pg_catalog.pg_promote(boolean, integer) from %I', bot);
  end if;

  -- GRANT / REVOKE on the application tables for `/bisman roles apply`.
  if owner_role is not null then
    if exists (select 1 from pg_roles where rolname = owner_role and rolsuper) then
      raise exception 'bisman.owner_role % is a superuser: give the tables a non-superuser owner first', owner_role;
    end if;
    execute format('grant %I to %I', owner_role, bot);
  end if;
end
$$;

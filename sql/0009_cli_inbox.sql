-- The break-glass CLI's inbox (issue 15): the CLI is a thin client of the running bot. It logs in to this
-- database as the person typing (their own PostgreSQL role, a member of bisman_cli), hands its command to
-- the bot through bisman_ops.cli_submit(), and reads the answer with bisman_ops.cli_reply(). Who typed it is
-- session_user, as PostgreSQL authenticated it: the CLI never says who it is, and never holds DATABASE_URL.
-- The bot (cli/inbox.ts) claims each row once, maps the login to a Slack user (access.cli_operators) and
-- runs the command through the same router and gate as Slack.
--
-- What each role may do here (grants: core/migrate.ts grantCliAccess and grantRuntimeAccess, run after every
-- migration so a bisman_cli created later by an admin is covered too):
--   bisman_cli: SELECT requests, approvals and audit_log; EXECUTE cli_submit and cli_reply; nothing else.
--   the runtime role (DATABASE_URL, with DATABASE_MIGRATION_URL): SELECT cli_inbox and UPDATE only the
--     columns that claim and answer a row; it cannot INSERT one, so it cannot type a command as anyone.

-- Roles are cluster-wide: another state database on this cluster (or a concurrent migration of one) may have
-- created it already. A migrating role without CREATEROLE cannot create it; the CLI then stays unavailable
-- until an admin runs `CREATE ROLE bisman_cli NOLOGIN` (the next start grants it what it needs).
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'bisman_cli') then
    begin
      create role bisman_cli nologin;
    exception
      when duplicate_object or unique_violation then
        null; -- created concurrently by a migration of another database of this cluster
      when insufficient_privilege then
        raise warning 'bisman_cli was not created: the migrating role (%) lacks CREATEROLE; the CLI is unavailable until an admin runs CREATE ROLE bisman_cli NOLOGIN and the bot restarts', current_user;
    end;
  end if;
end
$$;

create table bisman_ops.cli_inbox (
  id bigint generated always as identity primary key,
  -- session_user of the submitting connection: the PostgreSQL login that authenticated.
  login text not null,
  command text not null,
  -- e.g. {"planHash": "…", "typed": "…", "wait_seconds": 30}
  options jsonb not null default '{}'::jsonb,
  submitted_at timestamptz not null default clock_timestamp(),
  -- A bot may take the command only before this; after it, cli_reply() closes the row as never picked up,
  -- so "no bot took the command" and a late run can never both happen.
  pickup_deadline timestamptz not null,
  picked_by text,
  picked_at timestamptz,
  heartbeat_at timestamptz,
  progress text,
  reply jsonb,
  exit_code integer,
  done_at timestamptz
);
create index cli_inbox_waiting_idx on bisman_ops.cli_inbox (id) where picked_by is null and done_at is null;
create index cli_inbox_running_idx on bisman_ops.cli_inbox (heartbeat_at)
  where picked_by is not null and done_at is null;

-- A row says who typed what, once: what was typed never changes, a claim is never undone, a finished row is
-- final. (The runtime role may UPDATE the claim and answer columns; this keeps it from replaying a command by
-- clearing its claim, or rewriting one.)
create function bisman_ops.cli_inbox_guard() returns trigger
language plpgsql as $$
begin
  if tg_op = 'INSERT' then
    if new.login is distinct from session_user::text then
      raise exception 'cli_inbox rows are written by bisman_ops.cli_submit() as the session user'
        using errcode = 'insufficient_privilege';
    end if;
    return new;
  end if;
  if old.done_at is not null then
    raise exception 'CLI command % is finished: its record is final', old.id using errcode = 'insufficient_privilege';
  end if;
  if new.id is distinct from old.id or new.login is distinct from old.login
     or new.command is distinct from old.command or new.options is distinct from old.options
     or new.submitted_at is distinct from old.submitted_at
     or new.pickup_deadline is distinct from old.pickup_deadline then
    raise exception 'CLI command %: what was typed, by whom and when does not change', old.id
      using errcode = 'insufficient_privilege';
  end if;
  if old.picked_by is not null and new.picked_by is distinct from old.picked_by then
    raise exception 'CLI command % was taken by %: a claim is never undone', old.id, old.picked_by
      using errcode = 'insufficient_privilege';
  end if;
  return new;
end
$$;
create trigger cli_inbox_guard before insert or update on bisman_ops.cli_inbox
  for each row execute function bisman_ops.cli_inbox_guard();

-- Hands a command to the bot as the session user. Arguments are checked here (the bot checks the command
-- again, as it does a Slack command): one line of text, a small JSON object of options, at most 20 commands
-- of one person waiting at a time.
create function bisman_ops.cli_submit(text_command text, options jsonb) returns bigint
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  opts jsonb := coalesce(options, '{}'::jsonb);
  wait_seconds integer := 30;
  waiting integer;
  new_id bigint;
begin
  if not pg_has_role(session_user, 'bisman_cli', 'member') then
    raise exception '% is not a member of bisman_cli', session_user using errcode = 'insufficient_privilege';
  end if;
  if text_command is null or btrim(text_command) = '' or length(text_command) > 4000
     or text_command ~ '[[:cntrl:]]' then
    raise exception 'a command is one line of at most 4000 characters' using errcode = 'invalid_parameter_value';
  end if;
  if jsonb_typeof(opts) <> 'object' or length(opts::text) > 8192 then
    raise exception 'options must be a JSON object of at most 8 KB' using errcode = 'invalid_parameter_value';
  end if;
  if opts ? 'wait_seconds' then
    if jsonb_typeof(opts->'wait_seconds') <> 'number' then
      raise exception 'wait_seconds must be a number' using errcode = 'invalid_parameter_value';
    end if;
    wait_seconds := least(300, greatest(1, ceil((opts->>'wait_seconds')::numeric)::integer));
  end if;
  select count(*) into waiting from bisman_ops.cli_inbox
   where login = session_user::text and picked_by is null and done_at is null
     and pickup_deadline > clock_timestamp();
  if waiting >= 20 then
    raise exception '% has 20 commands waiting for a bot already', session_user
      using errcode = 'program_limit_exceeded';
  end if;
  insert into bisman_ops.cli_inbox (login, command, options, pickup_deadline)
  values (session_user::text, text_command, opts, clock_timestamp() + make_interval(secs => wait_seconds))
  returning id into new_id;
  perform pg_notify('bisman_cli', new_id::text);
  return new_id;
end
$$;

-- The state of one of the session user's own commands, as one JSON object:
-- {"state": waiting|running|done|expired, "progress", "exit_code", "reply", "heartbeat_age_seconds"}, or
-- null when the session user has no command with that id. A command no bot took before its deadline is
-- closed here (under the same row lock a claim takes), so it can never start after the CLI gave up on it.
create function bisman_ops.cli_reply(command_id bigint) returns jsonb
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  r bisman_ops.cli_inbox;
begin
  update bisman_ops.cli_inbox
     set done_at = clock_timestamp(), exit_code = 1, reply = '{"expired": true}'::jsonb
   where id = command_id and login = session_user::text and picked_by is null and done_at is null
     and clock_timestamp() >= pickup_deadline;
  select * into r from bisman_ops.cli_inbox where id = command_id and login = session_user::text;
  if not found then
    return null;
  end if;
  return jsonb_build_object(
    'id', r.id,
    'state', case
      when r.done_at is not null and r.picked_by is null then 'expired'
      when r.done_at is not null then 'done'
      when r.picked_by is not null then 'running'
      else 'waiting' end,
    'progress', r.progress,
    'exit_code', r.exit_code,
    'reply', r.reply,
    'heartbeat_age_seconds', extract(epoch from clock_timestamp() - coalesce(r.heartbeat_at, r.picked_at)),
    'deadline_in_seconds', extract(epoch from r.pickup_deadline - clock_timestamp())
  );
end
$$;

-- Functions are executable by PUBLIC by default: only bisman_cli may call these (granted at start-up).
revoke all on function bisman_ops.cli_submit(text, jsonb) from public;
revoke all on function bisman_ops.cli_reply(bigint) from public;

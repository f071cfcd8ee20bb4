-- The approval gate's state: requests for destructive operations, the approvals given, the freeze switch,
-- and the bot instances whose liveness decides whether a `running` request was left behind by a crash.

create table bisman_ops.requests (
  id integer generated always as identity primary key,
  action text not null,
  target text,
  args jsonb not null,
  -- The plan exactly as the approver saw it; what runs is this plan, re-validated, never the command text.
  plan jsonb not null,
  -- Short sha256 of the canonical plan, shown on the message and carried by the Approve button.
  plan_hash text not null,
  -- Extra lines from registered plan notes (e.g. "last proven restore: 3 days ago").
  notes jsonb not null default '[]'::jsonb,
  state text not null default 'pending' check (state in (
    'pending', 'approved', 'running', 'succeeded', 'failed', 'denied', 'expired', 'interrupted',
    'cancelled', 'stale'
  )),
  requester_id text not null,
  requester_name text,
  via text not null,
  -- Where the request was typed, and where its approval message lives.
  asked_in text,
  channel text,
  message_ts text,
  thread_ts text,
  approvals_needed integer not null check (approvals_needed between 1 and 5),
  -- The effective policy when the request was made (for the record; eligibility is checked on click).
  policy jsonb not null,
  created_at timestamptz not null,
  expires_at timestamptz not null,
  started_at timestamptz,
  finished_at timestamptz,
  -- Who made it final (approver whose click claimed it, denier, canceller).
  decided_by text,
  decided_by_name text,
  result jsonb,
  summary text,
  error text,
  deny_reason text,
  -- The bot instance running it, and its last sign of life while running.
  run_by text,
  heartbeat_at timestamptz,
  -- What reconcile() found after an interruption: { status, note }.
  reconcile jsonb
);
create index requests_open_idx on bisman_ops.requests (state, expires_at)
  where state in ('pending', 'approved', 'running');

create table bisman_ops.approvals (
  request_id integer not null references bisman_ops.requests (id),
  approver text not null,
  approver_name text,
  at timestamptz not null,
  primary key (request_id, approver)
);

-- One row: whether destructive work is frozen, why, and by whom.
create table bisman_ops.freeze (
  id boolean primary key default true check (id),
  frozen boolean not null default false,
  reason text,
  frozen_by text,
  frozen_by_name text,
  frozen_at timestamptz
);
insert into bisman_ops.freeze (id, frozen) values (true, false);

-- Each running bot process holds a session advisory lock (namespace, lock_key) while it lives; a request
-- `running` under an instance whose lock nobody holds was left behind by a dead process.
create table bisman_ops.instances (
  id text primary key,
  lock_key integer generated always as identity unique,
  host text,
  pid integer,
  started_at timestamptz not null,
  heartbeat_at timestamptz not null
);

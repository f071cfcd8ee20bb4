-- Scheduled jobs (jobs/scheduler.ts): one row per job and slot, claimed by exactly one bot replica.
--
-- `slot` is the scheduled time croner computed (the same in every replica), or the moment of a manual run.
-- The unique (job, slot) key is the claim: `insert … on conflict do nothing returning id` succeeds in one
-- replica only. While a run is `running`, its replica renews `lease_until`; a run whose lease has lapsed was
-- left by a dead process and is recorded as `interrupted` by whichever replica claims the next slot.
create table bisman_ops.job_runs (
  id bigint generated always as identity primary key,
  job text not null,
  slot timestamptz not null,
  trigger text not null check (trigger in ('schedule', 'manual')),
  -- The replica that claimed it (host:pid:random), and who asked for a manual run.
  runner text not null,
  invoker text,
  started_at timestamptz not null default now(),
  heartbeat_at timestamptz not null default now(),
  lease_until timestamptz not null,
  finished_at timestamptz,
  -- skipped: the slot came while another replica's run of the same job was still alive.
  outcome text not null default 'running'
    check (outcome in ('running', 'ok', 'failed', 'skipped', 'interrupted')),
  -- ok / warning / critical as the job judged what it found (a successful run can find problems).
  level text check (level in ('ok', 'warning', 'critical')),
  summary text,
  error text,
  details jsonb not null default '{}'::jsonb,
  -- Review jobs (slow queries weekly, audit anomalies) are acknowledged by a person.
  acked_by text,
  acked_by_name text,
  acked_at timestamptz,
  message_channel text,
  message_ts text,
  unique (job, slot)
);
create index job_runs_job_slot_idx on bisman_ops.job_runs (job, slot desc);
create index job_runs_running_idx on bisman_ops.job_runs (job) where outcome = 'running';
create index job_runs_finished_idx on bisman_ops.job_runs (finished_at);

-- Per job: whether it is failing, so a failure is posted once (when it starts) and a recovery once.
create table bisman_ops.job_state (
  job text primary key,
  last_success_at timestamptz,
  last_failure_at timestamptz,
  failing_since timestamptz,
  consecutive_failures integer not null default 0,
  failures_total bigint not null default 0
);

-- Checklist items that the database cannot show (WAF rules without a Kong Admin API, encryption at rest):
-- an operator attests, naming the mechanism; the newest row per (target, item) counts.
create table bisman_ops.attestations (
  id bigint generated always as identity primary key,
  target text not null,
  item text not null,
  mechanism text,
  attested_by text not null,
  attested_by_name text,
  attested_at timestamptz not null default now()
);
create index attestations_item_idx on bisman_ops.attestations (target, item, attested_at desc);

-- Restore tests: one row per run, so "last proven restore" (when, from which dump, how long: the measured
-- RTO; how old that dump's data was: an upper bound on RPO) is a fact the rest of the bot can read, and the
-- digest can show the trend. A run is inserted as 'running' before it touches anything; a crash leaves it
-- 'running' until the cleanup job (jobs/restore_cleanup.ts) marks it failed and drops its scratch database.
create table bisman_ops.restore_tests (
  id bigint generated always as identity primary key,
  target text not null,
  trigger text not null,
  requested_by text not null,
  status text not null check (status in ('running', 'passed', 'failed')),
  started_at timestamptz not null,
  finished_at timestamptz,
  backup_file text not null,
  backup_bytes bigint,
  -- When pg_dump took its snapshot ("Archive created at"), else the file's modification time.
  backup_created_at timestamptz,
  restore_server text not null,
  scratch_database text not null,
  objects_total integer,
  -- CREATE DATABASE plus pg_restore: how long a restore of this dump takes (the measured RTO).
  restore_ms bigint,
  total_ms bigint,
  restored_bytes bigint,
  verifications jsonb not null default '[]'::jsonb,
  error text,
  scratch_dropped boolean
);
create index restore_tests_target_idx on bisman_ops.restore_tests (target, started_at desc);
create index restore_tests_passed_idx on bisman_ops.restore_tests (target, finished_at desc)
  where status = 'passed';

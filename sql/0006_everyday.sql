-- Everyday use (issue 11): reminders and cancelling of approval requests, the "take a backup first" step,
-- progress of running requests, cancelled restore tests, alert ownership and silences, and query results
-- shared to the channel.

-- One reminder per request: claimed by the conditional UPDATE that sets reminded_at, so several replicas
-- still post it once.
alter table bisman_ops.requests add column reminded_at timestamptz;
-- A running request whose operation stops safely may be cancelled: the click records it here, and the
-- instance running it (whichever replica) sees it on its next heartbeat and stops.
alter table bisman_ops.requests add column cancel_requested_at timestamptz;
alter table bisman_ops.requests add column cancel_requested_by text;
alter table bisman_ops.requests add column cancel_requested_by_name text;
-- "Take a backup first": null when not offered, true while kept, false once an approver dropped it.
alter table bisman_ops.requests add column pre_backup boolean;
-- The latest progress line of a running request (shown on its message).
alter table bisman_ops.requests add column progress text;

-- A restore test stopped mid-way is recorded as cancelled, with how far it got in `error`.
alter table bisman_ops.restore_tests drop constraint restore_tests_status_check;
alter table bisman_ops.restore_tests add constraint restore_tests_status_check
  check (status in ('running', 'passed', 'failed', 'cancelled'));
-- A stop asked for while it runs (from any replica); the run polls for it.
alter table bisman_ops.restore_tests add column cancel_requested_at timestamptz;
alter table bisman_ops.restore_tests add column cancel_requested_by text;

-- Alert threads: Alertmanager's own URL as the alert came with it (used for silences when the config names
-- none), who took the alert ("I'm on it"), and the silence the bot created for it.
alter table bisman_ops.alert_state add column external_url text;
alter table bisman_ops.alert_state add column owner text;
alter table bisman_ops.alert_state add column owner_name text;
alter table bisman_ops.alert_state add column owned_at timestamptz;
alter table bisman_ops.alert_state add column silence_id text;
alter table bisman_ops.alert_state add column silence_until timestamptz;
alter table bisman_ops.alert_state add column silenced_by text;

-- Query results are ephemeral to the asker; "Post to channel" posts exactly what they saw, kept here for a
-- day (the button carries only the id).
create table bisman_ops.reply_shares (
  id bigint generated always as identity primary key,
  owner text not null,
  channel text not null,
  subcommand text not null,
  reply jsonb not null,
  created_at timestamptz not null,
  shared_at timestamptz
);

-- Alert threads (alerts/threads.ts): one Slack thread per alert fingerprint, fed by Alertmanager's webhook and
-- the bot's own lag check.
--
-- Incoming alerts are written here first and acknowledged at once; a single poster per channel (a session
-- advisory lock) drains `alert_outbox` in id order, so nothing is dropped, nothing is posted twice by two
-- replicas, and a thread's messages keep their order however slowly Slack lets us post.

-- Alerts that arrive together in a storm are listed in one parent message per Alertmanager group, with the
-- per-alert detail in its thread. A storm closes when all its alerts are resolved.
create table bisman_ops.alert_storms (
  id bigint generated always as identity primary key,
  channel text not null,
  group_key text not null,
  alertname text not null,
  -- The parent message; null until the poster has posted it.
  parent_ts text,
  created_at timestamptz not null,
  closed_at timestamptz
);
create index alert_storms_open_idx on bisman_ops.alert_storms (channel, group_key) where closed_at is null;

-- The latest state of each alert, and where Slack shows it.
create table bisman_ops.alert_state (
  fingerprint text primary key,
  source text not null check (source in ('alertmanager', 'lag_check')),
  channel text not null,
  alertname text not null,
  group_key text not null,
  status text not null check (status in ('firing', 'resolved')),
  labels jsonb not null,
  annotations jsonb not null,
  starts_at timestamptz,
  ends_at timestamptz,
  generator_url text,
  -- What makes a notification new: status, labels, annotations (and startsAt while firing). Alertmanager
  -- re-sends every alert of a group on each notification; an unchanged one is not posted again.
  content_hash text not null,
  first_seen_at timestamptz not null,
  received_at timestamptz not null,
  -- Slack: the thread the alert lives in (its own parent message, or its storm's), and its own parent.
  thread_ts text,
  message_ts text,
  storm_id bigint references bisman_ops.alert_storms (id),
  posted_status text
);
create index alert_state_storm_idx on bisman_ops.alert_state (storm_id) where storm_id is not null;

-- What is still to be shown in Slack, in order. Rows are never deleted by the poster, only marked done, so
-- the history of what was posted stays inspectable.
create table bisman_ops.alert_outbox (
  id bigint generated always as identity primary key,
  channel text not null,
  fingerprint text not null references bisman_ops.alert_state (fingerprint),
  event text not null check (event in ('firing', 'refiring', 'updated', 'resolved')),
  -- The alert as it was at this notification (the parent message shows the latest one posted).
  snapshot jsonb not null,
  enqueued_at timestamptz not null,
  done_at timestamptz,
  attempts integer not null default 0,
  last_error text
);
create index alert_outbox_pending_idx on bisman_ops.alert_outbox (channel, id) where done_at is null;

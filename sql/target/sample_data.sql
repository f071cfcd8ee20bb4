-- A data generator for the sample schema (sample_schema.sql) and the audit trail (audit.sql), for tests,
-- benchmarks and the sandbox. Everything is generate_series based and deterministic (row n always looks
-- the same), so tests can predict counts. Call:
--
--   select bisman_sample.generate(clients => 1000, invoices => 2000, payment_requests => 2000,
--                                 payments => 1000, audit_rows => 100000, days => 30, app_users => 5000);
--
-- Application rows are inserted with session_replication_role = replica, so the audit trigger does not
-- fire for them: the audit rows are generated separately, with realistic context (bisman_app with an app
-- user, svc_payments on its own tables, some bisman_admin), spread evenly over the last `days` days.
-- Superuser only (session_replication_role). Never for a production target.

create schema if not exists bisman_sample;

create or replace function bisman_sample.generate(
  clients integer default 1000,
  invoices integer default 2000,
  payment_requests integer default 2000,
  payments integer default 1000,
  audit_rows bigint default 0,
  days integer default 30,
  app_users integer default 5000
) returns jsonb
language plpgsql
set search_path = pg_catalog, public
as $$
declare
  c0 bigint;
  i0 bigint;
  r0 bigint;
  started timestamptz := clock_timestamp();
  span_seconds double precision := days * 86400.0;
begin
  perform set_config('session_replication_role', 'replica', true);

  select coalesce(max(id), 0) into c0 from public.clients;
  insert into public.clients (id, name, email, country, created_at)
  overriding system value
  select c0 + g, 'Client ' || (c0 + g), 'client' || (c0 + g) || '@example.test',
         (array['UZ', 'KZ', 'TR', 'DE'])[1 + g % 4], now() - make_interval(secs => (g % 86400) * 30)
    from generate_series(1, clients) g;

  if not exists (select 1 from public.products) then
    insert into public.products (sku, name, price)
    select 'SKU-' || g, 'Product ' || g, (g % 500) + 0.99 from generate_series(1, 100) g;
  end if;

  select coalesce(max(id), 0) into i0 from public.invoices;
  insert into public.invoices (id, client_id, total, status, issued_at)
  overriding system value
  select i0 + g, 1 + (g * 7) % greatest(c0 + clients, 1), (g % 10000) + 0.5,
         (array['draft', 'issued', 'paid', 'void'])[1 + g % 4], now() - make_interval(secs => g * 60)
    from generate_series(1, invoices) g
   where c0 + clients > 0;

  select coalesce(max(id), 0) into r0 from public.payment_requests;
  insert into public.payment_requests (id, invoice_id, client_id, amount, currency, status, requested_at)
  overriding system value
  select r0 + g, case when i0 + invoices > 0 then 1 + (g * 3) % (i0 + invoices) end,
         1 + (g * 11) % greatest(c0 + clients, 1), (g % 5000) + 1,
         'UZS', (array['pending', 'approved', 'rejected', 'paid'])[1 + g % 4], now() - make_interval(secs => g * 45)
    from generate_series(1, payment_requests) g
   where c0 + clients > 0;

  insert into public.payments (payment_request_id, amount, method, paid_at)
  select 1 + (g * 5) % greatest(r0 + payment_requests, 1), (g % 5000) + 1,
         (array['card', 'transfer', 'cash'])[1 + g % 3], now() - make_interval(secs => g * 50)
    from generate_series(1, payments) g
   where r0 + payment_requests > 0;

  -- Audit rows: bucket b = (g * 7919) % 100 decides who wrote: 0-74 bisman_app (web or mobile, an app
  -- user), 75-94 svc_payments (service payments, its two tables only), 95-99 bisman_admin. Tables are
  -- skewed as in an ERP: products are rarely written (1 in 20 of app writes), clients and invoices often.
  insert into public.audit_logs_dml (
    occurred_at, table_schema, table_name, action, row_id, old_data, new_data, db_user, session_user_name,
    app_user_id, service_name, client_addr, application_name, query_text, txid, backend_pid)
  select now() - make_interval(secs => span_seconds * g / audit_rows),
         'public', t.table_name, t.action, (g % 100000)::text,
         case when t.action <> 'INSERT' then jsonb_build_object('id', g % 100000, 'status', 'pending') end,
         case when t.action <> 'DELETE' then jsonb_build_object('id', g % 100000, 'status', 'approved') end,
         t.db_user, t.db_user, t.app_user_id, t.service_name,
         ('10.0.' || (1 + b / 75) || '.' || (1 + g % 250))::inet, t.service_name,
         t.action || ' public.' || t.table_name || ' ...', 1000000 + g, 1000 + (g % 30000)::integer
    from generate_series(1::bigint, audit_rows) g
   cross join lateral (select ((g * 7919) % 100)::integer as b) bb
   cross join lateral (
     select case when b < 75 then 'bisman_app' when b < 95 then 'svc_payments' else 'bisman_admin' end as db_user,
            case when b < 95 and b >= 75
                 then (array['payment_requests', 'payments'])[1 + g % 2]
                 else (array['clients', 'clients', 'clients', 'clients', 'clients', 'invoices', 'invoices',
                             'invoices', 'invoices', 'invoices', 'payment_requests', 'payment_requests',
                             'payment_requests', 'payment_requests', 'payments', 'payments', 'payments',
                             'payments', 'payments', 'products'])[1 + (g * 13) % 20]
            end as table_name,
            (array['INSERT', 'UPDATE', 'UPDATE', 'DELETE'])[1 + (g / 7) % 4] as action,
            case when b < 75 then 'u' || ((g * 31) % app_users)
                 when b >= 95 then 'admin' || (g % 20) end as app_user_id,
            case when b < 75 then (array['web', 'mobile'])[1 + g % 2]
                 when b < 95 then 'payments' else 'admin-console' end as service_name
   ) t
   where audit_rows > 0;

  -- Rows above were given explicit ids: move each identity past them, so later inserts do not collide.
  perform setval(pg_get_serial_sequence('public.' || t, 'id'), greatest(m, 1))
     from (values ('clients', (select max(id) from public.clients)),
                  ('invoices', (select max(id) from public.invoices)),
                  ('payment_requests', (select max(id) from public.payment_requests))) v(t, m)
    where m is not null;

  perform set_config('session_replication_role', 'origin', true);
  return jsonb_build_object(
    'clients', clients, 'invoices', invoices, 'payment_requests', payment_requests, 'payments', payments,
    'audit_rows', audit_rows, 'seconds', extract(epoch from clock_timestamp() - started));
end
$$;
revoke all on function bisman_sample.generate(integer, integer, integer, integer, bigint, integer, integer) from public;

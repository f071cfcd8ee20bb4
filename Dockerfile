# bisman-ops: Deno 2 image with dependencies cached at build time, running as a non-root user.
FROM denoland/deno:debian-2.9.6

# pg_dump/pg_restore/pgbackrest are needed for backups and restore tests run from the bot's host.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-15 pgbackrest ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first, so code changes do not invalidate the cached layer.
COPY deno.json deno.lock ./
COPY . .
RUN deno install --frozen --entrypoint main.ts \
 && deno cache --frozen main.ts cli.ts \
 && rm -rf tests bench sandbox .ci

USER deno
ENV PORT=3000
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["deno", "eval", "const r = await fetch('http://127.0.0.1:' + (Deno.env.get('PORT') ?? '3000') + '/healthz'); Deno.exit(r.ok ? 0 : 1)"]
CMD ["deno", "run", "--allow-net", "--allow-env", "--allow-read", "--allow-write=/tmp", "--allow-run", "--allow-sys", "main.ts"]

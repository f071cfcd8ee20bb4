# bisman-ops: Deno 2 image. Dependencies are fetched and checked against the committed lock at build time,
# nothing is fetched at run time, the process runs as the non-root `deno` user (uid 1993, the Deployment's
# runAsUser), and it works on a read-only root file system (only /tmp is written; deploy/k8s/deployment.yaml).
FROM denoland/deno:debian-2.9.6

# pg_dump/pg_restore (backups, restore tests) and pgbackrest (backup status) run from the bot's container.
# The client's major version must be at least the targets' (15 in the seed).
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-15 pgbackrest ca-certificates \
 && rm -rf /var/lib/apt/lists/*

ENV DENO_NO_UPDATE_CHECK=1 \
    DENO_NO_PROMPT=1
WORKDIR /app

# Dependencies first, in their own layer, so a code change does not refetch them. `ws` (the Slack
# stand-in's WebSocket server) and `playwright-core` (the sandbox's browser driver) are for tests and
# development only: they are dropped from the import map before installing, so they are not in the image.
COPY deno.json deno.lock ./
RUN deno remove playwright-core ws \
 && deno install

# The code. .dockerignore keeps tests, benchmarks, the sandbox, docs, deploy/ and CI files out.
COPY . .
# COPY brought back the full deno.json: drop the dev-only imports again (no fetch: only removals), then
# cache exactly what main.ts and the break-glass CLI load. Everything is owned by root and read-only for
# the runtime user.
RUN deno remove playwright-core ws \
 && deno cache --frozen main.ts cli.ts \
 && chmod -R a+rX,go-w /app "$DENO_DIR"

USER deno
ENV PORT=3000
EXPOSE 3000
# Kubernetes uses the Deployment's probes; this is for plain `docker run`.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["deno", "eval", "const r = await fetch('http://127.0.0.1:' + (Deno.env.get('PORT') ?? '3000') + '/healthz'); Deno.exit(r.ok ? 0 : 1)"]
# Named permissions, not -A: network (Slack, Vault, PostgreSQL), env, reading config and CA files, writing
# scratch files under /tmp, running pg_dump/pg_restore/pgbackrest, and the host name for logs.
# SIGTERM starts a graceful shutdown (docs/operations.md).
STOPSIGNAL SIGTERM
CMD ["deno", "run", "--cached-only", "--frozen", "--allow-net", "--allow-env", "--allow-read", "--allow-write=/tmp", "--allow-run", "--allow-sys", "main.ts"]

# bisman-ops: Deno 2 on Debian 12 (bookworm). Dependencies are fetched and checked against the committed lock
# at build time, nothing is fetched at run time, the process runs as the non-root `deno` user (uid 1993, the
# Deployment's runAsUser), and it works on a read-only root file system (only /tmp is written;
# deploy/k8s/deployment.yaml).
#
# Why this base (README, "The image"): `denoland/deno:debian-<version>` is built FROM debian:stable-slim
# (denoland/deno_docker, debian.dockerfile), a moving target that is Debian 13 today and ships no
# PostgreSQL 15 client. Here the Debian release is pinned (bookworm, dated tag and digest) and the Deno binary
# is copied from `denoland/deno:bin-<version>`, an image that holds only /deno (bin.dockerfile: FROM scratch).
#
#   docker build -t bisman-ops .                                   # client 15, from Debian itself
#   docker build --build-arg PG_MAJOR=17 -t bisman-ops .           # client 17, from apt.postgresql.org
#   docker build --build-arg BISMAN_VERSION=1.0.0 --build-arg BISMAN_COMMIT=$(git rev-parse HEAD) …

# The Deno binary. Digest as pinned by public Dockerfiles that use the same tag; it could not be checked
# against the registry from the development machines (no registry access there): confirm it with
# `docker buildx imagetools inspect denoland/deno:bin-2.9.6` when bumping.
FROM denoland/deno:bin-2.9.6@sha256:4cf0029b9aeeeed5efcbb71828737f0d7c8c8a20072df960e51a5679ef0d21ba AS deno

# Debian 12 (bookworm), the snapshot of 2026-09-18; the digest is the multi-platform index recorded in
# docker-library/repo-info (repos/debian/remote/bookworm-20260918-slim.md).
FROM debian:bookworm-20260918-slim@sha256:3783cc01769c7b2b1b83a5c5ad96c815348e28ed7da68e2e3687004faa906251

# The PostgreSQL client major (pg_dump, pg_restore, psql). It must be at least the targets' major: pg_dump
# refuses to dump a newer server, and pg_restore refuses an archive written by a newer pg_dump. The README
# recommends the targets' own major (the newest one when they differ), with restore servers on that major too:
# a newer pg_dump's output is not guaranteed to load into an older server. 15 (the seed's) comes from
# bookworm itself; any other from the PostgreSQL project's apt repository (PGDG).
ARG PG_MAJOR=15
# The oldest major a target may run (the seed's); a client older than that is refused at build time.
ARG MIN_PG_MAJOR=15

# pg_dump/pg_restore (backups, restore tests) and pgbackrest (backup status) run from the bot's container;
# tini is PID 1 (signals forwarded, children reaped), as in the denoland/deno images.
RUN set -eux; \
    case "$PG_MAJOR" in ''|*[!0-9]*) echo "PG_MAJOR must be a major version number, got '$PG_MAJOR'" >&2; exit 1;; esac; \
    if [ "$PG_MAJOR" -lt "$MIN_PG_MAJOR" ]; then \
      echo "PG_MAJOR=$PG_MAJOR is older than the targets' $MIN_PG_MAJOR: pg_dump refuses newer servers" >&2; exit 1; \
    fi; \
    apt-get update; \
    if [ "$PG_MAJOR" != 15 ]; then \
      # As docker-library/postgres does (17/bookworm/Dockerfile): the PGDG key by its full fingerprint, and the
      # repository component of this one major. PGDG's pgbackrest is newer than bookworm's and is preferred.
      apt-get install -y --no-install-recommends ca-certificates gnupg; \
      key='B97B0AFCAA1A47F044F244A07FCC7D46ACCC4CF8'; \
      export GNUPGHOME="$(mktemp -d)"; \
      mkdir -p /usr/local/share/keyrings; \
      gpg --batch --keyserver keyserver.ubuntu.com --recv-keys "$key"; \
      gpg --batch --export --armor "$key" > /usr/local/share/keyrings/postgres.gpg.asc; \
      gpgconf --kill all; rm -rf "$GNUPGHOME"; \
      echo "deb [ signed-by=/usr/local/share/keyrings/postgres.gpg.asc ] http://apt.postgresql.org/pub/repos/apt/ bookworm-pgdg main $PG_MAJOR" \
        > /etc/apt/sources.list.d/pgdg.list; \
      apt-get purge -y --auto-remove gnupg; \
      apt-get update; \
    fi; \
    # The image's packages (tests/deploy/dockerfile_test.ts dry-runs this line on a bookworm machine).
    apt-get install -y --no-install-recommends postgresql-client-$PG_MAJOR pgbackrest ca-certificates tini; \
    rm -rf /var/lib/apt/lists/*; \
    pg_dump --version; pg_restore --version; pgbackrest version

# What denoland/deno's Debian image adds around the binary (debian.dockerfile): the `deno` user (uid 1993)
# and DENO_DIR.
RUN useradd --uid 1993 --user-group deno \
 && mkdir /deno-dir/
COPY --from=deno /deno /usr/bin/deno
ENV DENO_DIR=/deno-dir/ \
    DENO_NO_UPDATE_CHECK=1 \
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

# The build, on /metrics as bisman_build_info{version,commit}.
ARG BISMAN_VERSION=dev
ARG BISMAN_COMMIT=unknown
ENV BISMAN_VERSION=${BISMAN_VERSION} \
    BISMAN_COMMIT=${BISMAN_COMMIT} \
    PG_MAJOR=${PG_MAJOR}

USER deno
ENV PORT=3000
EXPOSE 3000
# Kubernetes uses the Deployment's probes; this is for plain `docker run`.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["deno", "eval", "const r = await fetch('http://127.0.0.1:' + (Deno.env.get('PORT') ?? '3000') + '/healthz'); Deno.exit(r.ok ? 0 : 1)"]
# Named permissions, not -A: network (Slack, Vault, PostgreSQL), env, reading config, CA files and /proc
# (process metrics), writing scratch files under /tmp, running pg_dump/pg_restore/pgbackrest, and the host
# name for logs. SIGTERM starts a graceful shutdown (README, "Shutdown"). bench/load.ts starts the bot with this CMD's
# flags. V8's default young generation is kept: 1 MiB semi-spaces (--v8-flags=--max-semi-space-size=1) took
# about 12-20 MiB off the idle bot's 125-134 MiB but cost throughput (README, "Measured"). Instead
# --expose-gc lets core/idle_reclaim.ts give the heap's spare pages back once the bot is idle (about 20 MiB),
# and --no-code-cache keeps V8's code cache database (a mapped SQLite file and its buffers, about 4 MiB
# resident for the process's life) out of the process: it only saves compiling at start, and DENO_DIR is
# read-only for this user anyway. FFI is granted for glibc alone (each architecture's path): after its GC the
# idle reclaimer calls malloc_trim(0) (core/malloc_trim.ts), which gave back 45-55 MiB of malloc's free
# pages after a burst; --allow-run already lets the process start any program, so this adds no reach.
# Figures: README, "Measured".
# glibc malloc: fixed thresholds instead of the dynamic ones, which rise after a large block is freed (up
# to 32 MiB) so later large blocks come from the arenas and stay resident. bench/load.ts passes these too.
ENV MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["deno", "run", "--cached-only", "--frozen", "--no-code-cache", "--v8-flags=--expose-gc", "--allow-net", "--allow-env", "--allow-read", "--allow-write=/tmp", "--allow-run", "--allow-sys", "--allow-ffi=/lib/x86_64-linux-gnu/libc.so.6,/lib/aarch64-linux-gnu/libc.so.6", "main.ts"]

import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";

const root = new URL("../../", import.meta.url).pathname;
const deployDir = `${root}deploy`;

async function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(cmd, { args, cwd: root, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

async function yamlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await yamlFiles(p));
    else if (/\.ya?ml$/.test(e.name)) out.push(p);
  }
  return out.sort();
}

type Doc = Record<string, any>;

/** Every document of every YAML file under deploy/, parsed strictly (any YAML error fails). */
async function allDocuments(): Promise<{ file: string; doc: Doc }[]> {
  const out: { file: string; doc: Doc }[] = [];
  for (const file of await yamlFiles(deployDir)) {
    const docs = parseAllDocuments(await Deno.readTextFile(file), { prettyErrors: true });
    for (const d of docs) {
      assert.deepEqual(d.errors.map(String), [], `${file} parses`);
      const doc = d.toJS();
      if (doc !== null && doc !== undefined) out.push({ file: file.slice(root.length), doc });
    }
  }
  return out;
}

/**
 * Rules without a firing case yet (kept from before this check existed): the bot's own availability and
 * Slack health. Each new rule gets a case.
 */
const UNTESTED_RULES = new Set([
  "BismanOpsAllReplicasDown",
  "BismanJobFailuresRepeated",
  "BismanSlackAckSlow",
  "BismanSlackSocketDown",
]);

const SECRET_NAME = /TOKEN|SECRET|PASSWORD|DATABASE_URL|_KEY$|CREDENTIAL/;

Deno.test("deploy/ Kubernetes manifests: two hardened replicas with probes, secrets only by reference, PostgreSQL reachable only from the app and the bot", async (t) => {
  const docs = await allDocuments();
  const k8s = docs.filter((d) => d.file.startsWith("deploy/k8s/") && d.doc.kind && d.doc.apiVersion);
  const kind = (k: string, name?: string) =>
    k8s.filter((d) => d.doc.kind === k && (!name || d.doc.metadata?.name === name)).map((d) => d.doc);

  await t.step("every manifest parses and names its kind, apiVersion and metadata.name", () => {
    assert.ok(k8s.length >= 8, `found ${k8s.length} Kubernetes objects`);
    for (const { file, doc } of k8s) {
      if (doc.kind === "Kustomization") continue;
      assert.ok(doc.metadata?.name, `${file}: ${doc.kind} has a name`);
    }
    const kustomization = kind("Kustomization")[0];
    const listed = new Set<string>(kustomization.resources);
    const files = new Set(
      k8s.map((d) => d.file.replace("deploy/k8s/", "")).filter((f) => f !== "kustomization.yaml"),
    );
    assert.deepEqual([...files].sort(), [...listed].sort(), "kustomization.yaml lists every manifest");
  });

  const [deployment] = kind("Deployment", "bisman-ops");
  const pod = deployment.spec.template.spec;
  const [container] = pod.containers;

  await t.step("the Deployment runs 2 replicas with liveness on /healthz and readiness on /readyz", () => {
    assert.equal(deployment.spec.replicas, 2);
    assert.equal(container.livenessProbe.httpGet.path, "/healthz");
    assert.equal(container.readinessProbe.httpGet.path, "/readyz");
    assert.equal(container.startupProbe.httpGet.path, "/healthz");
    assert.equal(
      deployment.spec.strategy.rollingUpdate.maxUnavailable,
      0,
      "a rollout never leaves no replica",
    );
    assert.equal(kind("PodDisruptionBudget")[0].spec.minAvailable, 1);
  });

  await t.step(
    "it has resource limits, runs non-root with a read-only root file system and no privileges",
    () => {
      assert.ok(container.resources.limits.cpu && container.resources.limits.memory);
      assert.ok(container.resources.requests.cpu && container.resources.requests.memory);
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.ok(pod.securityContext.runAsUser > 0);
      assert.equal(container.securityContext.readOnlyRootFilesystem, true);
      assert.equal(container.securityContext.allowPrivilegeEscalation, false);
      assert.deepEqual(container.securityContext.capabilities.drop, ["ALL"]);
      assert.equal(pod.automountServiceAccountToken, false, "no token in every container");
      // The bot container alone gets a short-lived token, where ops/network_policies.ts reads it by default.
      const tokenMount = container.volumeMounts.find((m: Doc) =>
        m.mountPath === "/var/run/secrets/kubernetes.io/serviceaccount"
      );
      assert.ok(tokenMount?.readOnly, "the bot container mounts a service-account token, read-only");
      const projected = pod.volumes.find((v: Doc) => v.name === tokenMount.name).projected.sources;
      assert.ok(projected.some((s: Doc) => s.serviceAccountToken?.expirationSeconds <= 3600));
      assert.ok(projected.some((s: Doc) => s.configMap?.name === "kube-root-ca.crt"));
      for (const init of pod.initContainers ?? []) {
        assert.ok(
          !(init.volumeMounts ?? []).some((m: Doc) => m.name === tokenMount.name),
          `${init.name} gets no token`,
        );
      }
      const writable = container.volumeMounts.filter((m: Doc) => !m.readOnly).map((m: Doc) => m.mountPath);
      assert.ok(writable.includes("/tmp"), "a writable /tmp on an emptyDir");
      for (const path of writable) {
        const vol = pod.volumes.find((v: Doc) =>
          v.name === container.volumeMounts.find((m: Doc) => m.mountPath === path).name
        );
        assert.ok(vol.emptyDir, `${path} is an emptyDir, not the image`);
      }
    },
  );

  await t.step("the grace period covers preStop plus the bot's shutdown bound", () => {
    const grace = Number(container.env.find((e: Doc) => e.name === "BISMAN_SHUTDOWN_GRACE_SECONDS").value);
    const preStop = Number(container.lifecycle.preStop.exec.command.at(-1));
    assert.ok(pod.terminationGracePeriodSeconds > grace + preStop);
  });

  await t.step("secrets come from a Secret by reference; no manifest holds a secret value", () => {
    for (const e of [...container.env, ...pod.initContainers.flatMap((c: Doc) => c.env ?? [])]) {
      if (SECRET_NAME.test(e.name)) assert.equal(e.value, undefined, `${e.name} must not be a literal`);
    }
    assert.ok(container.envFrom.some((f: Doc) => f.secretRef?.name === "bisman-ops-secrets"));
    for (const { file, doc } of docs) {
      if (doc.kind === "Secret") assert.fail(`${file} defines a Secret; create it out of band`);
    }
    const text = docs.map((d) => JSON.stringify(d.doc)).join("\n");
    assert.doesNotMatch(
      text,
      /xox[bpa]-|xapp-|postgres:\/\/[^@"]*:[^@"]*@/,
      "no token or password in deploy/",
    );
  });

  await t.step("the seed's NetworkPolicy admits only the app and the bot to PostgreSQL on 5432", () => {
    const [np] = kind("NetworkPolicy", "postgres-access");
    assert.deepEqual(np.spec.podSelector.matchLabels, { app: "postgres" });
    assert.equal(np.spec.ingress.length, 1);
    const [rule] = np.spec.ingress;
    assert.deepEqual(rule.ports, [{ protocol: "TCP", port: 5432 }]);
    assert.deepEqual(rule.from, [
      { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "bisman-app" } } },
      { podSelector: { matchLabels: { app: "bisman-backend" } } },
      {
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": deployment.metadata.namespace } },
        podSelector: { matchLabels: deployment.spec.template.metadata.labels },
      },
    ]);
    assert.equal(kind("Namespace", deployment.metadata.namespace).length, 1);
  });

  await t.step(
    "every NetworkPolicy selects namespaces by kubernetes.io/metadata.name, the label Kubernetes sets itself",
    () => {
      const selectors = kind("NetworkPolicy").flatMap((np) =>
        [
          ...(np.spec.ingress ?? []).flatMap((r: Doc) => r.from ?? []),
          ...(np.spec.egress ?? []).flatMap((r: Doc) => r.to ?? []),
        ].filter((peer: Doc) => peer.namespaceSelector).map((peer: Doc) => peer.namespaceSelector)
      );
      assert.ok(selectors.length >= 6, `found ${selectors.length} namespace selectors`);
      for (const s of selectors) {
        assert.deepEqual(Object.keys(s), ["matchLabels"], JSON.stringify(s));
        assert.deepEqual(Object.keys(s.matchLabels), ["kubernetes.io/metadata.name"], JSON.stringify(s));
      }
    },
  );

  await t.step(
    "the role split: migrations run as the owner in an init container with its own Secret; the bot only checks",
    async () => {
      const [migrate] = pod.initContainers.filter((c: Doc) => c.name === "migrate");
      assert.ok(migrate, "a migrate init container");
      assert.deepEqual(migrate.command.slice(-2), ["main.ts", "migrate"]);
      assert.ok(!migrate.command.includes("-A"), "named permissions, as the bot's own command");
      assert.equal(migrate.image, container.image, "the same image as the bot");
      const ref = (c: Doc, name: string) => c.env?.find((e: Doc) => e.name === name)?.valueFrom?.secretKeyRef;
      assert.deepEqual(ref(migrate, "DATABASE_MIGRATION_URL"), {
        name: "bisman-ops-migration",
        key: "DATABASE_MIGRATION_URL",
      });
      assert.deepEqual(ref(migrate, "DATABASE_URL"), { name: "bisman-ops-secrets", key: "DATABASE_URL" });
      assert.equal(migrate.securityContext.readOnlyRootFilesystem, true);
      assert.equal(migrate.securityContext.allowPrivilegeEscalation, false);
      // The bot never sees the owner's URL, and refuses to start on a schema that is behind.
      assert.equal(container.env.find((e: Doc) => e.name === "BISMAN_MIGRATIONS")?.value, "check");
      assert.equal(ref(container, "DATABASE_MIGRATION_URL"), undefined);
      assert.doesNotMatch(JSON.stringify(container), /bisman-ops-migration/);
      assert.deepEqual(ref(container, "BISMAN_SIGNING_KEY"), {
        name: "bisman-ops-secrets",
        key: "BISMAN_SIGNING_KEY",
      });
      const text = await Deno.readTextFile(`${deployDir}/k8s/deployment.yaml`);
      assert.doesNotMatch(
        text,
        /elect the scheduler's leader/,
        "the scheduler has no leader (per-slot claims)",
      );
    },
  );

  await t.step(
    "the bot's own NetworkPolicy lets it reach PostgreSQL, Vault, DNS, Slack, the Kubernetes API and the log search only",
    () => {
      const [np] = kind("NetworkPolicy", "bisman-ops");
      assert.deepEqual(np.spec.policyTypes, ["Ingress", "Egress"]);
      const ports = np.spec.egress.flatMap((e: Doc) => e.ports.map((p: Doc) => p.port)).sort();
      assert.deepEqual([...new Set(ports)], [443, 5432, 53, 6443, 8200, 9200].sort());
      const logging = np.spec.egress.find((e: Doc) => e.ports.some((p: Doc) => p.port === 9200));
      assert.equal(logging.to[0].namespaceSelector.matchLabels["kubernetes.io/metadata.name"], "logging");
      const selector = deployment.spec.selector.matchLabels;
      assert.deepEqual(np.spec.podSelector.matchLabels, selector);
      for (const svc of kind("Service")) assert.deepEqual(svc.spec.selector, selector);
    },
  );

  await t.step("the Ingress (HTTP mode) exposes /slack/events only", () => {
    const [ing] = kind("Ingress");
    const paths = ing.spec.rules.flatMap((r: Doc) => r.http.paths.map((p: Doc) => p.path));
    assert.deepEqual(paths, ["/slack/events"]);
  });
});

Deno.test("deploy/ Prometheus rules and Alertmanager config pass promtool and amtool and route to the bot", async (t) => {
  await t.step("promtool check rules and the rule unit tests pass", async () => {
    const check = await run("promtool", ["check", "rules", "deploy/prometheus/rules.yaml"]);
    assert.equal(check.code, 0, check.out);
    const tests = await run("promtool", ["test", "rules", "deploy/prometheus/rules_test.yaml"]);
    assert.equal(tests.code, 0, tests.out);
    const config = await run("promtool", ["check", "config", "deploy/prometheus/prometheus.yml"]);
    assert.equal(config.code, 0, config.out);
  });

  await t.step(
    "the seed's alerts keep its thresholds, and every bisman_* series a rule reads is one the bot exports",
    async () => {
      const doc = parseAllDocuments(await Deno.readTextFile(`${deployDir}/prometheus/rules.yaml`))[0].toJS();
      const rules: Doc[] = doc.groups.flatMap((g: Doc) => g.rules);
      const expr = (name: string) => rules.filter((r) => r.alert === name).map((r) => r.expr.trim());
      assert.deepEqual(expr("HighReplicationLag"), ["pg_replication_lag > 30"]);
      // The seed's `pg_stat_activity_count > 100`, summed per server: postgres_exporter's series are per
      // database and state.
      assert.deepEqual(expr("TooManyConnections"), [
        "sum by (instance, target) (pg_stat_activity_count) > 100",
      ]);
      assert.deepEqual(expr("SlowQueries"), ["pg_stat_statements_mean_exec_time_seconds > 1"]);
      for (
        const name of [
          "BismanBackupTooOld",
          "BismanNoProvenRestore",
          "BismanCredentialTooOld",
          "BismanApprovalPastExpiry",
        ]
      ) assert.equal(expr(name).length, 1, `${name} is a rule`);
      // Every bisman_* metric a rule reads is one the bot really exports (a rename breaks this test).
      const code = await Promise.all(
        [
          "jobs/scheduler.ts",
          "slack/receiver.ts",
          "slack/socket_mode.ts",
          "core/metrics.ts",
          "ops/_runbook_metrics.ts",
          "http/runbook_metrics.ts",
        ].map((f) => Deno.readTextFile(`${root}${f}`)),
      );
      // Label names the bot writes instead of Prometheus' own `job` (core/metrics.ts).
      const labels = new Set(["bisman_job", "bisman_instance"]);
      const used = new Set(
        rules.flatMap((r) =>
          [...String(r.expr).matchAll(/\b(bisman_[a-z_]+?)(_bucket)?\b/g)].map((m) => m[1])
        ).filter((m) => !labels.has(m)),
      );
      assert.ok(used.has("bisman_job_last_success_timestamp_seconds"));
      assert.ok(used.has("bisman_job_failures_total"));
      assert.ok(used.has("bisman_backup_newest_timestamp_seconds"));
      for (const m of used) assert.ok(code.some((c) => c.includes(`"${m}"`)), `${m} is exported by the bot`);
      assert.doesNotMatch(JSON.stringify(rules), /exported_job/, "the bot no longer exports a `job` label");
    },
  );

  await t.step("every alert rule has a promtool case in which it fires", async () => {
    const rules = parseAllDocuments(await Deno.readTextFile(`${deployDir}/prometheus/rules.yaml`))[0].toJS();
    const names = new Set<string>(rules.groups.flatMap((g: Doc) => g.rules.map((r: Doc) => r.alert)));
    const tests = parseAllDocuments(await Deno.readTextFile(`${deployDir}/prometheus/rules_test.yaml`))[0]
      .toJS();
    const fired = new Set<string>(
      tests.tests.flatMap((t: Doc) =>
        (t.alert_rule_test ?? []).filter((a: Doc) => a.exp_alerts?.length).map((a: Doc) => a.alertname)
      ),
    );
    const untested = [...names].filter((n) => !fired.has(n) && !UNTESTED_RULES.has(n));
    assert.deepEqual(untested, [], "alerts without a firing case in rules_test.yaml");
  });

  await t.step(
    "amtool check-config passes and every alert of the rules routes to the bot's /alerts",
    async () => {
      const file = "deploy/alertmanager/alertmanager.yml";
      const check = await run("amtool", ["check-config", file]);
      assert.equal(check.code, 0, check.out);
      const doc = parseAllDocuments(await Deno.readTextFile(`${root}${file}`))[0].toJS();
      const bot = doc.receivers.find((r: Doc) => r.name === "bisman-ops").webhook_configs[0];
      assert.match(bot.url, /^http:\/\/bisman-ops\.bisman-ops\.svc:3000\/alerts$/);
      assert.equal(bot.http_config.authorization.type, "Bearer");
      assert.ok(bot.http_config.authorization.credentials_file, "the token is read from a mounted file");
      assert.equal(bot.http_config.authorization.credentials, undefined, "no token in the config");
      const rules = parseAllDocuments(await Deno.readTextFile(`${deployDir}/prometheus/rules.yaml`))[0]
        .toJS();
      const names = new Set<string>(rules.groups.flatMap((g: Doc) => g.rules.map((r: Doc) => r.alert)));
      for (const name of names) {
        const routed = await run("amtool", [
          "config",
          "routes",
          "test",
          `--config.file=${file}`,
          `alertname=${name}`,
        ]);
        assert.equal(routed.code, 0, routed.out);
        assert.match(routed.out, /\bbisman-ops\b/, `${name} reaches the bot`);
      }
    },
  );
});

Deno.test("Dockerfile runs as the Deployment's non-root user, without tests or dev tools, with a /healthz check", async () => {
  const text = await Deno.readTextFile(`${root}Dockerfile`);
  const lines = text.split("\n").map((l) => l.trim());
  const user = lines.filter((l) => l.startsWith("USER ")).at(-1);
  assert.ok(user && !/root|\b0\b/.test(user), `the image ends as a non-root user (${user})`);
  assert.match(text, /HEALTHCHECK[\s\S]*\/healthz/);
  assert.match(text, /--frozen/, "dependencies are installed from the committed lock");
  const ignored = (await Deno.readTextFile(`${root}.dockerignore`)).split("\n").map((l) => l.trim());
  for (const dir of ["tests", "bench", "sandbox", ".git", "node_modules"]) {
    assert.ok(ignored.includes(dir), `${dir} is kept out of the image by .dockerignore`);
  }
  assert.match(text, /deno remove playwright-core ws/, "test and sandbox packages are not installed");
  const cmd = lines.filter((l) => l.startsWith("CMD ")).at(-1)!;
  assert.match(cmd, /--cached-only/, "nothing is fetched at run time");
  assert.match(cmd, /main\.ts/);
  assert.doesNotMatch(cmd, /"-A"|--allow-all/, "the image grants named permissions, not -A");
  // FFI only for glibc's own file (core/malloc_trim.ts), never for any library.
  const ffi = /"--allow-ffi(=[^"]*)?"/.exec(cmd);
  assert.ok(ffi?.[1], "FFI is granted for named files only");
  assert.deepEqual(ffi[1].slice(1).split(",").map((p) => p.replace(/^\/lib\/[a-z0-9_]+-linux-gnu\//, "")), [
    "libc.so.6",
    "libc.so.6",
  ]);
  const docs = await allDocuments();
  const deployment = docs.find((d) => d.doc.kind === "Deployment")!.doc;
  const port = deployment.spec.template.spec.containers[0].ports[0].containerPort;
  assert.match(text, new RegExp(`EXPOSE ${port}\\b`), "the image exposes the Deployment's port");
});

Deno.test("deploy/k8s lets the bot's service account list and get NetworkPolicies in the database's namespace, and nothing else", async () => {
  const docs = (await allDocuments()).filter((d) => d.file === "deploy/k8s/rbac-networkpolicy-reader.yaml");
  const role = docs.find((d) => d.doc.kind === "Role")!.doc;
  const binding = docs.find((d) => d.doc.kind === "RoleBinding")!.doc;
  const [policy] = (await allDocuments()).filter((d) =>
    d.doc.kind === "NetworkPolicy" && d.doc.metadata.name === "postgres-access"
  );
  const sa = (await allDocuments()).find((d) => d.doc.kind === "ServiceAccount")!.doc;
  assert.equal(
    role.metadata.namespace,
    policy.doc.metadata.namespace,
    "in the namespace of the database pods",
  );
  assert.deepEqual(role.rules, [{
    apiGroups: ["networking.k8s.io"],
    resources: ["networkpolicies"],
    verbs: ["get", "list"],
  }]);
  assert.equal(binding.metadata.namespace, role.metadata.namespace);
  assert.deepEqual(binding.roleRef, {
    apiGroup: "rbac.authorization.k8s.io",
    kind: "Role",
    name: role.metadata.name,
  });
  assert.deepEqual(binding.subjects, [{
    kind: "ServiceAccount",
    name: sa.metadata.name,
    namespace: sa.metadata.namespace,
  }]);
  for (const d of await allDocuments()) {
    assert.ok(
      !["ClusterRole", "ClusterRoleBinding"].includes(d.doc.kind),
      `${d.file}: no cluster-wide grant`,
    );
  }
});

import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { startCluster } from "../../standins/cluster.ts";
import { testConfig } from "../support/bot.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { makeTestCertificates } from "../../standins/tls.ts";
import { KubernetesStandIn, type NetworkPolicy, type PolicyRule } from "../../standins/kubernetes.ts";
import { peerAllowed, readNetworkPolicies, requires, selects } from "../../ops/network_policies.ts";
import { evidenceStatus } from "../../ops/_evidence.ts";

const root = new URL("../../", import.meta.url);
// deno-lint-ignore no-explicit-any
const manifests = async (file: string): Promise<any[]> =>
  parseAllDocuments(await Deno.readTextFile(new URL(`deploy/k8s/${file}`, root))).map((d) => d.toJS());

Deno.test("selects() and requires() follow label-selector semantics", () => {
  assert.equal(selects({ matchLabels: { app: "postgres" } }, { app: "postgres", tier: "db" }), true);
  assert.equal(
    selects({ matchExpressions: [{ key: "app", operator: "In", values: ["postgres", "pg"] }] }, {
      app: "pg",
    }),
    true,
  );
  assert.equal(
    selects({ matchExpressions: [{ key: "tier", operator: "DoesNotExist" }] }, { tier: "db" }),
    false,
  );
  assert.equal(selects({}, { app: "x" }), true, "{} selects everything");
  assert.equal(requires({ matchLabels: { name: "bisman-app", env: "prod" } }, { name: "bisman-app" }), true);
  assert.equal(
    requires({ matchExpressions: [{ key: "name", operator: "In", values: ["bisman-app", "other"] }] }, {
      name: "bisman-app",
    }),
    false,
    "In with another value admits more",
  );
  assert.equal(requires({}, { name: "bisman-app" }), false);
  assert.equal(
    peerAllowed({ podSelector: { matchLabels: { app: "bisman-backend" } } }, [{
      pod_labels: { app: "bisman-backend" },
    }]),
    true,
  );
  assert.equal(
    peerAllowed({ namespaceSelector: {}, podSelector: { matchLabels: { app: "bisman-backend" } } }, [{
      pod_labels: { app: "bisman-backend" },
    }]),
    false,
    "the same pods in every namespace are not the database namespace's pods",
  );
});

Deno.test("readNetworkPolicies() judges the database namespace's NetworkPolicies read from the Kubernetes API", async (t) => {
  await using cluster = await startCluster({ name: "netpol" });
  const certs = await makeTestCertificates();
  const kube = KubernetesStandIn.start({
    cert: await Deno.readTextFile(certs.certFile),
    key: await Deno.readTextFile(certs.keyFile),
  });
  // The service account gets exactly what deploy/k8s/rbac-networkpolicy-reader.yaml grants it.
  const [role, binding] = await manifests("rbac-networkpolicy-reader.yaml");
  assert.equal(binding.roleRef.name, role.metadata.name);
  const [subject] = binding.subjects;
  const token = `sa-token-${crypto.randomUUID()}`;
  kube.addServiceAccount(token, {
    namespace: subject.namespace,
    name: subject.name,
    roles: { [role.metadata.namespace]: role.rules as PolicyRule[] },
  });
  kube.addServiceAccount("other-token-0123456789", { namespace: "default", name: "default" });
  const saDir = await Deno.makeTempDir({ prefix: "bisman-sa-" });
  await Deno.writeTextFile(`${saDir}/token`, `${token}\n`);
  await Deno.copyFile(certs.caFile, `${saDir}/ca.crt`);
  // The seed's policy as shipped (it also admits the bot), and the sources config allows.
  const [shipped] = await manifests("networkpolicy-postgres.yaml");
  const ns = shipped.metadata.namespace as string;
  const allowed = [
    { namespace_labels: { "kubernetes.io/metadata.name": "bisman-app" } },
    { pod_labels: { app: "bisman-backend" } },
    {
      namespace_labels: { "kubernetes.io/metadata.name": "bisman-ops" },
      pod_labels: { "app.kubernetes.io/name": "bisman-ops" },
    },
  ];
  const config = testConfig(cluster, (doc) => {
    doc.kubernetes = { api_url: kube.url, token_file: `${saDir}/token`, ca_file: `${saDir}/ca.crt` };
    doc.targets.main.network_policy = {
      namespace: ns,
      pod_labels: { app: "postgres" },
      allowed_from: allowed,
    };
  });
  const deps = await testOpDeps(cluster, { config });
  const noEnv = () => undefined;
  const read = () => readNetworkPolicies("main", deps, noEnv);
  const policy = (name: string, spec: NetworkPolicy["spec"]): NetworkPolicy => ({ metadata: { name }, spec });
  try {
    await t.step("good: the seed's postgres-access admits 5432 from the allowed sources only", async () => {
      kube.apply(ns, shipped);
      const r = await read();
      assert.equal(evidenceStatus(r), "ok", JSON.stringify(r, null, 1));
      assert.equal(r.source, `Kubernetes API ${kube.url}: NetworkPolicies in ${ns}`);
      assert.deepEqual(r.findings.map((f) => `${f.check}: ${f.reason}`), [
        "postgres-access: admits port 5432 of pods app=postgres only from every pod in namespaces kubernetes.io/metadata.name=bisman-app; " +
        `pods app=bisman-backend in ${ns}; pods app.kubernetes.io/name=bisman-ops in namespaces kubernetes.io/metadata.name=bisman-ops`,
      ]);
      assert.deepEqual(kube.calls.at(-1), {
        method: "GET",
        path: `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies`,
        status: 200,
        user: "system:serviceaccount:bisman-ops:bisman-ops",
      });
    });

    await t.step("bad: a second policy that opens the port names the policy and the hole", async () => {
      kube.apply(
        ns,
        policy("debug-access", {
          podSelector: { matchLabels: { app: "postgres" } },
          ingress: [
            { from: [{ ipBlock: { cidr: "0.0.0.0/0" } }], ports: [{ port: 5432 }] },
            { from: [{ namespaceSelector: {} }], ports: [{ protocol: "TCP", port: 5400, endPort: 5500 }] },
            {
              from: [{ namespaceSelector: { matchLabels: { name: "monitoring" } } }],
              ports: [{ port: 9187 }],
            },
          ],
        }),
      );
      const r = await read();
      assert.equal(evidenceStatus(r), "critical");
      assert.deepEqual(
        r.findings.filter((f) => f.check === "debug-access").map((f) => `${f.severity}: ${f.reason}`),
        [
          "critical: debug-access ingress rule 1 admits ipBlock 0.0.0.0/0 on port 5432: not one of the allowed sources",
          "critical: debug-access ingress rule 2 admits every pod in every namespace on port 5432 (and TCP 5400-5500): not one of the allowed sources",
          "warning: debug-access ingress rule 3 admits every pod in namespaces name=monitoring on TCP 9187: not one of the allowed sources",
        ],
      );
      kube.remove(ns, "debug-access");
    });

    await t.step("bad: allowed sources on every port, and a rule without sources, are named", async () => {
      kube.apply(
        ns,
        policy("postgres-access", {
          ...shipped.spec,
          ingress: [{ from: shipped.spec.ingress[0].from }, {}],
        }),
      );
      const r = await read();
      assert.deepEqual(r.findings.map((f) => `${f.severity}: ${f.reason}`).slice(0, 2), [
        "warning: postgres-access ingress rule 1 admits every pod in namespaces kubernetes.io/metadata.name=bisman-app on every port, not only port 5432",
        "warning: postgres-access ingress rule 1 admits pods app=bisman-backend in bisman-db on every port, not only port 5432",
      ]);
      assert.match(
        r.findings.at(-1)!.reason,
        /^postgres-access ingress rule 2 admits every source, in every namespace and outside the cluster, on port 5432 \(and every port\)/,
      );
      assert.equal(r.findings.at(-1)!.severity, "critical");
    });

    await t.step("bad: no policy selecting the database pods leaves them open to every pod", async () => {
      kube.remove(ns, "postgres-access");
      kube.apply(
        ns,
        policy("egress-only", { podSelector: { matchLabels: { app: "postgres" } }, policyTypes: ["Egress"] }),
      );
      const r = await read();
      assert.equal(evidenceStatus(r), "critical");
      assert.equal(
        r.findings[0].reason,
        `no NetworkPolicy in ${ns} selects the database pods (app=postgres) for ingress: every pod in the cluster can reach them on every port (1 other policy)`,
      );
      kube.apply(ns, shipped);
    });

    await t.step(
      "forbidden: a service account without the grant is could-not-check with the API's reason",
      async () => {
        await Deno.writeTextFile(`${saDir}/token`, "other-token-0123456789");
        const r = await read();
        assert.equal(evidenceStatus(r), "could_not_check");
        assert.deepEqual(r.unchecked, [
          "the Kubernetes API answered 403 Forbidden: networkpolicies.networking.k8s.io is forbidden: User " +
          `"system:serviceaccount:default:default" cannot list resource "networkpolicies" in API group "networking.k8s.io" in the namespace "${ns}"`,
        ]);
        await Deno.writeTextFile(`${saDir}/token`, "expired-token-0123456789");
        assert.deepEqual((await read()).unchecked, [
          "the Kubernetes API answered 401 Unauthorized: Unauthorized",
        ]);
        await Deno.remove(`${saDir}/token`);
        assert.match(
          (await read()).unchecked[0],
          new RegExp(`^no service-account token at ${saDir}/token \\(`),
        );
        await Deno.writeTextFile(`${saDir}/token`, token);
      },
    );

    await t.step(
      "unreachable: an API that does not answer is could-not-check; the token appears nowhere",
      async () => {
        await kube.close();
        const r = await read();
        assert.equal(evidenceStatus(r), "could_not_check");
        assert.match(
          r.unchecked[0],
          new RegExp(`^the Kubernetes API ${kube.url.replaceAll(".", "\\.")} does not answer`),
        );
        assert.ok(!JSON.stringify(r).includes(token));
        assert.ok(!deps.logs.join("\n").includes(token));
      },
    );

    await t.step("outside a cluster: not checked, and says why", async () => {
      const outside = {
        ...deps,
        config: { ...deps.config, kubernetes: { ...deps.config.kubernetes, api_url: undefined } },
      };
      const r = await readNetworkPolicies("main", outside, noEnv);
      assert.equal(evidenceStatus(r), "not_checked");
      assert.equal(r.notChecked, "not running in Kubernetes");
      // In a pod the API's address comes from the environment Kubernetes sets.
      const inPod = await readNetworkPolicies(
        "main",
        outside,
        (n) => ({ KUBERNETES_SERVICE_HOST: "127.0.0.1", KUBERNETES_SERVICE_PORT: "1" })[n],
      );
      assert.equal(inPod.source, `Kubernetes API https://127.0.0.1:1: NetworkPolicies in ${ns}`);
      assert.equal(evidenceStatus(inPod), "could_not_check");
    });
  } finally {
    await deps.close();
    await kube.close();
    await Deno.remove(saDir, { recursive: true });
    await Deno.remove(certs.dir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { makeTestCertificates } from "../../standins/tls.ts";
import { KubernetesStandIn } from "../../standins/kubernetes.ts";

Deno.test("KubernetesStandIn refuses what the API server refuses, with its Status objects", async (t) => {
  const certs = await makeTestCertificates();
  const kube = KubernetesStandIn.start({
    cert: await Deno.readTextFile(certs.certFile),
    key: await Deno.readTextFile(certs.keyFile),
  });
  kube.addServiceAccount("reader-token", {
    namespace: "bisman-ops",
    name: "bisman-ops",
    roles: {
      "bisman-db": [{
        apiGroups: ["networking.k8s.io"],
        resources: ["networkpolicies"],
        verbs: ["get", "list"],
      }],
    },
  });
  const client = Deno.createHttpClient({ caCerts: [certs.caPem] });
  const call = (path: string, init: RequestInit = {}, token = "reader-token") =>
    fetch(`${kube.url}${path}`, {
      ...init,
      client,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), accept: "application/json" },
    });
  const base = "/apis/networking.k8s.io/v1/namespaces/bisman-db/networkpolicies";
  try {
    await t.step("no token or an unknown one: 401 Unauthorized", async () => {
      for (const token of ["", "nobody"]) {
        const res = await call(base, {}, token);
        assert.equal(res.status, 401);
        assert.deepEqual(await res.json(), {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Failure",
          message: "Unauthorized",
          reason: "Unauthorized",
          code: 401,
        });
      }
    });

    await t.step("list and get only: creating, deleting, or listing another namespace is 403", async () => {
      let res = await call(base, { method: "POST", body: "{}" });
      assert.equal(res.status, 403);
      const body = await res.json();
      assert.equal(body.reason, "Forbidden");
      assert.equal(
        body.message,
        'networkpolicies.networking.k8s.io is forbidden: User "system:serviceaccount:bisman-ops:bisman-ops" cannot create resource "networkpolicies" in API group "networking.k8s.io" in the namespace "bisman-db"',
      );
      assert.deepEqual(body.details, { group: "networking.k8s.io", kind: "networkpolicies" });
      res = await call(`${base}/postgres-access`, { method: "DELETE" });
      assert.equal(res.status, 403);
      assert.match((await res.json()).message, /"postgres-access" is forbidden: .* cannot delete resource/);
      res = await call("/apis/networking.k8s.io/v1/namespaces/default/networkpolicies");
      assert.equal(res.status, 403);
      await res.body?.cancel();
      res = await call("/apis/networking.k8s.io/v1/networkpolicies");
      assert.match(
        (await res.json()).message,
        /cannot list resource "networkpolicies" .* at the cluster scope/,
      );
    });

    await t.step(
      "an object that does not exist is 404 NotFound; an empty namespace lists nothing",
      async () => {
        let res = await call(`${base}/nope`);
        assert.equal(res.status, 404);
        const body = await res.json();
        assert.equal(body.message, 'networkpolicies.networking.k8s.io "nope" not found');
        assert.deepEqual(body.details, { name: "nope", group: "networking.k8s.io", kind: "networkpolicies" });
        res = await call(base);
        const list = await res.json();
        assert.equal(list.kind, "NetworkPolicyList");
        assert.deepEqual(list.items, []);
      },
    );

    await t.step("a policy the API server would refuse cannot be stored", () => {
      assert.throws(
        () =>
          kube.apply("bisman-db", {
            metadata: { name: "bad" },
            spec: { podSelector: {}, ingress: [{ from: [{}] }] },
          }),
        /spec\.ingress\[0\]\.from\[0\]: Required value: must specify a peer/,
      );
      assert.throws(
        () =>
          kube.apply("bisman-db", {
            metadata: { name: "bad" },
            spec: {
              podSelector: {},
              ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/8" }, podSelector: {} }] }],
            },
          }),
        /may not specify more than 1 peer/,
      );
      assert.throws(
        () =>
          kube.apply("bisman-db", {
            metadata: { name: "bad" },
            spec: { podSelector: {}, ingress: [{ ports: [{ port: "postgresql", endPort: 5433 }] }] },
          }),
        /endPort: Required value: must be a numeric port/,
      );
    });

    await t.step("a stored policy is listed and read back with its metadata", async () => {
      kube.apply("bisman-db", {
        metadata: { name: "deny-all" },
        spec: { podSelector: {}, policyTypes: ["Ingress"] },
      });
      const res = await call(`${base}/deny-all`);
      const p = await res.json();
      assert.equal(p.kind, "NetworkPolicy");
      assert.equal(p.metadata.namespace, "bisman-db");
      assert.match(p.metadata.uid, /^[0-9a-f-]{36}$/);
      assert.deepEqual(p.spec, { podSelector: {}, policyTypes: ["Ingress"] });
    });
  } finally {
    client.close();
    await kube.close();
    await Deno.remove(certs.dir, { recursive: true });
  }
});

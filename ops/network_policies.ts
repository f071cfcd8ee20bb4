/**
 * "Network policies restrict DB access" (runbook section 2), read from Kubernetes: the NetworkPolicies of the
 * database's namespace, judged against the seed's rule that the database pods accept ingress on their port
 * only from the namespaces and pods config names (`network_policy.allowed_from`), and nothing else.
 *
 * Kubernetes semantics (https://kubernetes.io/docs/concepts/services-networking/network-policies/): pods no
 * policy selects for Ingress accept everything; once one does, they accept only the union of the ingress
 * rules of every policy selecting them. A rule without `from` admits every source; without `ports`, every
 * port. A peer with only `podSelector` means pods of the policy's own namespace; with `namespaceSelector`
 * (and an optional `podSelector`), pods in the namespaces it selects; `{}` selects all. A source is judged
 * allowed only when its selector requires at least the labels of an allowed entry (narrower is fine).
 * Only NetworkPolicy objects are read: cluster-wide policies of a CNI (Calico, Cilium) are not.
 *
 * The API is read with `fetch`, not `@kubernetes/client-node`: one GET with the pod's service-account token
 * and CA needs nothing more, where the official client brings 16 direct dependencies (undici, openid-client,
 * ws, tar-fs, socks, ...). Its service account needs only `list` on `networkpolicies` in that namespace
 * (deploy/k8s/rbac-networkpolicy-reader.yaml). The token is read from its file on each check (Kubernetes
 * rotates projected tokens) and never appears in a report.
 *
 * @module
 */

import type { AllowedPeer, NetworkPolicyConfig } from "../core/config_evidence.ts";
import { OpsError } from "../core/errors.ts";
import type { OpDeps } from "./types.ts";
import { type EvidenceFinding, type EvidenceReport, failureText } from "./_evidence.ts";

/** A label selector as the API returns it. */
export interface Selector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/** A peer of an ingress rule. */
export interface Peer {
  podSelector?: Selector;
  namespaceSelector?: Selector;
  ipBlock?: { cidr: string; except?: string[] };
}

/** A port of an ingress rule. */
export interface Port {
  protocol?: string;
  port?: number | string;
  endPort?: number;
}

/** The part of a NetworkPolicy the check reads. */
export interface Policy {
  metadata: { name: string };
  spec: {
    podSelector?: Selector;
    policyTypes?: string[];
    ingress?: { from?: Peer[]; ports?: Port[] }[];
    egress?: unknown[];
  };
}

/** True when `sel` selects an object carrying exactly `labels`. @example selects({ matchLabels: { app: "pg" } }, { app: "pg" }) // true */
export function selects(sel: Selector | undefined, labels: Record<string, string>): boolean {
  if (!sel) return true;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const values = e.values ?? [];
    const ok = e.operator === "In"
      ? has && values.includes(labels[e.key])
      : e.operator === "NotIn"
      ? !has || !values.includes(labels[e.key])
      : e.operator === "Exists"
      ? has
      : e.operator === "DoesNotExist"
      ? !has
      : false;
    if (!ok) return false;
  }
  return true;
}

/** True when every object `sel` selects carries `labels` (the selector is at least as narrow). */
export function requires(sel: Selector | undefined, labels: Record<string, string>): boolean {
  return Object.entries(labels).every(([k, v]) =>
    sel?.matchLabels?.[k] === v ||
    (sel?.matchExpressions ?? []).some((e) =>
      e.key === k && e.operator === "In" && (e.values ?? []).length > 0 &&
      (e.values ?? []).every((x) => x === v)
    )
  );
}

/** A selector in words: `name=bisman-app`, `every` for `{}`. */
export function describeSelector(sel: Selector | undefined): string {
  const parts = [
    ...Object.entries(sel?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`),
    ...(sel?.matchExpressions ?? []).map((e) =>
      `${e.key} ${e.operator}${e.values?.length ? ` (${e.values.join(", ")})` : ""}`
    ),
  ];
  return parts.join(", ");
}

function describePeer(p: Peer, namespace: string): string {
  if (p.ipBlock) {
    return `ipBlock ${p.ipBlock.cidr}${
      p.ipBlock.except?.length ? ` except ${p.ipBlock.except.join(", ")}` : ""
    }`;
  }
  const pods = p.podSelector ? describeSelector(p.podSelector) : "";
  if (p.namespaceSelector) {
    const ns = describeSelector(p.namespaceSelector);
    return `${pods ? `pods ${pods}` : "every pod"} in ${ns ? `namespaces ${ns}` : "every namespace"}`;
  }
  return `${pods ? `pods ${pods}` : "every pod"} in ${namespace}`;
}

/** True when `peer` admits only sources within one of the allowed entries. */
export function peerAllowed(peer: Peer, allowed: AllowedPeer[]): boolean {
  if (peer.ipBlock) return allowed.some((a) => a.ip_block === peer.ipBlock!.cidr);
  return allowed.some((a) => {
    if (a.ip_block) return false;
    if (peer.namespaceSelector) {
      // Pods in other namespaces: only an entry naming namespaces can contain them.
      if (!a.namespace_labels || !requires(peer.namespaceSelector, a.namespace_labels)) return false;
      return !a.pod_labels || (!!peer.podSelector && requires(peer.podSelector, a.pod_labels));
    }
    // Pods of the database's own namespace: an entry with pod labels alone.
    return !a.namespace_labels && !!a.pod_labels && requires(peer.podSelector, a.pod_labels);
  });
}

/** Whether a rule's ports admit the database port, and whether they admit other ports too. */
function portsOf(ports: Port[] | undefined, cfg: NetworkPolicyConfig): { db: boolean; others: string[] } {
  if (!ports?.length) return { db: true, others: ["every port"] };
  let db = false;
  const others: string[] = [];
  for (const p of ports) {
    const proto = p.protocol ?? "TCP";
    const text = p.port === undefined
      ? `every ${proto} port`
      : `${proto} ${p.port}${p.endPort ? `-${p.endPort}` : ""}`;
    let hits = false;
    if (proto === "TCP") {
      if (p.port === undefined) hits = true;
      else if (typeof p.port === "number") {
        hits = p.port === cfg.port || (!!p.endPort && p.port <= cfg.port && cfg.port <= p.endPort);
      } // A named port: the database's when config names it so; without port_name it may be, so it counts.
      else hits = cfg.port_name ? p.port === cfg.port_name : true;
    }
    if (hits) db = true;
    const onlyDb = hits &&
      (p.port === cfg.port || (typeof p.port === "string" && p.port === cfg.port_name)) && !p.endPort;
    if (!onlyDb) others.push(text);
  }
  return { db, others };
}

/** Judges the namespace's NetworkPolicies against the seed's rule. */
export function judgeNetworkPolicies(policies: Policy[], cfg: NetworkPolicyConfig): EvidenceFinding[] {
  const ns = cfg.namespace;
  const pods = describeSelector({ matchLabels: cfg.pod_labels });
  const selecting = policies.filter((p) => {
    const types = p.spec.policyTypes ?? ["Ingress"];
    return types.includes("Ingress") && selects(p.spec.podSelector, cfg.pod_labels);
  });
  if (!selecting.length) {
    return [{
      severity: "critical",
      check: ns,
      reason:
        `no NetworkPolicy in ${ns} selects the database pods (${pods}) for ingress: every pod in the cluster ` +
        `can reach them on every port (${policies.length} other polic${policies.length === 1 ? "y" : "ies"})`,
    }];
  }
  const out: EvidenceFinding[] = [];
  for (const p of selecting) {
    const name = p.metadata.name;
    const rules = p.spec.ingress ?? [];
    const admitted: string[] = [];
    let holes = 0;
    rules.forEach((r, i) => {
      const where = `${name} ingress rule ${i + 1}`;
      const { db, others } = portsOf(r.ports, cfg);
      const port = db
        ? `port ${cfg.port}${others.length ? ` (and ${others.join(", ")})` : ""}`
        : others.join(", ");
      if (!r.from?.length) {
        holes++;
        out.push({
          severity: db ? "critical" : "warning",
          check: name,
          reason: `${where} admits every source, in every namespace and outside the cluster, on ${port}`,
        });
        return;
      }
      for (const peer of r.from) {
        const who = describePeer(peer, ns);
        if (!peerAllowed(peer, cfg.allowed_from)) {
          holes++;
          out.push({
            severity: db ? "critical" : "warning",
            check: name,
            reason: `${where} admits ${who} on ${port}: not one of the allowed sources`,
          });
        } else if (others.length) {
          holes++;
          out.push({
            severity: "warning",
            check: name,
            reason: `${where} admits ${who} on ${others.join(", ")}, not only port ${cfg.port}`,
          });
        } else admitted.push(who);
      }
    });
    if (!holes) {
      out.push({
        severity: "ok",
        check: name,
        reason: rules.length
          ? `admits port ${cfg.port} of pods ${pods} only from ${admitted.join("; ")}`
          : `denies all ingress to pods ${pods}`,
      });
    }
  }
  return out;
}

/** Where the API is, from config or the pod's environment; undefined outside a cluster. */
export function apiUrl(
  deps: Pick<OpDeps, "config">,
  env: (n: string) => string | undefined,
): string | undefined {
  if (deps.config.kubernetes.api_url) return deps.config.kubernetes.api_url.replace(/\/+$/, "");
  const host = env("KUBERNETES_SERVICE_HOST");
  if (!host) return undefined;
  const port = env("KUBERNETES_SERVICE_PORT") ?? "443";
  return `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

async function listPolicies(base: string, ns: string, deps: OpDeps): Promise<Policy[]> {
  const k = deps.config.kubernetes;
  let token: string;
  try {
    token = (await Deno.readTextFile(k.token_file)).trim();
  } catch (err) {
    throw new OpsError(
      "not_configured",
      `no service-account token at ${k.token_file} (${failureText(err)}): the pod needs one mounted ` +
        "(automountServiceAccountToken, or a projected token volume)",
    );
  }
  deps.secrets.add(token);
  let client: Deno.HttpClient | undefined;
  if (base.startsWith("https:")) {
    let ca: string;
    try {
      ca = await Deno.readTextFile(k.ca_file);
    } catch (err) {
      throw new OpsError("not_configured", `no cluster CA at ${k.ca_file}: ${failureText(err)}`);
    }
    client = Deno.createHttpClient({ caCerts: [ca] });
  }
  const url = `${base}/apis/networking.k8s.io/v1/namespaces/${encodeURIComponent(ns)}/networkpolicies`;
  try {
    let res: Response;
    try {
      res = await fetch(url, {
        headers: { authorization: `Bearer ${token}`, accept: "application/json" },
        signal: AbortSignal.timeout(k.timeout_seconds * 1000),
        ...(client ? { client } : {}),
      });
    } catch (err) {
      throw new OpsError("unreachable", `the Kubernetes API ${base} does not answer: ${failureText(err)}`);
    }
    const body = await res.json().catch(() => undefined) as
      | { kind?: string; items?: Policy[]; message?: string; reason?: string }
      | undefined;
    if (res.ok && body?.kind === "NetworkPolicyList" && Array.isArray(body.items)) return body.items;
    throw new OpsError(
      "unreachable",
      `the Kubernetes API answered ${res.status}${body?.reason ? ` ${body.reason}` : ""}${
        body?.message ? `: ${body.message}` : ""
      }`,
    );
  } finally {
    client?.close();
  }
}

/**
 * The NetworkPolicy evidence of `target`. Outside a cluster (no `KUBERNETES_SERVICE_HOST`, no
 * `kubernetes.api_url`) it is "not checked: not running in Kubernetes".
 * @throws {NotConfigured} for an unknown target
 */
export async function readNetworkPolicies(
  target: string,
  deps: OpDeps,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): Promise<EvidenceReport> {
  deps.targets.members(target);
  const base = apiUrl(deps, env);
  const cfg = deps.config.targets[target].network_policy;
  const source = base
    ? `Kubernetes API ${base}: NetworkPolicies in ${cfg?.namespace ?? "the database's namespace"}`
    : "Kubernetes NetworkPolicies";
  if (!base) return { target, source, findings: [], unchecked: [], notChecked: "not running in Kubernetes" };
  if (!cfg) {
    return {
      target,
      source,
      findings: [],
      unchecked: [],
      notConfigured: `not configured: set targets.${target}.network_policy`,
    };
  }
  try {
    const policies = await listPolicies(base, cfg.namespace, deps);
    return { target, source, findings: judgeNetworkPolicies(policies, cfg), unchecked: [] };
  } catch (err) {
    return { target, source, findings: [], unchecked: [deps.secrets.scrub(failureText(err))] };
  }
}

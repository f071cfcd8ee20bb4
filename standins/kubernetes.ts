/**
 * Kubernetes API server stand-in for NetworkPolicies (networking.k8s.io/v1), over HTTPS only, as the real API
 * server is. It refuses what the API server refuses, the way it refuses it:
 *
 * - Authentication: a request without a bearer token, or with one it does not know, is 401 with the `Status`
 *   object `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized",
 *   "reason":"Unauthorized","code":401}`
 *   (https://kubernetes.io/docs/reference/access-authn-authz/authentication/).
 * - Authorization (RBAC): each token is a service account `system:serviceaccount:<ns>:<name>` with Role rules
 *   (apiGroups, resources, verbs, per namespace; ClusterRole rules for every namespace). A request its rules
 *   do not allow is 403 `Forbidden`: `networkpolicies.networking.k8s.io is forbidden: User "<user>" cannot
 *   list resource "networkpolicies" in API group "networking.k8s.io" in the namespace "<ns>"` (for a named
 *   object `networkpolicies.networking.k8s.io "<name>" is forbidden: …`), with `details.group` and
 *   `details.kind` (https://kubernetes.io/docs/reference/access-authn-authz/rbac/,
 *   https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-verbs: GET on a collection is
 *   `list`, on an object `get`; POST `create`, PUT `update`, PATCH `patch`, DELETE `delete`).
 * - A named object that does not exist is 404 `NotFound` "networkpolicies.networking.k8s.io \"<name>\" not
 *   found" with `details.name`; a list in a namespace without objects (or without the namespace) is an empty
 *   list.
 * - A list is `{"kind":"NetworkPolicyList","apiVersion":"networking.k8s.io/v1","metadata":{"resourceVersion"},
 *   "items":[…]}`; a single object carries its `kind` and `apiVersion`
 *   (https://kubernetes.io/docs/reference/kubernetes-api/policy-resources/network-policy-v1/).
 * - Objects given to {@link KubernetesStandIn.apply} are validated as the API server validates NetworkPolicies
 *   (`podSelector` required; `policyTypes` only Ingress/Egress; a port's protocol TCP, UDP or SCTP; `endPort`
 *   only with a numeric `port` not above it; a peer names at least one of podSelector, namespaceSelector,
 *   ipBlock, and ipBlock stands alone; ipBlock.cidr a CIDR), so a test cannot build a policy Kubernetes
 *   would refuse to store (https://kubernetes.io/docs/concepts/services-networking/network-policies/).
 *
 * @module
 */

import { serve, type Served } from "./_serve.ts";

/** A label selector (matchLabels and matchExpressions). */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: {
    key: string;
    operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
    values?: string[];
  }[];
}

/** A NetworkPolicyPeer. */
export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}

/** A NetworkPolicyPort. */
export interface NetworkPolicyPort {
  protocol?: "TCP" | "UDP" | "SCTP";
  port?: number | string;
  endPort?: number;
}

/** A NetworkPolicy as stored: metadata (name, namespace) and spec. */
export interface NetworkPolicy {
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  spec: {
    podSelector: LabelSelector;
    policyTypes?: ("Ingress" | "Egress")[];
    ingress?: { from?: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] }[];
    egress?: { to?: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] }[];
  };
}

/** An RBAC rule (the shape of a Role's `rules`). */
export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** What a token may do: the service account it is, Role rules per namespace, ClusterRole rules everywhere. */
export interface ServiceAccountGrant {
  namespace: string;
  name: string;
  /** Rules bound in one namespace (Role + RoleBinding). */
  roles?: Record<string, PolicyRule[]>;
  /** Rules bound cluster-wide (ClusterRole + ClusterRoleBinding). */
  clusterRules?: PolicyRule[];
}

const GROUP = "networking.k8s.io";
const RESOURCE = "networkpolicies";

function status(code: number, reason: string, message: string, details?: Record<string, unknown>): Response {
  return Response.json({
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  }, { status: code });
}

const VERBS: Record<string, string> = { POST: "create", PUT: "update", PATCH: "patch", DELETE: "delete" };

function allows(rules: PolicyRule[] | undefined, verb: string): boolean {
  return (rules ?? []).some((r) =>
    (r.apiGroups.includes(GROUP) || r.apiGroups.includes("*")) &&
    (r.resources.includes(RESOURCE) || r.resources.includes("*")) &&
    (r.verbs.includes(verb) || r.verbs.includes("*"))
  );
}

const CIDR = /^(\d{1,3}(\.\d{1,3}){3}\/(\d|[12]\d|3[0-2])|[0-9a-fA-F:]+\/(\d{1,2}|1[01]\d|12[0-8]))$/;

/** The API server's validation of a NetworkPolicy; the first problem, or undefined. */
export function validateNetworkPolicy(p: NetworkPolicy): string | undefined {
  if (!p.metadata?.name || !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(p.metadata.name)) {
    return "metadata.name: Invalid value: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'";
  }
  const s = p.spec;
  if (!s || !s.podSelector) return "spec.podSelector: Required value";
  for (const t of s.policyTypes ?? []) {
    if (t !== "Ingress" && t !== "Egress") return `spec.policyTypes: Unsupported value: "${t}"`;
  }
  const peers = (list: NetworkPolicyPeer[] | undefined, where: string): string | undefined => {
    for (const [i, peer] of (list ?? []).entries()) {
      const n = [peer.podSelector, peer.namespaceSelector, peer.ipBlock].filter((x) =>
        x !== undefined
      ).length;
      if (!n) return `${where}[${i}]: Required value: must specify a peer`;
      if (peer.ipBlock && n > 1) return `${where}[${i}]: Forbidden: may not specify more than 1 peer`;
      if (peer.ipBlock && !CIDR.test(peer.ipBlock.cidr)) {
        return `${where}[${i}].ipBlock.cidr: Invalid value: "${peer.ipBlock.cidr}"`;
      }
    }
    return undefined;
  };
  const ports = (list: NetworkPolicyPort[] | undefined, where: string): string | undefined => {
    for (const [i, port] of (list ?? []).entries()) {
      if (port.protocol && !["TCP", "UDP", "SCTP"].includes(port.protocol)) {
        return `${where}[${i}].protocol: Unsupported value: "${port.protocol}"`;
      }
      if (port.endPort !== undefined) {
        if (typeof port.port !== "number") {
          return `${where}[${i}].endPort: Required value: must be a numeric port`;
        }
        if (port.endPort < port.port) {
          return `${where}[${i}].endPort: Invalid value: must be greater than or equal to port`;
        }
      }
    }
    return undefined;
  };
  for (const [i, r] of (s.ingress ?? []).entries()) {
    const e = peers(r.from, `spec.ingress[${i}].from`) ?? ports(r.ports, `spec.ingress[${i}].ports`);
    if (e) return e;
  }
  for (const [i, r] of (s.egress ?? []).entries()) {
    const e = peers(r.to, `spec.egress[${i}].to`) ?? ports(r.ports, `spec.egress[${i}].ports`);
    if (e) return e;
  }
  return undefined;
}

/** One request as seen (tests assert what was asked; the token is never kept). */
export interface KubeCall {
  method: string;
  path: string;
  status: number;
  user?: string;
}

/** The NetworkPolicy API of a Kubernetes API server, on a loopback HTTPS port. */
export class KubernetesStandIn {
  readonly #policies = new Map<string, Map<string, NetworkPolicy & { metadata: Record<string, unknown> }>>();
  readonly #tokens = new Map<string, ServiceAccountGrant>();
  readonly calls: KubeCall[] = [];
  #resourceVersion = 1000;
  #served?: Served;

  private constructor() {}

  /** Starts it with the server certificate and key (PEM) a test CA signed for 127.0.0.1. */
  static start(tls: { cert: string; key: string }): KubernetesStandIn {
    const self = new KubernetesStandIn();
    self.#served = serve((req) => self.handle(req), { tls });
    return self;
  }

  /** `https://127.0.0.1:<port>` */
  get url(): string {
    return this.#served!.url;
  }

  /** Makes `token` a service account's token with the given grants. */
  addServiceAccount(token: string, grant: ServiceAccountGrant): void {
    this.#tokens.set(token, grant);
  }

  /** Stores (creates or replaces) a policy after the API server's validation. @throws when it would refuse it */
  apply(namespace: string, policy: NetworkPolicy): void {
    const problem = validateNetworkPolicy(policy);
    if (problem) {
      throw new Error(`NetworkPolicy.networking.k8s.io "${policy.metadata?.name}" is invalid: ${problem}`);
    }
    const ns = this.#policies.get(namespace) ?? new Map();
    const previous = ns.get(policy.metadata.name);
    ns.set(policy.metadata.name, {
      ...structuredClone(policy),
      metadata: {
        ...structuredClone(policy.metadata),
        namespace,
        uid: (previous?.metadata.uid as string | undefined) ?? crypto.randomUUID(),
        resourceVersion: String(++this.#resourceVersion),
        generation: Number(previous?.metadata.generation ?? 0) + 1,
        creationTimestamp: (previous?.metadata.creationTimestamp as string | undefined) ??
          new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      },
    });
    this.#policies.set(namespace, ns);
  }

  /** Deletes a policy. */
  remove(namespace: string, name: string): void {
    this.#policies.get(namespace)?.delete(name);
    this.#resourceVersion++;
  }

  close(): Promise<void> {
    return this.#served!.close();
  }

  private handle(req: Request): Response {
    const url = new URL(req.url);
    const call: KubeCall = { method: req.method, path: url.pathname, status: 0 };
    const res = this.respond(req, url, call);
    call.status = res.status;
    this.calls.push(call);
    return res;
  }

  private respond(req: Request, url: URL, call: KubeCall): Response {
    const auth = req.headers.get("authorization") ?? "";
    const token = /^Bearer (.+)$/.exec(auth)?.[1];
    const grant = token ? this.#tokens.get(token) : undefined;
    if (!grant) return status(401, "Unauthorized", "Unauthorized");
    const user = `system:serviceaccount:${grant.namespace}:${grant.name}`;
    call.user = user;
    const m =
      /^\/apis\/networking\.k8s\.io\/v1\/(?:namespaces\/([a-z0-9-]+)\/)?networkpolicies(?:\/([^/]+))?$/
        .exec(url.pathname);
    if (!m) return status(404, "NotFound", "the server could not find the requested resource");
    const [, namespace, name] = m;
    const verb = req.method === "GET"
      ? (name ? "get" : "list")
      : VERBS[req.method] ?? req.method.toLowerCase();
    const permitted = allows(grant.clusterRules, verb) ||
      (namespace !== undefined && allows(grant.roles?.[namespace], verb));
    if (!permitted) {
      const what = name ? `${RESOURCE}.${GROUP} "${name}"` : `${RESOURCE}.${GROUP}`;
      const where = namespace ? ` in the namespace "${namespace}"` : " at the cluster scope";
      return status(
        403,
        "Forbidden",
        `${what} is forbidden: User "${user}" cannot ${verb} resource "${RESOURCE}" in API group "${GROUP}"${where}`,
        { ...(name ? { name } : {}), group: GROUP, kind: RESOURCE },
      );
    }
    if (req.method !== "GET") {
      return status(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
      );
    }
    const strip = (p: NetworkPolicy) => ({ metadata: p.metadata, spec: p.spec });
    if (name) {
      const p = this.#policies.get(namespace!)?.get(name);
      if (!p) {
        return status(404, "NotFound", `${RESOURCE}.${GROUP} "${name}" not found`, {
          name,
          group: GROUP,
          kind: RESOURCE,
        });
      }
      return Response.json({ kind: "NetworkPolicy", apiVersion: `${GROUP}/v1`, ...strip(p) });
    }
    const items = namespace !== undefined
      ? [...(this.#policies.get(namespace)?.values() ?? [])]
      : [...this.#policies.values()].flatMap((ns) => [...ns.values()]);
    return Response.json({
      kind: "NetworkPolicyList",
      apiVersion: `${GROUP}/v1`,
      metadata: { resourceVersion: String(this.#resourceVersion) },
      items: items.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)).map(strip),
    });
  }
}

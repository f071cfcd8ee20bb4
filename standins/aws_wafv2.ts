/**
 * AWS WAFV2 stand-in at the HTTP boundary: the AWS JSON 1.1 protocol that `@aws-sdk/client-wafv2` speaks,
 * for `ListWebACLs` and `GetWebACL`, for one region, over web ACLs a test (or the sandbox) stores. The SDK is
 * pointed at it with `endpoint`. It refuses what AWS refuses, the way AWS refuses it:
 *
 * - Protocol (https://smithy.io/2.0/aws/protocols/aws-json-1_1-protocol.html): `POST /`, `Content-Type:
 *   application/x-amz-json-1.1`, the operation in `X-Amz-Target: AWSWAF_20190729.<Operation>`; answers in the
 *   same content type; errors are HTTP 4xx/5xx with `{"__type": "<shape>", "message": "…"}`. Blob members such
 *   as a ByteMatchStatement's `SearchString` travel base64-encoded ("If you're using the WAF API: Specify a
 *   base64-encoded version of the value",
 *   https://docs.aws.amazon.com/waf/latest/APIReference/API_ByteMatchStatement.html).
 * - The request checks of AWS's JSON front end, in its order and words (the errors AWS answers unsigned and
 *   badly signed JSON requests with, as recorded by mhart/dynalite against the live service; common errors:
 *   https://docs.aws.amazon.com/waf/latest/APIReference/CommonErrors.html): a wrong content type is 404
 *   `UnknownOperationException`; an unknown target 400 `UnknownOperationException`; no `Authorization` header
 *   (or not `AWS4-…`) 400 `MissingAuthenticationTokenException` "Request is missing Authentication Token";
 *   one without Credential, Signature or SignedHeaders, or without X-Amz-Date, 400
 *   `IncompleteSignatureException`; a credential scope for another region or service, or `host` not signed,
 *   400 `InvalidSignatureException`; an access key it does not know (or a missing/wrong session token) 400
 *   `UnrecognizedClientException` "The security token included in the request is invalid."; a signature that
 *   does not verify (SigV4, https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html)
 *   400 `InvalidSignatureException` "The request signature we calculated does not match …"; a request dated
 *   more than 15 minutes off 400 `InvalidSignatureException` "Signature expired: …".
 * - IAM: each access key carries the `wafv2:` actions its policy allows; another is 400
 *   `AccessDeniedException` "User: <arn> is not authorized to perform: wafv2:<Action> on resource: <arn>
 *   because no identity-based policy allows the wafv2:<Action> action".
 * - Operations (https://docs.aws.amazon.com/waf/latest/APIReference/API_ListWebACLs.html,
 *   https://docs.aws.amazon.com/waf/latest/APIReference/API_GetWebACL.html): `Scope` is REGIONAL or
 *   CLOUDFRONT, and CLOUDFRONT only in us-east-1, else 400 `WAFInvalidParameterException` "Error reason: The
 *   scope is not valid., field: SCOPE_VALUE, parameter: <value>"; `Limit` 1–100; `GetWebACL` needs Name,
 *   Scope and Id (or ARN), an Id in WAF's UUID form; an ACL that does not exist, or whose name does not go
 *   with its Id, is 400 `WAFNonexistentItemException` "AWS WAF couldn’t perform the operation because your
 *   resource doesn’t exist.".
 *
 * @module
 */

import { createHash, createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { serve, type Served } from "./_serve.ts";

const TARGET_PREFIX = "AWSWAF_20190729";
const CONTENT_TYPE = "application/x-amz-json-1.1";

/** An access key the stand-in accepts, and what its IAM policy allows. */
export interface AwsKey {
  secretAccessKey: string;
  sessionToken?: string;
  /** e.g. `arn:aws:iam::123456789012:user/bisman-ops` */
  arn: string;
  /** `wafv2:` actions allowed, e.g. ["wafv2:ListWebACLs", "wafv2:GetWebACL"]. */
  allow: string[];
}

/** A web ACL as WAFV2's JSON carries it (blobs base64-encoded); Name, Id and ARN are filled in when stored. */
export type WebAclWire = Record<string, unknown> & { Name: string; Rules?: Record<string, unknown>[] };

/** A string as the base64 a blob member travels as (a ByteMatchStatement's SearchString). */
export function blob(text: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

/** One request as seen (for tests; never the credentials). */
export interface WafCall {
  operation: string;
  status: number;
  errorType?: string;
  accessKeyId?: string;
}

function awsError(
  status: number,
  type: string,
  message?: string,
  extra: Record<string, unknown> = {},
): Response {
  return new Response(
    JSON.stringify({ __type: type, ...(message !== undefined ? { message } : {}), ...extra }),
    {
      status,
      headers: { "content-type": CONTENT_TYPE, "x-amzn-requestid": randomUUID() },
    },
  );
}

const coral = (t: string) => `com.amazon.coral.service#${t}`;

function invalidParameter(field: string, parameter: unknown, reason: string): Response {
  return awsError(
    400,
    "WAFInvalidParameterException",
    `Error reason: ${reason}, field: ${field}, parameter: ${parameter}`,
    { Field: field, Parameter: String(parameter), Reason: reason },
  );
}

const sha256 = (data: string | Uint8Array) => createHash("sha256").update(data).digest("hex");
const hmac = (key: string | Buffer, data: string) => createHmac("sha256", key).update(data).digest();

/** AWS's URI encoding of one path segment or query component. */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

const ID = /^[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}$/;

/** The WAFV2 API of one AWS region, on a loopback port. */
export class AwsWafV2StandIn {
  readonly #acls = new Map<string, WebAclWire & { Id: string; ARN: string; Scope: string }>();
  readonly #keys = new Map<string, AwsKey>();
  readonly calls: WafCall[] = [];
  #served?: Served;

  private constructor(readonly region: string, readonly accountId: string) {}

  /** Starts the stand-in for `region`. */
  static start(opts: { region: string; accountId?: string }): AwsWafV2StandIn {
    const self = new AwsWafV2StandIn(opts.region, opts.accountId ?? "123456789012");
    self.#served = serve((req) => self.handle(req));
    return self;
  }

  /** `http://127.0.0.1:<port>`: the SDK's `endpoint`. */
  get url(): string {
    return this.#served!.url;
  }

  /** Accepts requests signed with this key. */
  addKey(accessKeyId: string, key: AwsKey): void {
    this.#keys.set(accessKeyId, key);
  }

  /** Stores (creates or replaces, by name and scope) a web ACL; returns its Id. */
  putWebAcl(scope: "REGIONAL" | "CLOUDFRONT", acl: WebAclWire): string {
    const existing = [...this.#acls.values()].find((a) => a.Name === acl.Name && a.Scope === scope);
    const Id = existing?.Id ?? randomUUID();
    const where = scope === "CLOUDFRONT" ? "global" : "regional";
    const ARN = `arn:aws:wafv2:${this.region}:${this.accountId}:${where}/webacl/${acl.Name}/${Id}`;
    this.#acls.set(Id, {
      DefaultAction: { Allow: {} },
      Rules: [],
      ...structuredClone(acl),
      Id,
      ARN,
      Scope: scope,
    });
    return Id;
  }

  /** Deletes a web ACL by name. */
  deleteWebAcl(name: string): void {
    for (const [id, a] of this.#acls) if (a.Name === name) this.#acls.delete(id);
  }

  close(): Promise<void> {
    return this.#served!.close();
  }

  private async handle(req: Request): Promise<Response> {
    const call: WafCall = { operation: "", status: 0 };
    const res = await this.respond(req, call);
    call.status = res.status;
    if (res.status >= 400) {
      call.errorType = String((await res.clone().json().catch(() => ({})))?.__type ?? "");
    }
    this.calls.push(call);
    return res;
  }

  /** Checks the SigV4 signature; a Response when it fails, else the key's id. */
  private authenticate(req: Request, body: Uint8Array): Response | string {
    const auth = req.headers.get("authorization");
    if (!auth || !auth.trim().startsWith("AWS4-")) {
      return awsError(
        400,
        coral("MissingAuthenticationTokenException"),
        "Request is missing Authentication Token",
      );
    }
    const params = Object.fromEntries(
      auth.split(/,| /).slice(1).filter(Boolean).map((x) => {
        const i = x.indexOf("=");
        return [x.slice(0, i).trim(), x.slice(i + 1).trim()];
      }),
    );
    let msg = "";
    for (const p of ["Credential", "Signature", "SignedHeaders"]) {
      if (!params[p]) msg += `Authorization header requires '${p}' parameter. `;
    }
    const amzDate = req.headers.get("x-amz-date");
    if (!amzDate && !req.headers.get("date")) {
      msg += "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ";
    }
    if (msg) return awsError(400, coral("IncompleteSignatureException"), `${msg}Authorization=${auth}`);
    const algorithm = auth.trim().split(" ")[0];
    if (algorithm !== "AWS4-HMAC-SHA256") {
      return awsError(
        400,
        coral("IncompleteSignatureException"),
        `Unsupported AWS 'algorithm': '${algorithm}' (only AWS4-HMAC-SHA256 for now). `,
      );
    }
    const scope = params.Credential.split("/");
    if (scope.length !== 5) {
      return awsError(
        400,
        coral("IncompleteSignatureException"),
        `Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '${params.Credential}'`,
      );
    }
    const [keyId, day, region, service, term] = scope;
    const date = amzDate ?? "";
    let scopeMsg = "";
    if (region !== this.region) {
      scopeMsg += `Credential should be scoped to a valid region, not '${region}'. `;
    }
    if (service !== "wafv2") scopeMsg += "Credential should be scoped to correct service: 'wafv2'. ";
    if (term !== "aws4_request") {
      scopeMsg += `Credential should be scoped with a valid terminator: 'aws4_request', not '${term}'. `;
    }
    if (day !== date.slice(0, 8)) {
      scopeMsg +=
        `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${day}' != '${
          date.slice(0, 8)
        }', from '${date}'.`;
    }
    if (scopeMsg) return awsError(400, coral("InvalidSignatureException"), scopeMsg.trim());
    const signed = params.SignedHeaders.split(";");
    if (!signed.includes("host")) {
      return awsError(
        400,
        coral("InvalidSignatureException"),
        "'Host' must be a 'SignedHeader' in the AWS Authorization.",
      );
    }
    const at = Date.UTC(
      +date.slice(0, 4),
      +date.slice(4, 6) - 1,
      +date.slice(6, 8),
      +date.slice(9, 11),
      +date.slice(11, 13),
      +date.slice(13, 15),
    );
    if (!/^\d{8}T\d{6}Z$/.test(date) || Math.abs(Date.now() - at) > 15 * 60_000) {
      return awsError(
        400,
        coral("InvalidSignatureException"),
        `Signature expired: ${date} is now earlier than ${
          new Date(Date.now() - 15 * 60_000).toISOString().replace(/[-:]|\.\d+/g, "")
        } (${new Date().toISOString().replace(/[-:]|\.\d+/g, "")} - 15 min.)`,
      );
    }
    const key = this.#keys.get(keyId);
    if (!key || (key.sessionToken ?? null) !== req.headers.get("x-amz-security-token")) {
      return awsError(
        400,
        coral("UnrecognizedClientException"),
        "The security token included in the request is invalid.",
      );
    }
    const url = new URL(req.url);
    const canonicalQuery = [...url.searchParams].map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`).sort()
      .join("&");
    const canonicalHeaders = signed.map((h) =>
      `${h}:${(req.headers.get(h) ?? "").trim().replace(/\s+/g, " ")}\n`
    ).join("");
    const payloadHash = req.headers.get("x-amz-content-sha256") ?? sha256(body);
    const canonicalRequest = [
      req.method,
      url.pathname.split("/").map(uriEncode).join("/") || "/",
      canonicalQuery,
      canonicalHeaders,
      params.SignedHeaders,
      payloadHash,
    ].join("\n");
    const stringToSign = ["AWS4-HMAC-SHA256", date, scope.slice(1).join("/"), sha256(canonicalRequest)].join(
      "\n",
    );
    const kSigning = hmac(
      hmac(hmac(hmac(`AWS4${key.secretAccessKey}`, day), region), service),
      "aws4_request",
    );
    const expected = createHmac("sha256", kSigning).update(stringToSign).digest();
    const given = Buffer.from(params.Signature, "hex");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return awsError(
        400,
        coral("InvalidSignatureException"),
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret " +
          "Access Key and signing method. Consult the service documentation for details.",
      );
    }
    return keyId;
  }

  private async respond(req: Request, call: WafCall): Promise<Response> {
    const contentType = (req.headers.get("content-type") ?? "").split(";")[0].trim();
    if (req.method !== "POST" || contentType !== CONTENT_TYPE) {
      return new Response("<UnknownOperationException/>\n", { status: 404 });
    }
    const body = new Uint8Array(await req.arrayBuffer());
    const [prefix, operation, ...rest] = (req.headers.get("x-amz-target") ?? "").split(".");
    call.operation = operation ?? "";
    if (prefix !== TARGET_PREFIX || rest.length || !["ListWebACLs", "GetWebACL"].includes(operation)) {
      return awsError(400, coral("UnknownOperationException"));
    }
    const keyId = this.authenticate(req, body);
    if (keyId instanceof Response) return keyId;
    call.accessKeyId = keyId;
    let input: Record<string, unknown>;
    try {
      input = body.length ? JSON.parse(new TextDecoder().decode(body)) : {};
    } catch {
      return awsError(400, coral("SerializationException"));
    }
    const key = this.#keys.get(keyId)!;
    const action = `wafv2:${operation}`;
    const resource = `arn:aws:wafv2:${this.region}:${this.accountId}:*`;
    if (!key.allow.includes(action) && !key.allow.includes("wafv2:*")) {
      return awsError(
        400,
        "AccessDeniedException",
        `User: ${key.arn} is not authorized to perform: ${action} on resource: ${resource} because no ` +
          `identity-based policy allows the ${action} action`,
      );
    }
    const scope = input.Scope;
    const scopeOk = (s: unknown): Response | undefined => {
      if (s !== "REGIONAL" && s !== "CLOUDFRONT") {
        return invalidParameter("SCOPE_VALUE", s, "The scope is not valid.");
      }
      if (s === "CLOUDFRONT" && this.region !== "us-east-1") {
        return invalidParameter("SCOPE_VALUE", s, "The scope is not valid.");
      }
      return undefined;
    };
    const ok = (out: unknown) =>
      new Response(JSON.stringify(out), {
        headers: { "content-type": CONTENT_TYPE, "x-amzn-requestid": randomUUID() },
      });
    if (operation === "ListWebACLs") {
      const bad = scopeOk(scope);
      if (bad) return bad;
      const limit = input.Limit === undefined ? 100 : Number(input.Limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
        return invalidParameter("LIMIT", input.Limit, "The value is out of range.");
      }
      const all = [...this.#acls.values()].filter((a) => a.Scope === scope).sort((a, b) =>
        a.Name.localeCompare(b.Name)
      );
      const start = input.NextMarker ? all.findIndex((a) => a.Id === input.NextMarker) : 0;
      if (start < 0) return invalidParameter("NEXT_MARKER", input.NextMarker, "The marker is not valid.");
      const page = all.slice(start, start + limit);
      const next = all[start + limit];
      return ok({
        ...(next ? { NextMarker: next.Id } : {}),
        WebACLs: page.map((a) => ({
          Name: a.Name,
          Id: a.Id,
          Description: a.Description ?? "",
          LockToken: randomUUID(),
          ARN: a.ARN,
        })),
      });
    }
    // GetWebACL: Name + Scope + Id, or ARN.
    let acl: ReturnType<typeof this.findAcl>;
    if (input.ARN !== undefined) {
      acl = [...this.#acls.values()].find((a) => a.ARN === input.ARN);
    } else {
      const bad = scopeOk(scope);
      if (bad) return bad;
      if (typeof input.Name !== "string" || !/^[\w-]{1,128}$/.test(input.Name)) {
        return invalidParameter("NAME", input.Name, "The name is not valid.");
      }
      if (typeof input.Id !== "string" || !ID.test(input.Id)) {
        return invalidParameter("RESOURCE_ID", input.Id, "The ID is not valid.");
      }
      acl = this.findAcl(input.Id, input.Name, String(scope));
    }
    if (!acl) {
      return awsError(
        400,
        "WAFNonexistentItemException",
        "AWS WAF couldn’t perform the operation because your resource doesn’t exist.",
      );
    }
    const { Scope: _scope, ...webAcl } = acl;
    return ok({ WebACL: webAcl, LockToken: randomUUID() });
  }

  private findAcl(id: string, name: string, scope: string) {
    const a = this.#acls.get(id);
    return a && a.Name === name && a.Scope === scope ? a : undefined;
  }
}

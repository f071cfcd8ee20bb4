import assert from "node:assert/strict";
import { SearchStandIn } from "../../standins/search.ts";

const basic = (u: string, p: string) => `Basic ${btoa(`${u}:${p}`)}`;

Deno.test("SearchStandIn refuses what Elasticsearch refuses, in Elasticsearch's error shape", async (t) => {
  const es = SearchStandIn.start({
    users: { reader: "right-pw", outsider: "other-pw" },
    apiKeys: { "aWQ6a2V5": "reader" },
    readable: { "postgres-*": ["reader"] },
  });
  es.add("postgres-logs", [
    { "@timestamp": new Date().toISOString(), hostname: "db1" },
    { "@timestamp": new Date(Date.now() - 2 * 3600_000).toISOString(), hostname: "db1" },
  ]);
  const count = (path: string, init: RequestInit = {}) =>
    fetch(`${es.url}${path}`, {
      method: "POST",
      ...init,
      headers: { "content-type": "application/json", ...(init.headers as Record<string, string> ?? {}) },
    });
  try {
    await t.step("no credentials: 401 security_exception with WWW-Authenticate", async () => {
      const res = await count("/postgres-logs/_count");
      assert.equal(res.status, 401);
      assert.match(res.headers.get("www-authenticate") ?? "", /Basic realm="security"/);
      const body = await res.json();
      assert.equal(body.status, 401);
      assert.equal(body.error.type, "security_exception");
      assert.equal(
        body.error.reason,
        "missing authentication credentials for REST request [/postgres-logs/_count]",
      );
      assert.equal(body.error.root_cause[0].type, "security_exception");
    });

    await t.step("a wrong password: 401 naming the user", async () => {
      const res = await count("/postgres-logs/_count", {
        headers: { authorization: basic("reader", "nope") },
      });
      assert.equal(res.status, 401);
      assert.match((await res.json()).error.reason, /unable to authenticate user \[reader\]/);
    });

    await t.step(
      "an unknown index: 404 index_not_found_exception; a wildcard matching nothing counts 0",
      async () => {
        const auth = { authorization: basic("reader", "right-pw") };
        const res = await count("/postgres-nope/_count", { headers: auth });
        assert.equal(res.status, 404);
        assert.deepEqual((await res.json()).error.root_cause[0], {
          type: "index_not_found_exception",
          reason: "no such index [postgres-nope]",
          "resource.type": "index_or_alias",
          "resource.id": "postgres-nope",
          index_uuid: "_na_",
          index: "postgres-nope",
        });
        const wild = await count("/postgres-nope-*/_count", { headers: auth });
        assert.deepEqual(await wild.json(), {
          count: 0,
          _shards: { total: 0, successful: 0, skipped: 0, failed: 0 },
        });
      },
    );

    await t.step("a user without read on the index: 403", async () => {
      const res = await count("/postgres-logs/_count", {
        headers: { authorization: basic("outsider", "other-pw") },
      });
      assert.equal(res.status, 403);
      assert.match(
        (await res.json()).error.reason,
        /action \[indices:data\/read\/search\] is unauthorized for user \[outsider\]/,
      );
    });

    await t.step("bad bodies: unknown query 400 parsing_exception, non-JSON content type 406", async () => {
      const auth = { authorization: "ApiKey aWQ6a2V5" };
      let res = await count("/postgres-logs/_count", {
        headers: auth,
        body: JSON.stringify({ query: { fuzzy_thing: {} } }),
      });
      assert.equal(res.status, 400);
      assert.equal((await res.json()).error.reason, "unknown query [fuzzy_thing]");
      res = await count("/postgres-logs/_count", {
        headers: { ...auth, "content-type": "text/plain" },
        body: JSON.stringify({ query: { match_all: {} } }),
      });
      assert.equal(res.status, 406);
      assert.deepEqual(await res.json(), {
        error: "Content-Type header [text/plain] is not supported",
        status: 406,
      });
    });

    await t.step("a range with date math and a match_phrase count the lines that match", async () => {
      const res = await count("/postgres-logs/_count", {
        headers: { authorization: basic("reader", "right-pw") },
        body: JSON.stringify({
          query: {
            bool: {
              filter: [{ range: { "@timestamp": { gte: "now-15m" } } }, {
                match_phrase: { hostname: "db1" },
              }],
            },
          },
        }),
      });
      assert.deepEqual(await res.json(), {
        count: 1,
        _shards: { total: 1, successful: 1, skipped: 0, failed: 0 },
      });
    });
  } finally {
    await es.close();
  }
});

import assert from "node:assert/strict";
import { GetWebACLCommand, ListWebACLsCommand, WAFV2Client } from "@aws-sdk/client-wafv2";
import { AwsWafV2StandIn, blob } from "../../standins/aws_wafv2.ts";

Deno.test("AwsWafV2StandIn speaks WAFV2's JSON protocol and refuses what AWS refuses, as AWS refuses it", async (t) => {
  const aws = AwsWafV2StandIn.start({ region: "eu-central-1" });
  aws.addKey("AKIASTANDINTEST00001", {
    secretAccessKey: "s3cr3t/with+chars",
    arn: "arn:aws:iam::123456789012:user/t",
    allow: ["wafv2:*"],
  });
  const id = aws.putWebAcl("REGIONAL", {
    Name: "acl",
    Rules: [{
      Name: "r",
      Priority: 0,
      Action: { Block: {} },
      Statement: {
        ByteMatchStatement: {
          FieldToMatch: { UriPath: {} },
          PositionalConstraint: "STARTS_WITH",
          SearchString: blob("/api/auth"),
          TextTransformations: [{ Priority: 0, Type: "NONE" }],
        },
      },
      VisibilityConfig: { SampledRequestsEnabled: false, CloudWatchMetricsEnabled: false, MetricName: "r" },
    }],
  });
  const sdk = (secretAccessKey = "s3cr3t/with+chars", region = "eu-central-1") =>
    new WAFV2Client({
      region,
      endpoint: aws.url,
      credentials: { accessKeyId: "AKIASTANDINTEST00001", secretAccessKey },
      maxAttempts: 1,
    });
  const raw = (headers: Record<string, string>, body = '{"Scope":"REGIONAL"}') =>
    fetch(aws.url, {
      method: "POST",
      headers: {
        "content-type": "application/x-amz-json-1.1",
        "x-amz-target": "AWSWAF_20190729.ListWebACLs",
        ...headers,
      },
      body,
    });
  try {
    await t.step(
      "the SDK's signed requests are answered; blobs travel base64 and come back as bytes",
      async () => {
        const c = sdk();
        const list = await c.send(new ListWebACLsCommand({ Scope: "REGIONAL" }));
        assert.deepEqual(list.WebACLs?.map((a) => [a.Name, a.Id]), [["acl", id]]);
        const got = await c.send(new GetWebACLCommand({ Scope: "REGIONAL", Name: "acl", Id: id }));
        const bm = got.WebACL?.Rules?.[0].Statement?.ByteMatchStatement;
        assert.equal(new TextDecoder().decode(bm?.SearchString), "/api/auth");
        c.destroy();
      },
    );

    await t.step("no Authorization header: 400 MissingAuthenticationTokenException", async () => {
      const res = await raw({});
      assert.equal(res.status, 400);
      assert.equal(res.headers.get("content-type"), "application/x-amz-json-1.1");
      assert.deepEqual(await res.json(), {
        __type: "com.amazon.coral.service#MissingAuthenticationTokenException",
        message: "Request is missing Authentication Token",
      });
    });

    await t.step(
      "an incomplete or mis-scoped signature, or an unknown key, is refused before any work",
      async () => {
        let res = await raw({ authorization: "AWS4-HMAC-SHA256 Credential=AKIA/x" });
        let body = await res.json();
        assert.equal(body.__type, "com.amazon.coral.service#IncompleteSignatureException");
        assert.match(
          body.message,
          /requires 'Signature' parameter\. .*requires 'SignedHeaders' parameter\. .*'X-Amz-Date'/,
        );
        const date = new Date().toISOString().replace(/[-:]|\.\d+/g, "");
        const sig = (keyId: string, region: string) =>
          `AWS4-HMAC-SHA256 Credential=${keyId}/${date.slice(0, 8)}/${region}/wafv2/aws4_request, ` +
          `SignedHeaders=host;x-amz-date, Signature=${"0".repeat(64)}`;
        res = await raw({ authorization: sig("AKIASTANDINTEST00001", "us-west-2"), "x-amz-date": date });
        body = await res.json();
        assert.equal(body.__type, "com.amazon.coral.service#InvalidSignatureException");
        assert.equal(body.message, "Credential should be scoped to a valid region, not 'us-west-2'.");
        res = await raw({ authorization: sig("AKIAUNKNOWN000000001", "eu-central-1"), "x-amz-date": date });
        assert.deepEqual(await res.json(), {
          __type: "com.amazon.coral.service#UnrecognizedClientException",
          message: "The security token included in the request is invalid.",
        });
        await assert.rejects(
          () => sdk("wrong").send(new ListWebACLsCommand({ Scope: "REGIONAL" })),
          (e: Error) => e.name === "InvalidSignatureException",
        );
      },
    );

    await t.step("the wrong content type or target is an unknown operation", async () => {
      let res = await raw({ "content-type": "application/json" });
      assert.equal(res.status, 404);
      await res.body?.cancel();
      res = await raw({ "x-amz-target": "AWSWAF_20190729.DeleteWebACL" });
      assert.equal(res.status, 400);
      assert.equal((await res.json()).__type, "com.amazon.coral.service#UnknownOperationException");
    });

    await t.step(
      "WAFV2's own refusals: a CLOUDFRONT scope outside us-east-1, a malformed Id, an ACL that is not there",
      async () => {
        const c = sdk();
        await assert.rejects(
          () => c.send(new ListWebACLsCommand({ Scope: "CLOUDFRONT" })),
          (e: Error) =>
            e.name === "WAFInvalidParameterException" &&
            e.message === "Error reason: The scope is not valid., field: SCOPE_VALUE, parameter: CLOUDFRONT",
        );
        await assert.rejects(
          () => c.send(new GetWebACLCommand({ Scope: "REGIONAL", Name: "acl", Id: "not-an-id" })),
          (e: Error) => e.name === "WAFInvalidParameterException" && /field: RESOURCE_ID/.test(e.message),
        );
        await assert.rejects(
          () => c.send(new GetWebACLCommand({ Scope: "REGIONAL", Name: "other", Id: id })),
          (e: Error) => e.name === "WAFNonexistentItemException",
        );
        c.destroy();
      },
    );
  } finally {
    await aws.close();
  }
});

import assert from "node:assert/strict";
import postgres from "postgres";
import { generatePassword, SCRAM_VERIFIER_RE, scramVerifier, verifierLiteral } from "../../ops/_scram.ts";
import { startCluster } from "../../standins/cluster.ts";

// Made by PostgreSQL 15 itself: `SET password_encryption = 'scram-sha-256'; CREATE ROLE vec LOGIN PASSWORD
// 'pencil-Sharpener 42!'`, then `SELECT rolpassword FROM pg_authid WHERE rolname = 'vec'`.
const PG_VECTOR = {
  password: "pencil-Sharpener 42!",
  verifier:
    "SCRAM-SHA-256$4096:80N2VbUpUFOCthby2xpAKw==$XtS0DrJgFPzC/3X3iNxwdoWTFqgTdmcHxWO5YKMJuB8=:5XMwKV2sVMlWnDcy0fxO5ftexmYCriC94jMptESyUH4=",
};

function saltOf(verifier: string): Uint8Array {
  return Uint8Array.from(atob(verifier.split("$")[1].split(":")[1]), (c) => c.charCodeAt(0));
}

Deno.test("scramVerifier() computes the verifier PostgreSQL computes for the same salt", async () => {
  const ours = await scramVerifier(PG_VECTOR.password, { salt: saltOf(PG_VECTOR.verifier) });
  assert.equal(ours, PG_VECTOR.verifier);
  const other = await scramVerifier("pencil-Sharpener 43!", { salt: saltOf(PG_VECTOR.verifier) });
  assert.notEqual(other, PG_VECTOR.verifier, "a different password gives different keys");
});

Deno.test("scramVerifier() uses a fresh 16-byte salt and 4096 iterations in libpq's format", async () => {
  const a = await scramVerifier("same-password");
  const b = await scramVerifier("same-password");
  assert.match(a, SCRAM_VERIFIER_RE);
  assert.match(a, /^SCRAM-SHA-256\$4096:/);
  assert.equal(saltOf(a).length, 16);
  assert.notEqual(a, b, "two verifiers of one password differ by their salt");
});

Deno.test("scramVerifier() refuses passwords that SASLprep would change, without echoing them", async () => {
  for (const pw of ["", "pässwort-geheim", "tab\there", "line\nbreak"]) {
    await assert.rejects(scramVerifier(pw), (err: Error) => {
      assert.ok(err instanceof RangeError);
      if (pw) assert.ok(!err.message.includes(pw));
      return true;
    });
  }
});

Deno.test("generatePassword() gives 32 random bytes in base64, like openssl rand -base64 32", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const pw = generatePassword();
    assert.match(pw, /^[A-Za-z0-9+/]{43}=$/);
    assert.equal(atob(pw).length, 32);
    seen.add(pw);
  }
  assert.equal(seen.size, 50);
});

Deno.test("verifierLiteral() quotes a valid verifier and refuses anything else", async () => {
  const v = await scramVerifier("x-password");
  assert.equal(verifierLiteral(v), `'${v}'`);
  for (
    const bad of [
      "plain-password",
      `${v}'; drop role x; --`,
      v.replace("SCRAM-SHA-256", "scram-sha-256"),
      v.replace("4096", "0"),
      `md5${"a".repeat(32)}`,
      v.slice(0, -2),
    ]
  ) {
    assert.throws(() => verifierLiteral(bad), RangeError, bad);
  }
});

Deno.test("a role set to our verifier logs in over SCRAM with the plaintext, which never reaches the server log", async (t) => {
  await using cluster = await startCluster({ name: "scram", conf: { log_statement: "all" } });
  const sql = cluster.primary.sql();
  const password = generatePassword();
  const verifier = await scramVerifier(password);
  await sql`create role scram_probe login`;
  await sql`alter role ${sql("scram_probe")} password ${sql.unsafe(verifierLiteral(verifier))}`.simple();
  const login = (pw: string) =>
    postgres({
      host: "127.0.0.1",
      port: cluster.primary.port,
      database: "postgres",
      username: "scram_probe",
      password: pw,
      max: 1,
      onnotice: () => {},
    });

  await t.step("the server stored exactly our verifier", async () => {
    const [r] = await sql<
      { rolpassword: string }[]
    >`select rolpassword from pg_authid where rolname = 'scram_probe'`;
    assert.equal(r.rolpassword, verifier);
  });
  await t.step("the plaintext logs in; a wrong password is refused with 28P01", async () => {
    const ok = login(password);
    try {
      const [r] = await ok<{ u: string }[]>`select current_user as u`;
      assert.equal(r.u, "scram_probe");
    } finally {
      await ok.end();
    }
    const bad = login(generatePassword());
    try {
      await assert.rejects(bad`select 1`, (e: { code?: string }) => e.code === "28P01");
    } finally {
      await bad.end();
    }
  });
  await t.step("the server log holds the verifier but not the password", async () => {
    const logText = await cluster.primary.readLog();
    assert.ok(logText.includes(verifier), "log_statement = all logged the ALTER with the verifier");
    assert.ok(!logText.includes(password));
  });
});

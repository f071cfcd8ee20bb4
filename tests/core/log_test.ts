import assert from "node:assert/strict";
import { AsyncLineWriter, createLogger, Secrets } from "../../core/log.ts";

/** A descriptor whose asynchronous writes wait until released, like a pipe nobody reads. */
function heldPipe() {
  const written: string[] = [];
  const decoder = new TextDecoder();
  let release!: () => void;
  let held = new Promise<void>((r) => (release = r));
  let asyncWrites = 0;
  return {
    written,
    get asyncWrites() {
      return asyncWrites;
    },
    release: () => release(),
    hold: () => (held = new Promise<void>((r) => (release = r))),
    out: {
      async write(p: Uint8Array): Promise<number> {
        asyncWrites++;
        await held;
        written.push(decoder.decode(p));
        return p.length;
      },
      writeSync(p: Uint8Array): number {
        written.push(decoder.decode(p));
        return p.length;
      },
    },
  };
}

const lines = (written: string[]) => written.join("").split("\n").filter(Boolean);

Deno.test("AsyncLineWriter: logging never waits on a descriptor that is not being read", async (t) => {
  await t.step("info lines queue behind a held write, then go out in order in one more write", async () => {
    const pipe = heldPipe();
    const w = new AsyncLineWriter(pipe.out);
    for (let i = 0; i < 1000; i++) w.sink(`line ${i}`, "info");
    assert.equal(pipe.asyncWrites, 1, "one write under way, the rest queued");
    assert.equal(pipe.written.length, 0);
    pipe.release();
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(lines(pipe.written), Array.from({ length: 1000 }, (_, i) => `line ${i}`));
    assert.equal(pipe.asyncWrites, 2, "everything queued meanwhile went out in one write");
  });

  await t.step("warnings and errors wait their turn too: nothing writes synchronously", async () => {
    const pipe = heldPipe();
    const w = new AsyncLineWriter(pipe.out);
    w.sink("first", "info");
    w.sink("boom", "error");
    assert.deepEqual(pipe.written, [], "the error did not jump the held write");
    pipe.release();
    await w.drained(1000);
    assert.deepEqual(lines(pipe.written), ["first", "boom"]);
  });

  await t.step("past the cap, info lines are dropped and counted; warnings are kept", async () => {
    const pipe = heldPipe();
    const w = new AsyncLineWriter(pipe.out, 100);
    w.sink("first", "info"); // taken by the held write
    for (let i = 0; i < 50; i++) w.sink(`filler ${i}`, "info");
    w.sink("kept warning", "warn");
    pipe.release();
    await new Promise((r) => setTimeout(r, 10));
    const out = lines(pipe.written);
    assert.equal(out[0], "first");
    const note = JSON.parse(out[1]);
    assert.equal(note.msg, "log lines dropped: standard error was not read fast enough");
    const kept = out.slice(2);
    assert.equal(note.dropped + kept.length - 1, 50, "every filler line is either written or counted");
    assert.ok(note.dropped > 0);
    assert.equal(kept.at(-1), "kept warning");
  });

  await t.step(
    "drained() waits for the write under way and the rest; a reader that never reads is given up on",
    async () => {
      const pipe = heldPipe();
      const w = new AsyncLineWriter(pipe.out);
      w.sink("stopped", "info"); // handed to a write that has not finished, as at exit
      w.sink("after", "info");
      let done = false;
      const waiting = w.drained(5000).then(() => (done = true));
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(done, false, "still waiting for the write under way");
      pipe.release();
      await waiting;
      assert.deepEqual(lines(pipe.written), ["stopped", "after"]);

      const stuck = heldPipe();
      const w2 = new AsyncLineWriter(stuck.out);
      w2.sink("never read", "info");
      const started = Date.now();
      await w2.drained(100);
      assert.ok(Date.now() - started < 3000, "gave up after its bound");
      stuck.release();
    },
  );

  await t.step("flushSync() writes what is queued (before the process exits)", () => {
    const pipe = heldPipe();
    const w = new AsyncLineWriter(pipe.out);
    w.sink("a", "info");
    w.sink("b", "info");
    w.sink("c", "info");
    w.flushSync();
    assert.deepEqual(lines(pipe.written), ["b", "c"], "a is in the held write; b and c went out now");
    assert.equal(w.queued, 0);
  });
});

Deno.test("the default logger keeps a process running while its standard error is not read", async () => {
  // 20,000 lines are far more than a pipe holds (64 KiB): with synchronous writes the child would block
  // in its first full pipe and never print "done" on stdout.
  const code = `
    import { createLogger, Secrets, stderrWriter } from ${
    JSON.stringify(new URL("../../core/log.ts", import.meta.url).href)
  };
    const log = createLogger(new Secrets(), { level: "info" });
    for (let i = 0; i < 20000; i++) log.info("burst", { i, pad: "x".repeat(100) });
    console.log("done");
    await new Promise((r) => setTimeout(r, 50));
    stderrWriter.flushSync();
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  // Bounded: a child stuck in a write is killed, so the failure is an assertion rather than a hung suite.
  const stuck = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const first = await stdout.read();
  clearTimeout(stuck);
  assert.equal(first.value?.trim(), "done", "the child went on while nobody read its stderr");
  await stdout.cancel();
  // Now read stderr: every line arrives, whole and in order.
  const err = await new Response(child.stderr).text();
  await child.status;
  const got = err.split("\n").filter(Boolean).map((l) => JSON.parse(l));
  assert.equal(got.length, 20000);
  assert.deepEqual(got.map((r) => r.i), Array.from({ length: 20000 }, (_, i) => i));
});

Deno.test("createLogger scrubs secrets and passes the level to its sink", () => {
  const secrets = new Secrets();
  secrets.add("hunter2-secret-value");
  const seen: { line: string; level?: string }[] = [];
  const log = createLogger(secrets, { sink: (line, level) => seen.push({ line, level }) });
  log.warn("login failed", { password: "hunter2-secret-value" });
  assert.equal(seen[0].level, "warn");
  assert.ok(!seen[0].line.includes("hunter2-secret-value"));
  assert.match(seen[0].line, /\[redacted\]/);
});

Deno.test("a secret that JSON escapes (quotes, backslashes, control characters, lone surrogates) is scrubbed from log lines and from serialised text", async (t) => {
  const awkward = [
    'pa"ss-word-1',
    "back\\slash\\secret",
    "new\nline\tsecret",
    "bell\u0007and\u0001secret",
    "lone-\ud800-surrogate",
    'all"of\\them\n\u0002\udfff',
  ];
  const secrets = new Secrets();
  for (const s of awkward) secrets.add(s);
  const leaked = (line: string) =>
    awkward.filter((s) => line.includes(s) || line.includes(JSON.stringify(s).slice(1, -1)));

  await t.step("in a field, in the message, in an error's message, in a key, nested", () => {
    const seen: string[] = [];
    const log = createLogger(secrets, { sink: (line) => seen.push(line) });
    for (const s of awkward) {
      log.error(`could not log in with ${s}`, {
        password: s,
        nested: { deeper: [s, { again: `x${s}y` }] },
        error: new Error(`connection string had ${s}`),
        [`key-${s}`]: 1,
      });
    }
    assert.equal(seen.length, awkward.length);
    for (const line of seen) {
      JSON.parse(line); // still one valid JSON line
      assert.deepEqual(leaked(line), [], line);
      assert.match(line, /\[redacted\]/);
    }
  });

  await t.step("Secrets.scrub() catches the escaped form in text serialised elsewhere (an audit row)", () => {
    for (const s of awkward) {
      const text = JSON.stringify({ detail: `failed: ${s}` });
      assert.deepEqual(leaked(secrets.scrub(text)), [], text);
      assert.ok(secrets.leaks(text));
    }
  });
});

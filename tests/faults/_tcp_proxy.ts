/**
 * A loopback TCP proxy in front of a real server (PostgreSQL, Vault), for fault tests: it can hold the
 * client's bytes (a stalled network: queries wait, nothing reaches the server), cut every connection (a
 * crash or a reset), and go down (it stops listening, so connecting is refused as with a stopped server)
 * and come back on the same port. Nothing in the bot is touched: only the address in its config or
 * environment points here.
 */

/** One proxied connection. */
interface Pair {
  client: Deno.Conn;
  server: Deno.Conn;
  dead: boolean;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

export class TcpProxy {
  readonly port: number;
  #listener: Deno.Listener;
  #pairs = new Set<Pair>();
  #held?: PromiseWithResolvers<void>;
  #listening = true;
  #accepting: Promise<void>;

  private constructor(private readonly target: { hostname: string; port: number }) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#accepting = this.#accept(this.#listener);
  }

  /** Starts a proxy to `hostname:port` on a free loopback port. */
  static start(port: number, hostname = "127.0.0.1"): TcpProxy {
    return new TcpProxy({ hostname, port });
  }

  /** Open proxied connections. */
  get connections(): number {
    return this.#pairs.size;
  }

  /** Holds the bytes clients send (queries wait) until {@link resume}; what servers send still flows. */
  hold(): void {
    this.#held ??= Promise.withResolvers<void>();
  }

  /** Delivers the held bytes, in order, and lets traffic flow again. */
  resume(): void {
    const h = this.#held;
    this.#held = undefined;
    h?.resolve();
  }

  /** Closes every open connection at once; bytes still held are dropped (they never reached the server). */
  cut(): void {
    for (const p of [...this.#pairs]) this.#kill(p);
  }

  /** The server is down: open connections are cut and new ones refused (nothing listens on the port). */
  async down(): Promise<void> {
    if (this.#listening) {
      this.#listening = false;
      this.#listener.close();
      await this.#accepting;
    }
    this.cut();
  }

  /** The server is back, on the same port. */
  up(): void {
    if (this.#listening) return;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: this.port });
    this.#listening = true;
    this.#accepting = this.#accept(this.#listener);
  }

  async close(): Promise<void> {
    await this.down();
    this.resume();
  }

  async #accept(listener: Deno.Listener): Promise<void> {
    for (;;) {
      let client: Deno.Conn;
      try {
        client = await listener.accept();
      } catch {
        return; // listener closed
      }
      let server: Deno.Conn;
      try {
        server = await Deno.connect(this.target);
      } catch {
        client.close();
        continue;
      }
      const pair: Pair = { client, server, dead: false };
      this.#pairs.add(pair);
      void Promise.all([this.#pump(pair, client, server, true), this.#pump(pair, server, client, false)])
        .finally(() => this.#kill(pair));
    }
  }

  /** Copies `src` to `dst`; client-to-server bytes wait while held, and die with a client that goes away. */
  async #pump(pair: Pair, src: Deno.Conn, dst: Deno.Conn, holdable: boolean): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    let chain = Promise.resolve();
    for (;;) {
      let n: number | null;
      try {
        n = await src.read(buf);
      } catch {
        n = null;
      }
      if (n === null || pair.dead) break;
      const chunk = buf.slice(0, n);
      chain = chain.then(async () => {
        while (holdable && this.#held) await this.#held.promise;
        if (pair.dead) return;
        await writeAll(dst, chunk).catch(() => this.#kill(pair));
      });
    }
    // A client gone while its bytes were held never delivered them: they died with it.
    if (holdable && this.#held) pair.dead = true;
    await chain;
    this.#kill(pair);
  }

  #kill(pair: Pair): void {
    pair.dead = true;
    if (!this.#pairs.delete(pair)) return;
    for (const c of [pair.client, pair.server]) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
  }
}

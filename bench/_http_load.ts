/**
 * A lean HTTP/1.1 load generator for the benchmarks: `concurrency` keep-alive connections, each sending
 * prepared request bytes one after the other and reading the whole response (Content-Length or chunked).
 * `fetch` costs the client far more CPU per request; on a 2-core machine that CPU is taken from the server
 * being measured, so the latency would mostly be the client's.
 */

const enc = new TextEncoder();
const dec = new TextDecoder();

/** One prepared request: the bytes on the wire. */
export function httpRequest(url: string, headers: Record<string, string>, body: string): Uint8Array {
  const u = new URL(url);
  const b = enc.encode(body);
  const head = [
    `POST ${u.pathname}${u.search} HTTP/1.1`,
    `host: ${u.host}`,
    `content-length: ${b.length}`,
    "connection: keep-alive",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    "",
    "",
  ].join("\r\n");
  const out = new Uint8Array(head.length + b.length);
  out.set(enc.encode(head), 0);
  out.set(b, head.length);
  return out;
}

/** A response as read: status and body text. */
export interface RawResponse {
  status: number;
  body: string;
}

/** Reads exactly one HTTP/1.1 response from `conn`, keeping leftover bytes in `buf`. */
class ResponseReader {
  #buf = new Uint8Array(0);
  #chunk = new Uint8Array(64 * 1024);
  constructor(private readonly conn: Deno.Conn) {}

  async #more(): Promise<void> {
    const n = await this.conn.read(this.#chunk);
    if (n === null) throw new Error("connection closed by the server");
    const next = new Uint8Array(this.#buf.length + n);
    next.set(this.#buf, 0);
    next.set(this.#chunk.subarray(0, n), this.#buf.length);
    this.#buf = next;
  }

  #indexOf(seq: number[], from = 0): number {
    outer: for (let i = from; i <= this.#buf.length - seq.length; i++) {
      for (let j = 0; j < seq.length; j++) if (this.#buf[i + j] !== seq[j]) continue outer;
      return i;
    }
    return -1;
  }

  #take(n: number): Uint8Array {
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  async read(): Promise<RawResponse> {
    let end: number;
    while ((end = this.#indexOf([13, 10, 13, 10])) < 0) await this.#more();
    const head = dec.decode(this.#take(end + 4));
    const status = Number(head.slice(9, 12));
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (length) {
      const n = Number(length[1]);
      while (this.#buf.length < n) await this.#more();
      return { status, body: dec.decode(this.#take(n)) };
    }
    if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      let body = "";
      for (;;) {
        let eol: number;
        while ((eol = this.#indexOf([13, 10])) < 0) await this.#more();
        const size = parseInt(dec.decode(this.#take(eol + 2)), 16);
        while (this.#buf.length < size + 2) await this.#more();
        body += dec.decode(this.#take(size + 2).subarray(0, size));
        if (size === 0) return { status, body };
      }
    }
    return { status, body: "" };
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/**
 * Sends every request in `requests` over `concurrency` keep-alive connections to `url`'s host; returns the
 * latency of each (ms, from the first byte sent to the last byte of the response) and each response.
 */
export async function loadRaw(
  url: string,
  requests: Uint8Array[],
  concurrency: number,
): Promise<{ ms: number[]; responses: RawResponse[]; seconds: number }> {
  const u = new URL(url);
  const ms: number[] = new Array(requests.length);
  const responses: RawResponse[] = new Array(requests.length);
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, requests.length) }, async () => {
    let conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
    let reader = new ResponseReader(conn);
    try {
      while (next < requests.length) {
        const i = next++;
        const t0 = performance.now();
        try {
          await writeAll(conn, requests[i]);
          responses[i] = await reader.read();
        } catch {
          // The server closed a kept-alive connection: reconnect and send once more.
          conn.close();
          conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
          reader = new ResponseReader(conn);
          await writeAll(conn, requests[i]);
          responses[i] = await reader.read();
        }
        ms[i] = performance.now() - t0;
      }
    } finally {
      conn.close();
    }
  }));
  return { ms, responses, seconds: (performance.now() - started) / 1000 };
}

/** What one timed round measured. */
export interface TimedResult {
  /** Latency of each request (ms), send to last byte of the response. */
  ms: number[];
  /** Responses that were not a 200 or that `ok` refused. */
  errors: number;
  /** Wall time of the round. */
  seconds: number;
}

/**
 * Sends requests for `seconds` over `concurrency` keep-alive connections, cycling through `requests`
 * (prepared before the clock starts); each connection sends its next request as soon as its previous
 * answer has arrived. Responses are checked with `ok` and not kept.
 */
export async function loadFor(
  url: string,
  requests: Uint8Array[],
  concurrency: number,
  seconds: number,
  ok: (r: RawResponse) => boolean = (r) => r.status === 200,
): Promise<TimedResult> {
  const u = new URL(url);
  const ms: number[] = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    let conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
    let reader = new ResponseReader(conn);
    try {
      while (performance.now() < end) {
        const req = requests[next++ % requests.length];
        const t0 = performance.now();
        let res: RawResponse;
        try {
          await writeAll(conn, req);
          res = await reader.read();
        } catch {
          conn.close();
          conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
          reader = new ResponseReader(conn);
          await writeAll(conn, req);
          res = await reader.read();
        }
        ms.push(performance.now() - t0);
        if (!ok(res)) errors++;
      }
    } finally {
      conn.close();
    }
  }));
  return { ms, errors, seconds: (performance.now() - started) / 1000 };
}

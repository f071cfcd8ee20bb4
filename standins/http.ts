/**
 * Tiny loopback HTTP server helper shared by the test stand-ins.
 *
 * Serves a `(req) => Response` handler (or anything with a `fetch` method, such as a Hono app)
 * on 127.0.0.1 with an OS-assigned port, and resolves once the socket is listening.
 */

export type Handler = (
  req: Request,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
) => Response | Promise<Response>;

export interface FetchApp {
  fetch(req: Request, ...rest: unknown[]): Response | Promise<Response>;
}

export interface LoopbackServer {
  /** "http://127.0.0.1:<port>" (no trailing slash). */
  readonly url: string;
  readonly port: number;
  /** Stops accepting connections, waits for in-flight requests, and closes the listener. */
  close(): Promise<void>;
}

export function serveLoopback(handler: Handler | FetchApp): Promise<LoopbackServer> {
  const h: Handler = typeof handler === "function" ? handler : (req) => handler.fetch(req);
  return new Promise((resolve, reject) => {
    try {
      let closed: Promise<void> | undefined;
      const server = Deno.serve({
        hostname: "127.0.0.1",
        port: 0,
        onListen() {},
        onError(err) {
          // A stand-in must never crash the test run; answer like an unexpected server fault.
          console.error("stand-in handler error:", err);
          return new Response(JSON.stringify({ error: "stand-in internal error" }), {
            status: 500,
            headers: { "content-type": "application/json" },
          });
        },
      }, h);
      const port = server.addr.port;
      resolve({
        url: `http://127.0.0.1:${port}`,
        port,
        close() {
          closed ??= server.shutdown();
          return closed;
        },
      });
    } catch (err) {
      reject(err);
    }
  });
}

/** Resolves after `ms`, or early (without error) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Bounded poll: resolves with the first truthy value of `pred()`, rejects after `timeoutMs`. */
export async function waitFor<T>(
  pred: () => T | undefined | null | false,
  timeoutMs = 5000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = pred();
    if (v !== undefined && v !== null && v !== false) return v as T;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * A loopback HTTP(S) server for the stand-ins in this folder: serves a handler on 127.0.0.1 on a port the OS
 * picks, over TLS when given a certificate (the Kubernetes API is only ever HTTPS), and stops cleanly.
 *
 * @module
 */

/** A running server. */
export interface Served {
  /** `http(s)://127.0.0.1:<port>`, no trailing slash. */
  readonly url: string;
  readonly port: number;
  /** Stops accepting, waits for requests in flight, closes the listener; idempotent. */
  close(): Promise<void>;
}

/** Options of {@link serve}. */
export interface ServeOptions {
  /** PEM certificate chain and key: serve HTTPS. */
  tls?: { cert: string; key: string };
}

/** Serves `handler` on 127.0.0.1. A handler that throws answers 500, as a server fault would. */
export function serve(
  handler: (req: Request) => Response | Promise<Response>,
  opts: ServeOptions = {},
): Served {
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
    onError(err) {
      console.error("stand-in handler error:", err);
      return Response.json({ error: "stand-in internal error" }, { status: 500 });
    },
    ...(opts.tls ? { cert: opts.tls.cert, key: opts.tls.key } : {}),
  }, handler);
  let closed: Promise<void> | undefined;
  const port = server.addr.port;
  return {
    url: `${opts.tls ? "https" : "http"}://127.0.0.1:${port}`,
    port,
    close: () => closed ??= server.shutdown(),
  };
}

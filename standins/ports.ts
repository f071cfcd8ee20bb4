/**
 * TCP port allocation for throwaway servers.
 *
 * Ports are picked at random from 20000-32767, i.e. below Linux's default ephemeral range
 * (32768-60999), so an outgoing client connection cannot grab the port between the check and the
 * server's bind. A port is only returned if it can be bound on every requested address, and a port
 * is never handed out twice by the same process. Another process can still race us for it; callers
 * that start servers should retry on "Address already in use" (startCluster does).
 */

const MIN_PORT = 20_000;
const MAX_PORT = 32_767;
const handedOut = new Set<number>();

function canBind(hostname: string, port: number): boolean {
  try {
    const listener = Deno.listen({ hostname, port, transport: "tcp" });
    listener.close();
    return true;
  } catch {
    return false;
  }
}

/** A TCP port that is currently free on all of `hosts` (default 127.0.0.1). */
export function freePortOn(hosts: string[] = ["127.0.0.1"]): Promise<number> {
  const targets = hosts.length > 0 ? hosts : ["127.0.0.1"];
  for (let attempt = 0; attempt < 500; attempt++) {
    const port = MIN_PORT + Math.floor(Math.random() * (MAX_PORT - MIN_PORT + 1));
    if (handedOut.has(port)) continue;
    if (targets.every((h) => canBind(h, port))) {
      handedOut.add(port);
      return Promise.resolve(port);
    }
  }
  return Promise.reject(
    new Error(`No free TCP port found in ${MIN_PORT}-${MAX_PORT} on ${targets.join(", ")}`),
  );
}

/** A TCP port that is currently free on `host` (default 127.0.0.1). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return freePortOn([host]);
}

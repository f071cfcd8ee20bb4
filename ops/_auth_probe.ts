/**
 * Which authentication a server asks of a role on a connection, found out without sending any password:
 * a rotation refuses to log in with a new password where the server would have it sent in clear.
 *
 * How: the opening of a real login, over the very connection the verification login uses (host, port,
 * database, sslmode and CA as configured): SSLRequest and TLS as postgres.js negotiates them, then the
 * StartupMessage for the role, then the server's first Authentication request is read and the connection
 * closed before any answer (https://www.postgresql.org/docs/15/protocol-flow.html#id-1.10.6.7.3,
 * https://www.postgresql.org/docs/15/protocol-message-formats.html). PostgreSQL logs nothing for a client
 * that leaves at the password prompt (psql does the same before it asks for a password).
 *
 * Why this and not the alternatives: pg_hba_file_rules is readable by superusers only and would need the
 * bot to re-implement pg_hba.conf matching (address, database, user, ssl or not, first match wins), and a
 * connection pooler in between answers for itself anyway; pg_stat_ssl shows whether a session *is*
 * encrypted only after it authenticated, that is after the password was sent; postgres.js answers an
 * AuthenticationCleartextPassword request at once with the password and has no hook before it. The
 * server's own request, on the same connection settings, is what the login will meet.
 *
 * @module
 */

import net from "node:net";
import tls from "node:tls";
import type { ConnectionConfig } from "../core/config.ts";

/** What the server asked for (protocol Authentication codes 0, 3, 5, 10; anything else is `other`). */
export type AuthMethod = "trust" | "cleartext" | "md5" | "scram" | "other";

/** The outcome of a probe. */
export type AuthProbe =
  | { ok: true; method: AuthMethod; tls: boolean; code: number }
  /** The server refused before asking for a password (no pg_hba.conf entry, ...), or did not answer. */
  | { ok: false; detail: string };

const SSL_REQUEST = new Uint8Array([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]); // 80877103
const PROTOCOL_3_0 = 196608;

/** The StartupMessage for `user` on `database`. */
function startupMessage(user: string, database: string): Uint8Array {
  const enc = new TextEncoder();
  const params = enc.encode(
    ["user", user, "database", database, "application_name", "bisman-ops-verify", ""].join("\0") + "\0",
  );
  const msg = new Uint8Array(8 + params.length);
  const view = new DataView(msg.buffer);
  view.setInt32(0, msg.length);
  view.setInt32(4, PROTOCOL_3_0);
  msg.set(params, 8);
  return msg;
}

/** Reads exactly `n` more bytes from a socket (buffering what arrives beyond them). */
function reader(socket: net.Socket) {
  let buf = new Uint8Array(0);
  let waiting: (() => void) | undefined;
  let failed: Error | undefined;
  const onData = (chunk: Uint8Array) => {
    const next = new Uint8Array(buf.length + chunk.length);
    next.set(buf);
    next.set(chunk, buf.length);
    buf = next;
    waiting?.();
  };
  const onEnd = (err?: Error) => {
    failed = err ?? new Error("the server closed the connection");
    waiting?.();
  };
  socket.on("data", onData);
  socket.on("error", onEnd);
  socket.on("close", () => onEnd());
  return {
    async read(n: number): Promise<Uint8Array> {
      while (buf.length < n) {
        if (failed) throw failed;
        await new Promise<void>((r) => (waiting = r));
        waiting = undefined;
      }
      const out = buf.slice(0, n);
      buf = buf.slice(n);
      return out;
    },
    detach() {
      socket.off("data", onData);
    },
  };
}

/** The message text of an ErrorResponse body (fields C and M). */
function errorText(body: Uint8Array): string {
  const fields: Record<string, string> = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const type = String.fromCharCode(body[i]);
    const end = body.indexOf(0, i + 1);
    fields[type] = new TextDecoder().decode(body.subarray(i + 1, end < 0 ? body.length : end));
    i = end < 0 ? body.length : end + 1;
  }
  return `${fields.C ? `${fields.C} ` : ""}${fields.M ?? "error"}`;
}

/**
 * Asks the server which authentication `role` meets on connection `c`, sending no password.
 * Never throws: a refused or unanswered connection is `{ ok: false }`.
 */
export async function probeAuthMethod(c: ConnectionConfig, role: string): Promise<AuthProbe> {
  let socket: net.Socket = net.connect({ host: c.host, port: c.port });
  const timer = setTimeout(() => socket.destroy(new Error("timed out")), c.connect_timeout_seconds * 1000);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    let encrypted = false;
    if (c.sslmode !== "disable") {
      const plain = reader(socket);
      socket.write(SSL_REQUEST);
      const answer = String.fromCharCode((await plain.read(1))[0]);
      plain.detach();
      if (answer === "S") {
        const options: tls.ConnectionOptions = {
          socket,
          // As postgres.js: the server's name for SNI and the certificate check, unless it is an address.
          servername: net.isIP(c.host) ? undefined : c.host,
          rejectUnauthorized: c.sslmode === "verify-full",
          ...(c.ca_file ? { ca: await Deno.readTextFile(c.ca_file) } : {}),
        };
        const secure = tls.connect(options);
        await new Promise<void>((resolve, reject) => {
          secure.once("secureConnect", resolve);
          secure.once("error", reject);
        });
        socket = secure;
        encrypted = true;
      } else if (c.sslmode !== "prefer") {
        return { ok: false, detail: `the server does not offer TLS, and sslmode is ${c.sslmode}` };
      }
    }
    const r = reader(socket);
    socket.write(startupMessage(role, c.database));
    for (;;) {
      const head = await r.read(5);
      const type = String.fromCharCode(head[0]);
      const length = new DataView(head.buffer, head.byteOffset + 1, 4).getInt32(0);
      const body = await r.read(length - 4);
      if (type === "E") return { ok: false, detail: errorText(body) };
      if (type === "N") continue; // a notice before the request
      if (type !== "R") return { ok: false, detail: `unexpected message ${JSON.stringify(type)}` };
      const code = new DataView(body.buffer, body.byteOffset, 4).getInt32(0);
      const method: AuthMethod = code === 0
        ? "trust"
        : code === 3
        ? "cleartext"
        : code === 5
        ? "md5"
        : code === 10
        ? "scram"
        : "other";
      return { ok: true, method, tls: encrypted, code };
    }
  } catch (err) {
    return {
      ok: false,
      detail: err instanceof Error ? err.message.split("\n")[0].slice(0, 200) : String(err),
    };
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

/**
 * Why a login as `role` must not send its password on this connection, or undefined when it may:
 * PostgreSQL's `password` method has the client send the password itself, which the server then holds in
 * clear (and without TLS, every machine on the path reads it). SCRAM, and md5 for a role whose stored
 * password is a SCRAM verifier (the server then asks for SCRAM), send only proofs.
 */
export function cleartextRefusal(role: string, p: AuthProbe): string | undefined {
  if (!p.ok || p.method !== "cleartext") return undefined;
  return `the server asks for ${role}'s password in clear text (pg_hba.conf method "password"${
    p.tls ? "" : ", on a connection without TLS"
  }), so logging in would hand it over: change that pg_hba.conf line to scram-sha-256`;
}

/**
 * TLS for throwaway clusters, made in the test with openssl: a self-signed CA, a server certificate for
 * localhost / 127.0.0.1 / 127.0.0.2 signed by it, `ssl = on` on the primary; and a pg_hba.conf writer to
 * configure a cluster as the seed says (hostssl + scram-sha-256, a final reject).
 *
 * ```ts
 * const tls = await enableTls(cluster);          // { caFile, caPem }
 * await writeHba(cluster, seedHba(["127.0.0.1/32"]));
 * ```
 */

import type { TestCluster } from "./cluster.ts";

/** Files of a test CA and the server certificate it signed. */
export interface TestCertificates {
  dir: string;
  caFile: string;
  caPem: string;
  certFile: string;
  keyFile: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" }).output();
  if (out.code !== 0) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** Makes a CA (EC P-256, valid 2 days) and a server certificate for localhost, 127.0.0.1 and 127.0.0.2. */
export async function makeTestCertificates(dir?: string): Promise<TestCertificates> {
  const d = dir ?? await Deno.makeTempDir({ prefix: "bisman-tls-" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=bisman test CA",
  ], d);
  await openssl(["req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"], d);
  await Deno.writeTextFile(
    `${d}/ext.cnf`,
    "subjectAltName = DNS:localhost, IP:127.0.0.1, IP:127.0.0.2\nextendedKeyUsage = serverAuth\n",
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.crt",
    "-days",
    "2",
    "-extfile",
    "ext.cnf",
  ], d);
  return {
    dir: d,
    caFile: `${d}/ca.crt`,
    caPem: await Deno.readTextFile(`${d}/ca.crt`),
    certFile: `${d}/server.crt`,
    keyFile: `${d}/server.key`,
  };
}

/** Writes a file in the primary's data directory owned like the directory (postgres), mode `mode`. */
async function writeInDataDir(
  cluster: TestCluster,
  name: string,
  text: string,
  mode = 0o600,
): Promise<string> {
  const path = `${cluster.primary.dataDir}/${name}`;
  const st = await Deno.stat(cluster.primary.dataDir);
  await Deno.writeTextFile(path, text, { mode });
  await Deno.chmod(path, mode);
  if (Deno.uid() === 0 && st.uid !== null && st.gid !== null) await Deno.chown(path, st.uid, st.gid);
  return path;
}

/** Installs a test certificate on the primary and turns `ssl` on (a reload is enough since PostgreSQL 10). */
export async function enableTls(cluster: TestCluster): Promise<TestCertificates> {
  const certs = await makeTestCertificates();
  await writeInDataDir(cluster, "server.crt", await Deno.readTextFile(certs.certFile), 0o644);
  await writeInDataDir(cluster, "server.key", await Deno.readTextFile(certs.keyFile), 0o600);
  await cluster.primary.psql(
    "alter system set ssl_cert_file = 'server.crt';\nalter system set ssl_key_file = 'server.key';\nalter system set ssl = on;",
  );
  await cluster.primary.reload();
  return certs;
}

/** Replaces the primary's pg_hba.conf and reloads. */
export async function writeHba(cluster: TestCluster, lines: string[]): Promise<void> {
  await writeInDataDir(cluster, "pg_hba.conf", lines.join("\n") + "\n");
  await cluster.primary.reload();
}

/**
 * A pg_hba.conf as the seed says: unix-socket access for the harness, hostssl + scram-sha-256 for the given
 * networks, then a final reject of every other address (IPv4 and IPv6).
 */
export function seedHba(networks: string[]): string[] {
  return [
    "# the seed's rules (runbook section 2), written by tests/support/tls.ts",
    "local   all   all                 trust",
    ...networks.map((n) => `hostssl all   all   ${n}   scram-sha-256`),
    "hostssl all   all   0.0.0.0/0     reject",
    "hostssl all   all   ::/0          reject",
  ];
}

/**
 * Looking up config entries by a name that came from outside (a Slack command, an alert label, a button
 * value, a role or table name read from a server, an OS login): only the record's own entries count.
 * `config.targets["constructor"]` is Object's constructor function and `policies["toString"]` a function,
 * both truthy, so a plain index lookup lets such a name pass as configured. Every lookup by name goes through
 * {@link own}.
 *
 * @module
 */

/**
 * The value of `record`'s own entry `key`; undefined for a missing key and for anything inherited
 * (`__proto__`, `constructor`, `hasOwnProperty`, `toString`, ...).
 * @example
 * own({ prod: 1 }, "prod"); // 1
 * own({ prod: 1 }, "constructor"); // undefined
 */
export function own<T>(record: Readonly<Record<string, T>> | null | undefined, key: string): T | undefined {
  return record && Object.hasOwn(record, key) ? record[key] : undefined;
}

/**
 * Paths of `__proto__` keys anywhere in a parsed document (YAML makes them ordinary keys; zod's records drop
 * them silently), for a config error that names them.
 * @example
 * protoKeys({ targets: { __proto__: {} } }); // ["targets.__proto__"]
 */
export function protoKeys(doc: unknown, path: string[] = [], depth = 0): string[] {
  if (doc === null || typeof doc !== "object" || depth > 64) return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(doc)) {
    const here = [...path, k];
    if (k === "__proto__") out.push(here.join("."));
    out.push(...protoKeys(v, here, depth + 1));
  }
  return out;
}

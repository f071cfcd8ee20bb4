/**
 * Questions the CLI asks the person at the terminal: a password (not echoed) and a yes/no. Both read the
 * controlling terminal through stdin and write to stderr, so stdout keeps only the command's output (and
 * `--json` stays parseable). Without a terminal nothing is asked: the caller says what to pass instead.
 *
 * @module
 */

/** Whether a person can be asked: stdin and stderr are a terminal. */
export function canAsk(): boolean {
  return Deno.stdin.isTerminal() && Deno.stderr.isTerminal();
}

const enc = new TextEncoder();

function say(text: string): void {
  Deno.stderr.writeSync(enc.encode(text));
}

/** Bytes read past the end of the last answer (typed ahead): the next question starts with them. */
let typedAhead: number[] = [];

/**
 * Asks `question` and reads one line from the terminal; with `secret`, in raw mode without echo (switched on
 * before the question shows, so nothing typed after it is ever echoed). Ctrl-C or Ctrl-D abort.
 */
async function readLine(question: string, secret: boolean): Promise<string> {
  if (secret) Deno.stdin.setRaw(true);
  say(question);
  const buf = new Uint8Array(256);
  const bytes: number[] = [];
  let pending = typedAhead;
  typedAhead = [];
  try {
    for (;;) {
      for (let i = 0; i < pending.length; i++) {
        const b = pending[i];
        if (b === 0x03 || (b === 0x04 && !bytes.length)) throw new Error("Cancelled");
        if (b === 0x0d || b === 0x0a) {
          // A CR LF pair is one line end.
          const next = b === 0x0d && pending[i + 1] === 0x0a ? i + 2 : i + 1;
          typedAhead = pending.slice(next);
          return new TextDecoder().decode(new Uint8Array(bytes));
        }
        if (b === 0x7f || b === 0x08) bytes.pop();
        else bytes.push(b);
      }
      const n = await Deno.stdin.read(buf);
      if (n === null) throw new Error("The terminal closed before an answer");
      pending = [...buf.subarray(0, n)];
    }
  } finally {
    if (secret) {
      Deno.stdin.setRaw(false);
      say("\n");
    }
  }
}

/** Asks for a secret without echoing it. @throws Error when the person cancels */
export async function askSecret(question: string): Promise<string> {
  return await readLine(question, true);
}

/** Asks a yes/no question; only "y" or "yes" is yes. */
export async function askYesNo(question: string): Promise<boolean> {
  return /^\s*y(es)?\s*$/i.test(await readLine(`${question} [y/N] `, false));
}

/** Asks for a line of text (echoed). */
export async function askLine(question: string): Promise<string> {
  return (await readLine(question, false)).trim();
}

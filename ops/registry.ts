/**
 * Every operation by name, so the approval gate can find the one a stored request names, and the CLI,
 * the scheduler and alert buttons call the same code. A new operation is one import and one line here.
 *
 * @module
 */

import type { Operation, PlanBase } from "./types.ts";

// deno-lint-ignore no-explicit-any
export type AnyOperation = Operation<any, PlanBase, any>;

const operations = new Map<string, AnyOperation>();

/** Adds operations; a second one of the same name is a programming error. */
export function registerOperations(...ops: AnyOperation[]): void {
  for (const op of ops) {
    if (operations.has(op.name)) throw new Error(`Operation ${op.name} is registered twice`);
    operations.set(op.name, op);
  }
}

/** The operation called `name`, or undefined. */
export function getOperation(name: string): AnyOperation | undefined {
  return operations.get(name);
}

/** All registered operations. */
export function allOperations(): AnyOperation[] {
  return [...operations.values()];
}

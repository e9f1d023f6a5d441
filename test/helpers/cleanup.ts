/**
 * The clean-up every test file shares: whatever a test starts (a daemon, a redis-server, a simulator)
 * is registered here *before* it starts, so a failing or timed-out test still leaves nothing running
 * that would keep the file's process, and with it the whole run, alive.
 *
 * - `onCleanup(fn)` runs `fn` after the file's tests (each at most once; the returned function
 *   unregisters it when the test closed the thing itself).
 * - `trackChild(child)` SIGKILLs the child process when the test process exits, however it exits.
 */
import type { ChildProcess } from 'node:child_process';
import { after } from 'node:test';

type Cleanup = () => unknown;

const cleanups = new Set<Cleanup>();
const children = new Set<ChildProcess>();
/** A hung close must not hang the file either. */
const CLEANUP_TIMEOUT_MS = 15_000;

export function onCleanup(fn: Cleanup): () => void {
  let done = false;
  const once: Cleanup = () => {
    if (done) return undefined;
    done = true;
    cleanups.delete(once);
    return fn();
  };
  cleanups.add(once);
  return () => {
    done = true;
    cleanups.delete(once);
  };
}

export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** Runs every registered clean-up, newest first (a daemon stops before the Redis it uses). */
export async function runCleanups(): Promise<void> {
  for (const fn of [...cleanups].reverse()) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.resolve()
        .then(fn)
        .catch(() => undefined),
      new Promise((resolve) => (timer = setTimeout(resolve, CLEANUP_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
  }
  killChildren();
}

function killChildren(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  children.clear();
}

process.once('exit', killChildren);
// Only under the test runner: the bench imports these helpers too and handles its own signals.
if (process.env.NODE_TEST_CONTEXT !== undefined) {
  // Root-level hook: runs once the file's tests are over, passed, failed or timed out.
  after(runCleanups);
  // The runner ends a file that overran its timeout with SIGTERM, which skips 'exit' handlers.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      killChildren();
      process.exit(1);
    });
  }
}

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * A full garbage collection on request, for after a large create. V8 lets the old generation grow to a few times
 * its live size before it collects: a create with 1,000 file events leaves about 40 MB of garbage (its body, the
 * rawJSON, the grid rows, XSOAR's answer), and eight of them in a row took the daemon to 440 MB of RSS before V8
 * collected. Collecting after each one keeps the process near its live size; it costs tens of milliseconds, and
 * only sessions with many file events pay it. Null when the runtime does not offer it.
 */
function exposeGc(): (() => void) | null {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? () => void (gc as () => void)() : null;
  } catch {
    return null;
  }
}

let collect: (() => void) | null | undefined;

/** Asks V8 for a full collection (a no-op where that is not available). */
export function releaseHeap(): void {
  collect ??= exposeGc();
  collect?.();
}

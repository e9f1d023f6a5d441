import { Daemon } from '../../src/daemon.js';
import type { Logger } from '../../src/infra/logger.js';
import { silentLogger } from './logs.js';
import { waitForDrain } from './queue.js';
import type { Stack } from './stack.js';

/** Starts a daemon in this process on the stack (plus `env`) and waits until XSOAR holds `expected` incidents and the queue is drained. */
export async function runDaemonUntil(stack: Stack, env: Record<string, string>, expected: number, logger: Logger = silentLogger()): Promise<Daemon> {
  const daemon = new Daemon({ config: stack.config(env), logger });
  await daemon.start();
  await waitForDrain(stack.prefix, () => stack.xsoar.incidents().length >= expected);
  return daemon;
}

/** Stops the daemon, then the stack (either may be missing when a test failed early). */
export async function stopDaemonAndStack(daemon: Daemon | undefined, stack: Stack | undefined): Promise<void> {
  await daemon?.stop();
  await stack?.close();
}

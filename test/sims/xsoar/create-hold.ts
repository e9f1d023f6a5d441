/**
 * A fault point for the XSOAR simulator: the next N creates are stored, then their answers are held
 * until the test releases them. It forces the window between "XSOAR stored the incident" and "the
 * client learned its id" (where a crashed client leaves an incident its ledger does not know), so a
 * test can kill the client inside that window instead of hoping a random kill lands there.
 */
import type { ServerResponse } from 'node:http';

export class CreateHold {
  private remaining = 0;
  private readonly parked = new Set<() => void>();
  /** Held since the last release. */
  private readonly mirrorIds: string[] = [];
  private readonly waiters = new Set<() => void>();

  /** Holds the next `count` stored creates (adds to any not yet taken). */
  arm(count: number): void {
    this.remaining += Math.max(0, Math.floor(count));
  }

  /** Mirror ids (session ids) of the creates held so far, in order. */
  heldMirrorIds(): string[] {
    return [...this.mirrorIds];
  }

  /** Creates whose answer is held right now. */
  get waiting(): number {
    return this.parked.size;
  }

  /** Resolves once `count` creates have been stored and held (or rejects after `timeoutMs`). */
  whenHeld(count: number, timeoutMs = 30_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (this.mirrorIds.length < count) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`only ${this.mirrorIds.length} of ${count} creates were held within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** Lets every held answer go (to a client that may be gone), holds nothing more and forgets the held ids. */
  release(): void {
    this.remaining = 0;
    this.mirrorIds.length = 0;
    for (const go of [...this.parked]) go();
  }

  /** Called by the simulator after storing a create: holds its answer when armed. */
  async hold(mirrorId: string, res: ServerResponse): Promise<void> {
    if (this.remaining <= 0) return;
    this.remaining -= 1;
    this.mirrorIds.push(mirrorId);
    await new Promise<void>((resolve) => {
      const go = (): void => {
        this.parked.delete(go);
        res.off('close', go);
        resolve();
      };
      this.parked.add(go);
      res.once('close', go);
      for (const waiter of [...this.waiters]) waiter();
    });
  }
}

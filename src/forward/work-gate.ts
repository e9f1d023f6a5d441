/**
 * At most `permits` holders at a time in this process; the others wait in arrival order. Used to keep the memory of
 * large creates bounded: the create body of a session with many file events is several MB, built and sent once per
 * holder, and eight of them at once would multiply that.
 */
export class WorkGate {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly permits: number) {}

  /** Runs `work` once a permit is free, and frees it when `work` settles. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.active >= this.permits) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active += 1;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      // The permit passes straight to the next waiter (active stays the same), or is given back.
      if (next) next();
      else this.active -= 1;
    }
  }
}

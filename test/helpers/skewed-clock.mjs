// Preloaded into a daemon child process by the fault tests (NODE_OPTIONS=--import <this file>) to play a host
// whose clock is off: Date.now() and new Date() are shifted by TEST_CLOCK_SKEW_MS. Test-only: the daemon never
// reads that variable, and this file is not part of the package or the image.
const skew = Number(process.env.TEST_CLOCK_SKEW_MS ?? '0');
if (Number.isFinite(skew) && skew !== 0) {
  const RealDate = Date;
  const realNow = RealDate.now.bind(RealDate);
  class SkewedDate extends RealDate {
    constructor(...args) {
      if (args.length === 0) super(realNow() + skew);
      else super(...args);
    }
    static now() {
      return realNow() + skew;
    }
  }
  globalThis.Date = SkewedDate;
}

// A node:test reporter that prints, as each top-level test or suite of a file ends, how long that file has
// run so far (wall time from the moment the runner takes the file off its queue: process start, imports
// and tests; with --test-concurrency=1 one file runs at a time). The last line of each file is its duration: the suite's time budget
// is managed per file. Lines are written at once (--test-force-exit would drop a summary at the end).
// Used beside the TAP reporter:
//   node --test --test-reporter=tap --test-reporter-destination=stdout \
//        --test-reporter=./scripts/file-durations.mjs --test-reporter-destination=stderr ...
import { writeSync } from 'node:fs';
import path from 'node:path';

export default async function* fileDurations(source) {
  const started = new Map();
  for await (const event of source) {
    const file = event.data?.file;
    if (!file) continue;
    const now = Date.now();
    // Every file is enqueued at the start; it starts running when it is dequeued.
    if (!started.has(file) && event.type !== 'test:enqueue') started.set(file, now);
    if ((event.type === 'test:pass' || event.type === 'test:fail') && event.data.nesting === 0) {
      const seconds = ((now - started.get(file)) / 1000).toFixed(1).padStart(6);
      const failed = event.type === 'test:fail' ? ' FAILED' : '';
      const line = `[file time] ${seconds} s  ${path.relative(process.cwd(), file)} (after "${event.data.name}"${failed})\n`;
      // Written at once where it can be (a non-blocking pipe may refuse): through the stream otherwise.
      try {
        writeSync(2, line);
      } catch {
        yield line;
      }
    }
  }
  yield '';
}

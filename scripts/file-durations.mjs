// A node:test reporter that prints, as each top-level test or suite of a file ends, how long that file has
// run so far (wall time: process start, imports and tests; measured from the previous file's last event,
// so it assumes --test-concurrency=1). The last line of each file is its duration: the suite's time budget
// is managed per file. Lines are written at once (--test-force-exit would drop a summary at the end).
// Used beside the TAP reporter:
//   node --test --test-reporter=tap --test-reporter-destination=stdout \
//        --test-reporter=./scripts/file-durations.mjs --test-reporter-destination=stderr ...
import { writeSync } from 'node:fs';
import path from 'node:path';

export default async function* fileDurations(source) {
  const started = new Map();
  let last = Date.now();
  for await (const event of source) {
    const file = event.data?.file;
    if (!file) continue;
    const now = Date.now();
    if (!started.has(file)) started.set(file, last);
    last = now;
    if ((event.type === 'test:pass' || event.type === 'test:fail') && event.data.nesting === 0) {
      const seconds = ((now - started.get(file)) / 1000).toFixed(1).padStart(6);
      const failed = event.type === 'test:fail' ? ' FAILED' : '';
      writeSync(2, `[file time] ${seconds} s  ${path.relative(process.cwd(), file)} (after "${event.data.name}"${failed})\n`);
    }
  }
  yield '';
}

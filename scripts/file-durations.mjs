// A node:test reporter that adds one line per test file with its wall time (process start, imports and
// tests; measured from the previous file's last event, so it assumes --test-concurrency=1), slowest first:
// the suite's time budget is managed per file. Used beside the TAP reporter:
//   node --test --test-reporter=tap --test-reporter-destination=stdout \
//        --test-reporter=./scripts/file-durations.mjs --test-reporter-destination=stderr ...
import path from 'node:path';

export default async function* fileDurations(source) {
  const perFile = new Map();
  let last = Date.now();
  for await (const event of source) {
    const file = event.data?.file;
    if (!file) continue;
    const now = Date.now();
    const entry = perFile.get(file) ?? { start: last, end: last, failed: false };
    entry.end = now;
    if (event.type === 'test:fail' && event.data.nesting === 0) entry.failed = true;
    perFile.set(file, entry);
    last = now;
  }
  const rows = [...perFile.entries()].map(([file, e]) => [path.relative(process.cwd(), file), e.end - e.start, e.failed]).sort((a, b) => b[1] - a[1]);
  const total = rows.reduce((sum, [, ms]) => sum + ms, 0);
  yield `\ntest file durations (wall time, slowest first; total ${(total / 1000).toFixed(1)} s):\n`;
  for (const [file, ms, failed] of rows) yield `  ${(ms / 1000).toFixed(1).padStart(7)} s  ${file}${failed ? '  (failed)' : ''}\n`;
}

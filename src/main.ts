#!/usr/bin/env node
/**
 * code42-xsoar-forwarder: composition root. Picks the command, parses its arguments and hands over to
 * the command's module. Exit codes: 0 success, 1 failure, 2 bad arguments or bad configuration.
 */
import { runCli } from './cli/index.js';
import { isDaemonInvocation } from './cli/command.js';

const argv = process.argv.slice(2);

// `check | head -3`: a reader that went away is the end of the output, not an error worth a stack trace.
// The daemon keeps its own handler (run.ts): a closed log pipe must not stop it.
if (!isDaemonInvocation(argv)) {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
      throw err;
    });
  }
}

runCli(argv, {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  env: process.env,
}).then(
  (code) => {
    process.exitCode = code;
    // Let stdout drain, then leave even if a stray handle lingers.
    setTimeout(() => process.exit(code), 100).unref();
  },
  (err: unknown) => {
    process.stderr.write(`fatal: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);

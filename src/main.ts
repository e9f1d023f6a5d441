#!/usr/bin/env node
/**
 * code42-xsoar-forwarder: composition root. Picks the command, parses its arguments and hands over to
 * the command's module. Exit codes: 0 success, 1 failure, 2 bad arguments or bad configuration.
 */
import { runCli } from './cli/index.js';

runCli(process.argv.slice(2), {
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


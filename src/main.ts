#!/usr/bin/env node
/**
 * code42-xsoar-forwarder: composition root. Parses the command, loads the configuration and hands
 * over to the command's module.
 */
import { ConfigError, loadConfig } from './config/load-config.js';
import { runCommand } from './cli/run.js';

const USAGE = `Usage: code42-xsoar-forwarder [command] [options]

Commands:
  run        run the daemon (default)

Options:
  -h, --help  show this help
`;

async function main(argv: string[]): Promise<number> {
  const [command = 'run', ...rest] = argv;
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command !== 'run') {
    process.stderr.write(`unknown command: ${command}\n\n${USAGE}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (rest.length > 0) {
    process.stderr.write(`unexpected argument: ${rest[0]}\n\n${USAGE}`);
    return 2;
  }
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const problem of err.problems) process.stderr.write(`config error: ${problem}\n`);
      return 2;
    }
    throw err;
  }
  return runCommand(config);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Give pino's stdout a tick to drain, then leave even if a handle lingers.
    setTimeout(() => process.exit(code), 50).unref();
  },
  (err: unknown) => {
    process.stderr.write(`fatal: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);

import { ConfigError, loadConfig, type Config } from '../config/load-config.js';
import { parseCommandArgs, UsageError, type CliIo, type CommandDefinition } from './command.js';
import { effectiveConfig } from '../config/effective.js';
import { configMarkdown, configText, effectiveText } from './config-command.js';
import { checkCommand } from './check.js';
import { failedFilter, failedList, failedRetry } from './failed.js';
import { parseTimeArg, replayCommand } from './replay.js';
import { runCommand } from './run.js';
import { packageVersion } from '../infra/version.js';
import { statusCommand } from './status.js';

function withConfig(io: CliIo, body: (config: Config) => Promise<number>): Promise<number> {
  let config: Config;
  try {
    config = loadConfig({ env: io.env });
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const problem of err.problems) io.err(`config error: ${problem}\n`);
      return Promise.resolve(2);
    }
    throw err;
  }
  return body(config);
}

export const COMMANDS: CommandDefinition[] = [
  {
    name: 'run',
    summary: 'run the daemon (the default command)',
    usage: 'code42-xsoar-forwarder run',
    options: {},
    allowPositionals: false,
    run: (_args, io) => withConfig(io, (config) => runCommand(config, io.env)),
  },
  {
    name: 'check',
    summary: 'check the configuration, Code42 (token, one page of sessions), XSOAR (/about) and Redis; exit 0 only when all pass',
    usage: 'code42-xsoar-forwarder check',
    options: {},
    allowPositionals: false,
    run: (_args, io) => withConfig(io, (config) => checkCommand(config, io)),
  },
  {
    name: 'failed',
    summary:
      "list failed jobs of every queue (forward, update) and rejected input, or move failed jobs back to their queue ('failed list [--json] [--queue q] [--reason text]', 'failed retry <sessionId>|--all [--queue q] [--reason text]')",
    usage:
      'code42-xsoar-forwarder failed list [--json] [--queue forward|update|rejected] [--reason <text>]\n       code42-xsoar-forwarder failed retry <sessionId> | --all [--queue forward|update] [--reason <text>]',
    options: { json: { type: 'boolean' }, all: { type: 'boolean' }, queue: { type: 'string' }, reason: { type: 'string' } },
    allowPositionals: true,
    run: ({ values, positionals }, io) => {
      const [action, ...rest] = positionals;
      if (action === 'list') {
        if (rest.length > 0 || values.all) throw new UsageError(`failed list takes no ${rest.length > 0 ? 'arguments' : '--all'}`);
        const filter = failedFilter(values.queue, values.reason, true);
        return withConfig(io, (config) => failedList(config, values.json === true, io, filter));
      }
      if (action === 'retry') {
        if (rest.length > 1 || values.json || (rest[0] === undefined) === (values.all !== true)) {
          throw new UsageError('failed retry takes one session id or --all');
        }
        const filter = failedFilter(values.queue, values.reason, false);
        return withConfig(io, (config) => failedRetry(config, rest[0], values.all === true, io, filter));
      }
      throw new UsageError(action ? `unknown action: ${action}` : 'missing action: list or retry');
    },
  },
  {
    name: 'replay',
    summary:
      're-read sessions from Code42 for a time window and forward those XSOAR does not hold (searched first; --force: even those the ledger calls forwarded; --dry-run: show the plan; --yes: needed for more than 5)',
    usage: 'code42-xsoar-forwarder replay --since <time> [--until <time>] [--force] [--dry-run] [--yes]   (time: ISO 8601, or a duration ago such as 6h or 2d)',
    options: { since: { type: 'string' }, until: { type: 'string' }, force: { type: 'boolean' }, 'dry-run': { type: 'boolean' }, yes: { type: 'boolean', short: 'y' } },
    allowPositionals: false,
    run: ({ values }, io) => {
      if (typeof values.since !== 'string') throw new UsageError('--since is required');
      const now = Date.now();
      const since = parseTimeArg('since', values.since, now);
      const until = typeof values.until === 'string' ? parseTimeArg('until', values.until, now) : undefined;
      const flags = { force: values.force === true, dryRun: values['dry-run'] === true, yes: values.yes === true };
      return withConfig(io, (config) => replayCommand(config, { since, ...(until !== undefined ? { until } : {}), ...flags }, io));
    },
  },
  {
    name: 'config',
    summary: 'print every configuration key with its env variable, default and doc (--effective: the values in force and where each came from)',
    usage: 'code42-xsoar-forwarder config [--markdown | --effective]',
    options: { markdown: { type: 'boolean' }, effective: { type: 'boolean' } },
    allowPositionals: false,
    run: async ({ values }, io) => {
      if (values.markdown && values.effective) throw new UsageError('--markdown and --effective do not go together');
      if (values.effective) {
        try {
          io.out(effectiveText(effectiveConfig(io.env), io.env.FORWARDER_CONFIG || undefined));
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          for (const problem of err.problems) io.err(`config error: ${problem}\n`);
          return 2;
        }
        return 0;
      }
      io.out(values.markdown ? configMarkdown() : configText());
      return 0;
    },
  },
  {
    name: 'status',
    summary: "show a session's incident, its last sync each way (session → incident, XSOAR close → Incydr) and any pending change; exit 1 when the session is unknown",
    usage: 'code42-xsoar-forwarder status <sessionId> [--json]',
    options: { json: { type: 'boolean' } },
    allowPositionals: true,
    run: ({ values, positionals }, io) => {
      if (positionals.length !== 1) throw new UsageError('status takes one session id');
      return withConfig(io, (config) => statusCommand(config, positionals[0] as string, values.json === true, io));
    },
  },
];

export function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `Usage: code42-xsoar-forwarder [command] [options]\n       code42-xsoar-forwarder --version\n\nCommands:\n${lines.join('\n')}\n\nRun 'code42-xsoar-forwarder <command> --help' for a command's options.\n`;
}

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--help' || first === '-h' || first === 'help') {
    io.out(usage());
    return 0;
  }
  if (first === '--version' || first === '-V' || first === 'version') {
    io.out(`code42-xsoar-forwarder ${packageVersion()}\n`);
    return 0;
  }
  const name = first === undefined || first.startsWith('-') ? 'run' : first;
  const args = first === undefined || first.startsWith('-') ? argv : rest;
  const def = COMMANDS.find((c) => c.name === name);
  if (!def) {
    io.err(`unknown command: ${name}\n\n${usage()}`);
    return 2;
  }
  let parsed;
  try {
    parsed = parseCommandArgs(def, args);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`${err.message}\n\nUsage: ${def.usage}\n`);
      return 2;
    }
    throw err;
  }
  if (parsed.values.help) {
    io.out(`Usage: ${def.usage}\n\n${def.summary}\n`);
    return 0;
  }
  try {
    return await def.run(parsed, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`${err.message}\n\nUsage: ${def.usage}\n`);
      return 2;
    }
    throw err;
  }
}

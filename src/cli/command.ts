import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Output streams of a command (tests capture them). */
export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  env: Record<string, string | undefined>;
}

export interface CommandDefinition {
  name: string;
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  allowPositionals: boolean;
  run(parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] }, io: CliIo): Promise<number>;
}

/** Bad command-line arguments: usage goes to stderr and the exit code is 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function parseCommandArgs(def: CommandDefinition, argv: string[]): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...def.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: def.allowPositionals,
      strict: true,
    });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Whether these arguments start the daemon (`run`, or no command: run is the default). */
export function isDaemonInvocation(argv: readonly string[]): boolean {
  const [first] = argv;
  if (first === undefined || first === 'run') return true;
  return first.startsWith('-') && !['--help', '-h', '--version', '-V'].includes(first);
}

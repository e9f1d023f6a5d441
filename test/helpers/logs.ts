import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/infra/logger.js';

/** A real pino logger whose JSON lines are kept in memory for assertions. */
export function captureLogger(level = 'debug'): { logger: Logger; lines: string[]; text(): string } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) lines.push(line);
      done();
    },
  });
  return { logger: createLogger({ level }, stream), lines, text: () => lines.join('\n') };
}

export function silentLogger(): Logger {
  return createLogger({ level: 'silent' });
}

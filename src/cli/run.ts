import { Daemon } from '../daemon.js';
import type { Config } from '../config/load-config.js';
import { createLogger } from '../infra/logger.js';

/** `run`: the daemon. Resolves when it has stopped after SIGTERM/SIGINT. */
export async function runCommand(config: Config): Promise<number> {
  const logger = createLogger({ level: config.log.level });
  const daemon = new Daemon({ config, logger });
  let stopping = false;
  const stopped = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, 'shutting down');
      daemon.stop().then(
        () => resolve(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  await daemon.start();
  return stopped;
}

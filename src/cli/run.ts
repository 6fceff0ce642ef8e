// `veer run`: loads the config, starts veer, and turns signals into drain (TERM/INT) and reload (HUP).

import { ConfigError } from '../config/load.js';
import { flushLogger } from '../log.js';
import { startFromConfigFile } from './start.js';

/** Resolves with the exit code; -1 means "still running", the signal handlers exit later. */
export async function runProxy(configPath: string): Promise<number> {
  const start = await startFromConfigFile(configPath);
  if (!start.started) return start.exitCode;
  const { veer, logger } = start;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting without waiting for streams');
      flushLogger(logger);
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutdown requested');
    veer.shutdown().then(
      () => process.exit(0),
      (err: Error) => {
        logger.error({ err: err.message }, 'shutdown failed');
        flushLogger(logger);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // SIGHUP re-reads the config file; an invalid file is logged and the running config keeps serving.
  process.on('SIGHUP', () => {
    logger.info({ signal: 'SIGHUP' }, 'config reload requested');
    veer.reload('config:sighup').catch((err: Error) => {
      if (!(err instanceof ConfigError)) logger.error({ err: err.message }, 'config reload failed');
    });
  });
  return -1;
}

// Start-up shared by `veer run` and `veer demo`: load the config file, make the logger, start veer; failures become exit codes.

import { ConfigError, loadConfigFile } from '../config/load.js';
import type { Config } from '../config/types.js';
import { createLogger, flushLogger, type Logger } from '../log.js';
import { Veer } from '../veer.js';
import { printConfigError } from './output.js';

export interface StartOptions {
  /** The log level; the config's own (log.level) when not given. */
  logLevel?: (config: Config) => string;
  /** Runs once the config is loaded, before veer starts (the demo starts its mock upstreams and adds a token). */
  beforeStart?: (config: Config) => Promise<void>;
}

export type StartResult =
  | { started: true; veer: Veer; config: Config; logger: Logger }
  /** 2: the config file is invalid (its problems are printed); 1: veer could not start (said on stderr). */
  | { started: false; exitCode: number };

export async function startFromConfigFile(configPath: string, options: StartOptions = {}): Promise<StartResult> {
  let config: Config;
  try {
    config = await loadConfigFile(configPath);
  } catch (err) {
    if (err instanceof ConfigError) {
      printConfigError(err);
      return { started: false, exitCode: 2 };
    }
    throw err;
  }
  await options.beforeStart?.(config);
  const logger = createLogger({ level: options.logLevel?.(config) ?? config.log.level });
  try {
    const veer = await Veer.start({ config, logger });
    return { started: true, veer, config, logger };
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'veer could not start');
    flushLogger(logger);
    process.stderr.write(`veer: cannot start: ${(err as Error).message}\n`);
    return { started: false, exitCode: 1 };
  }
}

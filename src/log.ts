// The pino logger: JSON lines on stdout, buffered off the request path, with veer's standard fields.

import { type Logger, pino } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level: string;
  /** Write synchronously (tests, CLI); the proxy buffers and flushes on exit. */
  sync?: boolean;
  destination?: NodeJS.WritableStream | number;
}

export function createLogger(options: LoggerOptions): Logger {
  const destination =
    options.destination !== undefined && typeof options.destination !== 'number'
      ? options.destination
      : pino.destination({
          dest: options.destination ?? 1,
          sync: options.sync ?? false,
          minLength: options.sync ? 0 : 4096,
        });
  return pino(
    {
      level: options.level,
      base: { service: 'veer' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: ['token', 'authorization', '*.token', '*.authorization', 'headers.authorization'],
        censor: '[redacted]',
      },
    },
    destination as pino.DestinationStream,
  );
}

/** Flushes buffered log lines; safe to call on a logger without a flushable destination. */
export function flushLogger(logger: Logger): void {
  try {
    logger.flush();
  } catch {
    // A destination that cannot flush (a plain stream) has nothing buffered here.
  }
}

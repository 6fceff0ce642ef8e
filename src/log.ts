// The pino logger: JSON lines on stdout, buffered off the request path, with veer's standard fields.

import { type Logger, pino } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level: string;
  /** Write synchronously (tests, CLI); the proxy buffers and flushes on exit. */
  sync?: boolean;
  destination?: NodeJS.WritableStream | number;
}

/** How long a buffered log line may wait before it is written. */
const FLUSH_EVERY_MS = 250;

function bufferedStdout(fd: number, sync: boolean): pino.DestinationStream {
  // Buffered: access lines go out 4 KiB at a time instead of one write per request, and a timer
  // bounds how long a quiet process (the start-up line, a rare request) holds on to them.
  const sonic = pino.destination({ dest: fd, sync, minLength: sync ? 0 : 4096 });
  if (!sync) {
    setInterval(() => {
      try {
        sonic.flush();
      } catch {
        // not open yet, or a write is in flight: the next tick writes it
      }
    }, FLUSH_EVERY_MS).unref();
  }
  return sonic;
}

export function createLogger(options: LoggerOptions): Logger {
  const destination =
    options.destination !== undefined && typeof options.destination !== 'number'
      ? (options.destination as pino.DestinationStream)
      : bufferedStdout(options.destination ?? 1, options.sync ?? false);
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
    destination,
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

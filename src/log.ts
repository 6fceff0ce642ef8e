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
  // Buffered: access lines go out ~15 KiB at a time (each async write costs tens of µs of CPU, so a
  // 4 KiB buffer still cost ~9 µs per request under load) instead of one write per request, and a timer
  // bounds how long a quiet process (the start-up line, a rare request) holds on to them.
  const sonic = pino.destination({ dest: fd, sync, minLength: sync ? 0 : 15 * 1024 });
  if (sync) return sonic;
  // The timer is armed by a write, not left running: an idle veer is not woken to flush nothing (a flush
  // of an empty buffer is still a write on the thread pool, and each wakeup costs ~55 µs here).
  let armed = false;
  // sonic-boom's count of buffered bytes (not public; when it is gone, every timer flushes, as before).
  const buffered = () => (sonic as unknown as { _len?: number })._len !== 0;
  const arm = () => {
    if (armed) return;
    armed = true;
    setTimeout(flush, FLUSH_EVERY_MS).unref();
  };
  const flush = () => {
    armed = false;
    if (!buffered()) return;
    try {
      sonic.flush();
    } catch {
      // not open yet: the timer the next write arms writes it
    }
  };
  const write = sonic.write.bind(sonic);
  sonic.write = (data: string) => {
    arm();
    return write(data);
  };
  // A write that was in flight when the timer fired leaves what came after it buffered: flush that later.
  sonic.on('write', () => {
    if (buffered()) arm();
  });
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
  for (const fn of beforeFlush.get(logger) ?? []) fn();
  try {
    logger.flush();
  } catch {
    // A destination that cannot flush (a plain stream) has nothing buffered here.
  }
}

/** One access-log line's fields, in the order they are written. */
export interface AccessFields {
  upstream: string;
  reason: string;
  bucket: number;
  method: string;
  path: string;
  proto: string;
  status: number;
  outcome: string;
  /** From dispatch to the request going out on a connection (or to its refusal); the other times start there. */
  pool_wait_ms: number;
  ttfb_ms: number | null;
  headers_ms: number | null;
  duration_ms: number;
  bytes: number;
  /** Token accounting's fields, when the answer was read (2xx SSE or JSON). */
  tokens?: AccessTokenFields | undefined;
}

export interface AccessTokenFields {
  end: string;
  events: number;
  token_events: number;
  output_tokens: number | null;
  tpot_ms: number | null;
  max_gap_ms: number | null;
}

const num = (x: number | null) => (x === null || !Number.isFinite(x) ? 'null' : String(x));

/** JSON strings of the few values fields like upstream, reason, method, protocol and outcome take. */
const quoted = new Map<string, string>();
function quote(value: string): string {
  let q = quoted.get(value);
  if (q === undefined) {
    q = JSON.stringify(value);
    // Methods come from clients: only so many are remembered.
    if (quoted.size < 64) quoted.set(value, q);
  }
  return q;
}

/** Printable ASCII without `"` and `\`: a JSON string as it stands (most paths). */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const quotePath = (path: string) => (PLAIN.test(path) ? `"${path}"` : JSON.stringify(path));

function tokenFields(t: AccessTokenFields | undefined): string {
  if (t === undefined) return '';
  return `,"end":${quote(t.end)},"events":${num(t.events)},"token_events":${num(t.token_events)},"output_tokens":${num(t.output_tokens)},"tpot_ms":${num(t.tpot_ms)},"max_gap_ms":${num(t.max_gap_ms)}`;
}

/** Writers that hold lines of their own (the recorder's batch), flushed before the logger's lines. */
const beforeFlush = new WeakMap<Logger, (() => void)[]>();

/** Has flushLogger call `fn` first, so lines held elsewhere are not lost at shutdown. */
export function beforeLogFlush(logger: Logger, fn: () => void): void {
  const list = beforeFlush.get(logger);
  if (list) list.push(fn);
  else beforeFlush.set(logger, [fn]);
}

/** Access lines gathered by `line` and written together by `flush`. */
export interface AccessLogWriter {
  line(f: AccessFields, timeMs: number): void;
  /** Writes the lines gathered since the last flush, in one write. */
  flush(): void;
}

/**
 * The access log's writer: the same JSON line pino would write at info level (level, time, service, msg,
 * fields), written straight to the logger's destination. One line per request through pino costs ~10 µs
 * here, half of it redaction, which an access line (no secrets in it: no headers, no query values beyond
 * the path) does not need. The caller (the recorder, with its batch of finished streams) says when the
 * lines go out; the timestamp is formatted once per millisecond. Honours the logger's level at each line.
 */
export function accessLogWriter(logger: Logger): AccessLogWriter {
  const stream = (logger as unknown as Record<symbol, { write(line: string): unknown }>)[pino.symbols.streamSym];
  if (!stream) {
    return { line: ({ tokens, ...f }) => logger.info({ msg: 'request', ...f, ...tokens }), flush() {} };
  }
  let pending = '';
  let lastMs = 0;
  let lastIso = '';
  return {
    line(f, timeMs) {
      if (!logger.isLevelEnabled('info')) return;
      const ms = Math.floor(timeMs);
      if (ms !== lastMs) {
        lastMs = ms;
        lastIso = new Date(ms).toISOString();
      }
      pending += `{"level":"info","time":"${lastIso}","service":"veer","msg":"request","upstream":${quote(f.upstream)},"reason":${quote(f.reason)},"bucket":${num(f.bucket)},"method":${quote(f.method)},"path":${quotePath(f.path)},"proto":${quote(f.proto)},"status":${num(f.status)},"outcome":${quote(f.outcome)},"pool_wait_ms":${num(f.pool_wait_ms)},"ttfb_ms":${num(f.ttfb_ms)},"headers_ms":${num(f.headers_ms)},"duration_ms":${num(f.duration_ms)},"bytes":${num(f.bytes)}${tokenFields(f.tokens)}}\n`;
    },
    flush() {
      if (pending === '') return;
      const out = pending;
      pending = '';
      stream.write(out);
    },
  };
}

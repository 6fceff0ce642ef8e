// A mock OpenAI-compatible inference upstream (SSE and JSON) with tunable latency and faults, for tests, demo and bench.

import { realpathSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type AnswerFormat, answerFormat, completionBody, errorBody, streamWriter } from './mock-sse.js';

/** Time to first token: a fixed value, or drawn per request. */
export type Latency =
  | number
  | { dist: 'fixed'; ms: number }
  | { dist: 'uniform'; min: number; max: number }
  | { dist: 'lognormal'; median: number; sigma: number };

export interface MockBehavior {
  /** Name echoed in responses (x-mock-upstream, model) so tests can tell upstreams apart. */
  name: string;
  ttfb: Latency;
  /** Tokens per completion. */
  tokens: number;
  tokenIntervalMs: number;
  /** Share of requests answered with a 500 (after the TTFB delay). */
  errorRate: number;
  /** Share of streams whose connection is destroyed after the first token. */
  resetRate: number;
  /** Share of requests that are accepted and never answered. */
  hangRate: number;
  /** Send SSE response headers at once (true), or together with the first token. */
  headersFirst: boolean;
  /** Each token interval is tokenIntervalMs ± up to this much (uniform). */
  tokenJitterMs: number;
  /** Share of streams that stall once, for stallMs, half-way through their tokens. */
  stallRate: number;
  stallMs: number;
  /** Share of streams that end cleanly half-way, without their terminal event. */
  truncateRate: number;
  /** Share of answers that carry an error inside a 200 (half-way through a stream; a JSON error body). */
  inbandErrorRate: number;
  /** Share of answers with no content (a stream of no tokens that ends properly; an empty JSON answer). */
  emptyRate: number;
}

export const DEFAULT_BEHAVIOR: MockBehavior = {
  name: 'mock',
  ttfb: 20,
  tokens: 8,
  tokenIntervalMs: 10,
  errorRate: 0,
  resetRate: 0,
  hangRate: 0,
  headersFirst: true,
  tokenJitterMs: 0,
  stallRate: 0,
  stallMs: 0,
  truncateRate: 0,
  inbandErrorRate: 0,
  emptyRate: 0,
};

export interface MockStats {
  requests: number;
  active: number;
  completed: number;
  /** Streams whose client (veer) went away before the end. */
  aborted: number;
  errors: number;
  resets: number;
  hangs: number;
  /** Answers sent with a fault of the token kind: truncated, in-band error, empty, stalled. */
  truncated: number;
  inbandErrors: number;
  empty: number;
  stalls: number;
  /** Arrival time (performance.now) of the last client disconnect before completion. */
  lastAbortAt: number;
}

function drawLatency(l: Latency, random: () => number): number {
  if (typeof l === 'number') return l;
  switch (l.dist) {
    case 'fixed':
      return l.ms;
    case 'uniform':
      return l.min + random() * (l.max - l.min);
    case 'lognormal': {
      const u1 = random() || Number.MIN_VALUE;
      const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * random());
      return l.median * Math.exp(l.sigma * z);
    }
  }
}

export interface MockUpstream {
  readonly url: string;
  readonly port: number;
  /** http://HOST:PORT of the h2c (prior knowledge) listener, when started with `h2: true`. */
  readonly h2Url: string | undefined;
  behavior: MockBehavior;
  readonly stats: MockStats;
  set(partial: Partial<MockBehavior>): void;
  resetStats(): void;
  close(): Promise<void>;
}

export interface MockOptions extends Partial<MockBehavior> {
  port?: number;
  host?: string;
  /** Also serve the same routes over h2c on a second port (the bench's direct HTTP/2 baseline). */
  h2?: boolean;
  h2Port?: number;
  /** The draws behind latencies and error/reset/hang rates (default Math.random); tests pass a seeded one. */
  random?: () => number;
}

/** Every count but `active` at zero. */
const zeroStats = (): Omit<MockStats, 'active'> => ({
  ...{ requests: 0, completed: 0, aborted: 0, errors: 0, resets: 0, hangs: 0, lastAbortAt: 0 },
  ...{ truncated: 0, inbandErrors: 0, empty: 0, stalls: 0 },
});

/** Cuts a response mid-stream: the TCP connection for HTTP/1.1, only the stream for HTTP/2. */
function cut(res: ServerResponse): void {
  const stream = (res as unknown as { stream?: http2.ServerHttp2Stream }).stream;
  if (stream) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  else res.socket?.destroy();
}

/**
 * Routes: POST /v1/chat/completions, /v1/completions, /v1/responses and /v1/messages (Anthropic) (SSE
 * when "stream": true; token faults per MockBehavior), GET /v1/models,
 * GET|PUT /_mock/behavior (read or change behaviour), GET /_mock/stats, any /_mock/echo (answers with
 * the request's method, headers and body), GET /_mock/bytes?n=N (N bytes).
 */
export async function startMockUpstream(options: MockOptions = {}): Promise<MockUpstream> {
  const { port = 0, host = '127.0.0.1', h2 = false, h2Port = 0, random = Math.random, ...initial } = options;
  const behavior: MockBehavior = { ...DEFAULT_BEHAVIOR, ...initial };
  const stats: MockStats = { active: 0, ...zeroStats() };
  const sockets = new Set<Socket>();

  const completions = (res: ServerResponse, body: Buffer, format: AnswerFormat) => {
    const b = mock.behavior;
    let request: { stream?: unknown; stream_options?: { include_usage?: unknown } };
    try {
      request = JSON.parse(body.toString('utf8') || '{}');
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":{"message":"invalid JSON"}}');
      return;
    }
    const stream = request.stream === true;
    stats.active++;
    let finished = false;
    const timers: NodeJS.Timeout[] = [];
    const done = (how: 'completed' | 'aborted' | 'errors' | 'resets' | 'hangs') => {
      if (finished) return;
      finished = true;
      stats.active--;
      stats[how]++;
      for (const t of timers) clearTimeout(t);
    };
    res.on('close', () => {
      if (!finished) {
        stats.lastAbortAt = performance.now();
        done('aborted');
      }
    });
    const roll = random();
    if (roll < b.hangRate) {
      stats.hangs++;
      return; // never answers; counted as aborted when the client gives up
    }
    const ttfb = drawLatency(b.ttfb, random);
    // A TTFB of 0 answers at once: setTimeout(0) would still wait for the next timer tick (~1 ms).
    const after = (ms: number, fn: () => void) => {
      if (ms <= 0) fn();
      else timers.push(setTimeout(fn, ms));
    };
    if (roll < b.hangRate + b.errorRate) {
      after(ttfb, () => {
        done('errors');
        res.writeHead(500, { 'content-type': 'application/json', 'x-mock-upstream': b.name });
        res.end(JSON.stringify({ error: { message: 'mock failure', type: 'server_error' } }));
      });
      return;
    }
    const willReset = roll < b.hangRate + b.errorRate + b.resetRate;
    // Token faults draw only when asked for, so a seeded run without them draws as before.
    const flip = (rate: number) => rate > 0 && random() < rate;
    const inband = flip(b.inbandErrorRate);
    const empty = !inband && flip(b.emptyRate);
    const truncate = !inband && !empty && flip(b.truncateRate);
    const stallAt = flip(b.stallRate) ? Math.floor(b.tokens / 2) : -1;
    const tokens = empty ? 0 : b.tokens;
    if (inband) stats.inbandErrors++;
    if (empty) stats.empty++;
    if (!stream) {
      after(ttfb, () => {
        const text = inband ? errorBody() : completionBody(format, b.name, tokens);
        done('completed');
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
          'x-mock-upstream': b.name,
        });
        res.end(text);
      });
      return;
    }
    const headers = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-mock-upstream': b.name };
    if (b.headersFirst) {
      res.writeHead(200, headers);
      res.flushHeaders();
    }
    const writer = streamWriter(format, b.name);
    const usage = request.stream_options?.include_usage === true;
    // Half-way, a stream that is to fail does so (after at least one token).
    const failAt = inband || truncate ? Math.max(1, Math.floor(b.tokens / 2)) : -1;
    let i = 0;
    const interval = () =>
      b.tokenJitterMs > 0 ? Math.max(0, b.tokenIntervalMs + (2 * random() - 1) * b.tokenJitterMs) : b.tokenIntervalMs;
    const next = () => {
      if (finished) return;
      if (i === 0 && !b.headersFirst) res.writeHead(200, headers);
      const opening = i === 0 ? writer.opening() : '';
      if (i === failAt) {
        if (truncate) stats.truncated++;
        res.end(opening + (inband ? writer.inbandError() : ''));
        done('completed');
        return;
      }
      if (i < tokens) {
        const data = opening + writer.token(i);
        i++;
        if (willReset) {
          done('resets');
          // Cut once the token has left: a reset after the first byte, not instead of it.
          res.write(data, () => cut(res));
          return;
        }
        res.write(data);
        if (i === stallAt) stats.stalls++;
        timers[0] = setTimeout(next, interval() + (i === stallAt ? b.stallMs : 0));
        return;
      }
      res.end(opening + writer.closing(tokens, usage));
      done('completed');
    };
    after(ttfb, next);
  };

  const handle = (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://mock');
    const b = mock.behavior;
    const format = req.method === 'POST' ? answerFormat(url.pathname) : undefined;
    if (format) return completions(res, body, format);
    if (url.pathname === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ object: 'list', data: [{ id: `mock-${b.name}`, object: 'model' }] }));
    }
    if (url.pathname === '/_mock/behavior') {
      if (req.method === 'PUT' || req.method === 'POST') {
        try {
          mock.set(JSON.parse(body.toString('utf8')));
        } catch (err) {
          res.writeHead(400, { 'content-type': 'application/json' });
          return res.end(JSON.stringify({ error: { message: (err as Error).message } }));
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(mock.behavior));
    }
    if (url.pathname === '/_mock/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(stats));
    }
    if (url.pathname === '/_mock/echo') {
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'x-mock-upstream': b.name,
        'x-echo-method': req.method ?? '',
        'x-echo-headers': Buffer.from(JSON.stringify(req.headers)).toString('base64'),
        'x-echo-length': String(body.length),
      });
      return res.end(body);
    }
    if (url.pathname === '/_mock/bytes') {
      const n = Math.min(Number(url.searchParams.get('n') ?? '0') || 0, 1 << 30);
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': n,
        'x-mock-upstream': b.name,
      });
      const block = Buffer.alloc(64 * 1024, 0x61);
      let left = n;
      const pump = () => {
        while (left > 0) {
          const piece = left >= block.length ? block : block.subarray(0, left);
          left -= piece.length;
          if (!res.write(piece)) return void res.once('drain', pump);
        }
        res.end();
      };
      return pump();
    }
    res.writeHead(404, { 'content-type': 'application/json', 'x-mock-upstream': b.name });
    res.end('{"error":{"message":"not found"}}');
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    stats.requests++;
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => handle(req, res, Buffer.concat(parts)));
  };
  const server = http.createServer({ keepAliveTimeout: 65_000, headersTimeout: 60_000, requestTimeout: 0 }, onRequest);
  server.maxHeadersCount = 0;
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const address = server.address() as AddressInfo;

  let h2Server: http2.Http2Server | undefined;
  const sessions = new Set<http2.Http2Session>();
  if (h2) {
    // The compatibility API gives the same req/res shapes, so one handler serves both protocols.
    h2Server = http2.createServer({ settings: { maxConcurrentStreams: 10_000 } }, (req, res) =>
      onRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse),
    );
    h2Server.on('session', (session: http2.Http2Session) => {
      sessions.add(session);
      session.on('close', () => sessions.delete(session));
      session.on('error', () => {});
    });
    const srv = h2Server;
    await new Promise<void>((resolve) => srv.listen(h2Port, host, resolve));
  }
  const h2Address = h2Server?.address() as AddressInfo | undefined;

  const mock: MockUpstream = {
    url: `http://${host}:${address.port}`,
    port: address.port,
    h2Url: h2Address ? `http://${host}:${h2Address.port}` : undefined,
    behavior,
    stats,
    set(partial) {
      mock.behavior = { ...mock.behavior, ...partial };
    },
    resetStats() {
      // `active` is the streams still open: not reset.
      Object.assign(stats, zeroStats());
    },
    async close() {
      for (const s of sockets) s.destroy();
      for (const s of sessions) s.destroy();
      const closing = [new Promise<void>((resolve) => server.close(() => resolve()))];
      if (h2Server) {
        const srv = h2Server;
        closing.push(new Promise<void>((resolve) => srv.close(() => resolve())));
      }
      await Promise.all(closing);
    },
  };
  return mock;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '9101' },
      host: { type: 'string', default: '127.0.0.1' },
      name: { type: 'string', default: 'mock' },
      ttfb: { type: 'string', default: '20' },
      tokens: { type: 'string', default: '8' },
      interval: { type: 'string', default: '10' },
      'error-rate': { type: 'string', default: '0' },
      h2: { type: 'boolean', default: false },
    },
  });
  const mock = await startMockUpstream({
    port: Number(values.port),
    host: values.host,
    name: values.name,
    ttfb: Number(values.ttfb),
    tokens: Number(values.tokens),
    tokenIntervalMs: Number(values.interval),
    errorRate: Number(values['error-rate']),
    h2: values.h2,
  });
  process.stdout.write(
    `${JSON.stringify({ msg: 'mock upstream listening', name: values.name, url: mock.url, h2_url: mock.h2Url })}\n`,
  );
  const stop = () => void mock.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  void main();
}

// Test fixtures: real mock upstreams and a real veer on 127.0.0.1 port 0, plus small HTTP/1.1 and HTTP/2 clients.

import { mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type MockOptions, type MockUpstream, startMockUpstream } from '../../bench/mock-upstream.js';
import { buildConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { createLogger, flushLogger, type Logger } from '../../src/log.js';
import type { Clock } from '../../src/measure/window.js';
import { Veer } from '../../src/veer.js';

/** A logger that keeps its lines in memory, so tests can read what veer logged. */
export function memoryLogger(level = 'info'): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  const logger = createLogger({ level, destination: sink });
  return {
    logger,
    lines: () => {
      // Access lines wait for the end of the event-loop turn; what the test asks for is what was logged.
      flushLogger(logger);
      return chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
  };
}

export function silentLogger(): Logger {
  return createLogger({ level: 'silent', sync: true });
}

/** A fresh temp directory's state and audit paths, so no test sees another's rollout state. */
export function stateFiles(): { path: string; audit_path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'veer-state-'));
  return { path: join(dir, 'state.json'), audit_path: join(dir, 'audit.jsonl') };
}

/** A raw config document (as in the YAML file) with test-friendly defaults: ports 0, no state files left behind. */
export function rawConfig(
  legacyUrl: string,
  newUrl: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const base: Record<string, unknown> = {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    upstreams: { legacy: { url: legacyUrl }, new: { url: newUrl } },
    rollout: { id: 'test-rollout', weight: 50 },
    log: { level: 'silent' },
    state: stateFiles(),
  };
  return deepMerge(base, extra);
}

export function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && prev && typeof prev === 'object' && !Array.isArray(prev)
        ? deepMerge(prev as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

export function mustBuild(doc: unknown): Config {
  const r = buildConfig(doc);
  if (!r.ok) throw new Error(`test config invalid:\n${r.problems.join('\n')}`);
  return r.config;
}

export interface Stack {
  legacy: MockUpstream;
  next: MockUpstream;
  veer: Veer;
  /** http://127.0.0.1:PORT of the proxy listener. */
  url: string;
  adminUrl: string;
  close(): Promise<void>;
}

export interface StackOptions {
  legacy?: MockOptions;
  next?: MockOptions;
  /** Merged into the raw config document. */
  config?: Record<string, unknown>;
  logger?: Logger;
  clock?: Clock;
}

/** Two mock upstreams (legacy, new) and veer in front of them. */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const legacy = await startMockUpstream({ name: 'legacy', ttfb: 1, tokens: 3, tokenIntervalMs: 1, ...options.legacy });
  const next = await startMockUpstream({ name: 'new', ttfb: 1, tokens: 3, tokenIntervalMs: 1, ...options.next });
  const config = mustBuild(rawConfig(legacy.url, next.url, options.config));
  const veer = await Veer.start({ config, logger: options.logger ?? silentLogger(), clock: options.clock });
  return {
    legacy,
    next,
    veer,
    url: `http://127.0.0.1:${veer.proxyAddress.port}`,
    adminUrl: veer.adminAddress ? `http://127.0.0.1:${veer.adminAddress.port}` : '',
    async close() {
      await veer.close();
      await Promise.all([legacy.close(), next.close()]);
    },
  };
}

export interface H2Response {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** One request over an HTTP/2 (h2c prior knowledge) session. */
export function h2Request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer | string,
): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined });
    const parts: Buffer[] = [];
    let head: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => {
      head = h;
    });
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(parts) }));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
  });
}

/** A throwaway HTTP server on 127.0.0.1 port 0 (an upstream that misbehaves on purpose). */
export async function serveHttp(
  handler: http.RequestListener,
): Promise<{ url: string; server: http.Server; close: () => Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    server,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/**
 * A port on 127.0.0.1 where nothing listens, drawn from below the kernel's ephemeral range
 * (net.ipv4.ip_local_port_range), so no listen(0) in any test worker and no outgoing connection is
 * handed it: it stays refused for a test that needs a dead upstream, and free for a server a test
 * starts on it by number (prometheus, redis). A port bound to 0 and released is neither: the next
 * listen(0) may get it back at once, and CI saw a "closed" new upstream answer 200 as the stack's
 * own legacy mock.
 */
export async function unusedPort(): Promise<number> {
  const low = ephemeralLow();
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = 10_000 + Math.floor(Math.random() * (low - 10_000));
    if (await refuses(port)) return port;
  }
  throw new Error(`no port below ${low} refused a connection in 20 tries`);
}

/** An http:// URL on 127.0.0.1 where nothing listens (see unusedPort). */
export async function closedPort(): Promise<string> {
  return `http://127.0.0.1:${await unusedPort()}`;
}

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > 11_000) return low;
  } catch {
    // not Linux: the IANA range starts at 49152
    return 49_152;
  }
  return 32_768;
}

function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

export function waitFor(predicate: () => boolean, timeoutMs = 5000, stepMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (predicate()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`condition not met within ${timeoutMs} ms`));
      setTimeout(tick, stepMs);
    };
    tick();
  });
}

// Fault fixtures for the reliability suite: upstreams that fail in one precise way, and leak counters.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import type { Veer } from '../../src/veer.js';

export type FaultKind =
  /** Accepts, reads the request, never answers. */
  | 'hang'
  /** Reads the request, then resets the connection (TCP RST) before any response byte. */
  | 'reset-before-headers'
  /** Sends the response headers and one SSE event, then resets the connection. */
  | 'reset-mid-stream'
  /** Sends the response headers, then nothing. */
  | 'headers-then-hang'
  /** Sends headers and one event, then one more event every `dripMs` (slower than veer's idle timeout). */
  | 'drip'
  /** Answers every request with a 503 JSON error at once. */
  | '5xx';

const REQUEST_LINE = /[A-Z]+ \/\S* HTTP\/1\.1\r\n/;

export interface FaultUpstream {
  url: string;
  /** Connections accepted so far. */
  accepted: number;
  /** Request heads seen so far (a request line was read). */
  requests: number;
  /** Connections open right now. */
  open(): number;
  close(): Promise<void>;
}

/**
 * A raw TCP upstream: it speaks just enough HTTP/1.1 to fail the way `kind` says, so the fault is exact
 * (a real RST, a real silence) rather than whatever a server library would do.
 */
export async function faultUpstream(kind: FaultKind, options: { dripMs?: number } = {}): Promise<FaultUpstream> {
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const state = { accepted: 0, requests: 0 };
  const server = net.createServer((socket) => {
    state.accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let seen = '';
    socket.on('data', (d: Buffer) => {
      seen += d.toString('latin1');
      // One response per complete request head; a keep-alive connection may bring several. Bodies are
      // skipped by looking for the next request line.
      for (;;) {
        const line = REQUEST_LINE.exec(seen);
        const end = line ? seen.indexOf('\r\n\r\n', line.index) : -1;
        if (!line || end < 0) break;
        seen = seen.slice(end + 4);
        state.requests++;
        respond(socket);
      }
    });
  });
  const sse = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n';
  const event = (text: string) => {
    const body = `data: ${text}\n\n`;
    return `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n`;
  };
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };
  function respond(socket: net.Socket): void {
    switch (kind) {
      case 'hang':
        return;
      case 'reset-before-headers':
        socket.resetAndDestroy();
        return;
      case 'reset-mid-stream':
        socket.write(sse + event('first'));
        later(30, () => socket.resetAndDestroy());
        return;
      case 'headers-then-hang':
        socket.write(sse);
        return;
      case 'drip': {
        socket.write(sse + event('first'));
        const drip = () => {
          if (socket.destroyed) return;
          socket.write(event('drip'));
          later(options.dripMs ?? 1000, drip);
        };
        later(options.dripMs ?? 1000, drip);
        return;
      }
      case '5xx': {
        const body = '{"error":{"message":"overloaded"}}';
        socket.write(
          `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
        );
        return;
      }
    }
  }
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get accepted() {
      return state.accepted;
    },
    get requests() {
      return state.requests;
    },
    open: () => sockets.size,
    close() {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** File descriptors this process holds (sockets included): the leak counter. */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/**
 * Fds held by veer's pooled upstream connections (two each: veer's end and the in-process upstream's).
 * They are reused, bounded by max_sockets, and kept as long as the upstream's keep-alive hint says.
 */
export function pooledFds(veer: Veer): number {
  const { legacy, new: next } = veer.proxy.ctx.upstreams;
  return 2 * (legacy.pool.stats.connected + next.pool.stats.connected);
}

/** veer_request_outcomes_total as `upstream/outcome` → count. */
export async function outcomes(veer: Veer): Promise<Record<string, number>> {
  const metric = await veer.metrics.outcomes.get();
  const out: Record<string, number> = {};
  for (const v of metric.values) out[`${v.labels.upstream}/${v.labels.outcome}`] = v.value;
  return out;
}

/** The value of a counter without labels (or the sum over its labels). */
export async function counter(veer: Veer, name: string): Promise<number> {
  const metric = veer.metrics.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const values = (await metric.get()).values;
  return values.reduce((sum, v) => sum + v.value, 0);
}

/** Waits until `read()` is back at `baseline` (within `slack`), or fails naming both numbers. */
export async function backTo(read: () => number, baseline: number, slack = 0, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let now = read();
  while (now > baseline + slack) {
    if (Date.now() > deadline) throw new Error(`expected to be back at ${baseline} (+${slack}), still ${now}`);
    await new Promise((r) => setTimeout(r, 25));
    now = read();
  }
}

/**
 * A port whose connects time out: a listening socket (python3, which every machine here has) that never
 * accepts, its one-slot accept queue filled by a connection of ours, so the kernel drops further SYNs.
 */
export async function blackhole(): Promise<{ url: string; close: () => Promise<void> }> {
  const child = spawn(
    'python3',
    [
      '-c',
      'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(120)',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  const port = Number(String(line).trim());
  const filler = await new Promise<net.Socket>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', () => {});
  });
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      filler.destroy();
      child.kill('SIGKILL');
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}

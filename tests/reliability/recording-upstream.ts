// An upstream that records the exact bytes veer sends it and answers each complete request with a small 200.

import net, { type AddressInfo } from 'node:net';
import { Veer } from '../../src/veer.js';
import { deepMerge, mustBuild, rawConfig, silentLogger } from '../helpers/stack.js';

export interface RecordedRequest {
  /** The head as sent, CRLFs and all. */
  head: string;
  /** The body bytes as framed on the wire (chunk lines included when chunked). */
  body: string;
  /** Lower-case header name → every value, in order. */
  fields: Map<string, string[]>;
}

/**
 * A plain TCP server, not node:http, so nothing between veer and the test normalises what veer wrote:
 * header case, order, duplicates and framing are seen as sent. It understands only what veer sends
 * (Content-Length or chunked bodies) and answers `200 ok` naming itself in `x-upstream`.
 */
export class RecordingUpstream {
  readonly requests: RecordedRequest[] = [];
  /** Every byte received, per connection. */
  readonly wire: string[] = [];
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(readonly name: string) {
    this.server = net.createServer((socket) => this.onConnection(socket));
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private onConnection(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    const index = this.wire.push('') - 1;
    let pending = '';
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => {
      this.wire[index] += text;
      pending += text;
      for (;;) {
        const request = takeRequest(pending);
        if (!request) break;
        pending = pending.slice(request.length);
        this.requests.push(request.request);
        const body = 'ok';
        socket.write(
          `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nx-upstream: ${this.name}\r\n\r\n${body}`,
        );
      }
    });
  }
}

/** One complete request from the front of `text`, with the characters it took; undefined until it is whole. */
function takeRequest(text: string): { request: RecordedRequest; length: number } | undefined {
  const end = text.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const head = text.slice(0, end + 4);
  const fields = new Map<string, string[]>();
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).toLowerCase();
    fields.set(name, [...(fields.get(name) ?? []), line.slice(colon + 1).trim()]);
  }
  let rest = text.slice(end + 4);
  let bodyLength = 0;
  if (fields.get('transfer-encoding')?.[0] === 'chunked') {
    const last = rest.indexOf('\r\n0\r\n\r\n');
    const first = rest.startsWith('0\r\n\r\n') ? 0 : -1;
    if (last === -1 && first === -1) return undefined;
    bodyLength = first === 0 ? 5 : last + 7;
  } else {
    bodyLength = Number(fields.get('content-length')?.[0] ?? '0');
    if (rest.length < bodyLength) return undefined;
  }
  rest = rest.slice(0, bodyLength);
  return { request: { head, body: rest, fields }, length: head.length + bodyLength };
}

/** Writes raw bytes on a fresh connection; resolves with everything that came back and whether veer closed it. */
export function rawExchange(
  port: number,
  payload: string,
  waitMs = 2000,
): Promise<{ answer: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ answer, closed: false });
    }, waitMs);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      answer += d;
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ answer, closed: true });
    });
    socket.write(payload, 'latin1');
  });
}

export interface RecordedStack {
  veer: Veer;
  port: number;
  url: string;
  legacy: RecordingUpstream;
  next: RecordingUpstream;
  /** Every request either upstream received, in arrival order per upstream. */
  all(): RecordedRequest[];
  close(): Promise<void>;
}

/**
 * veer in front of two recording upstreams: weight 0 (everything on legacy) unless the key `pinned`,
 * which an override sends to new; `extra` is merged into the raw config.
 */
export async function startRecordedStack(extra: Record<string, unknown> = {}): Promise<RecordedStack> {
  const legacy = new RecordingUpstream('legacy');
  const next = new RecordingUpstream('new');
  const config = mustBuild(
    rawConfig(
      await legacy.listen(),
      await next.listen(),
      deepMerge({ rollout: { weight: 0 }, routing: { overrides: { new: ['pinned'] } } }, extra),
    ),
  );
  const veer = await Veer.start({ config, logger: silentLogger() });
  const port = veer.proxyAddress.port;
  return {
    veer,
    port,
    url: `http://127.0.0.1:${port}`,
    legacy,
    next,
    all: () => [...legacy.requests, ...next.requests],
    async close() {
      await veer.close();
      await Promise.all([legacy.close(), next.close()]);
    },
  };
}

/** veer_rejected_requests_total by reason. */
export async function rejectedByReason(veer: Veer): Promise<Record<string, number>> {
  const values = (await veer.metrics.rejectedRequests.get()).values;
  return Object.fromEntries(values.map((v) => [String(v.labels.reason), v.value]));
}

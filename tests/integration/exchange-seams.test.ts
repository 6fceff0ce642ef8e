import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { type MockUpstream, startMockUpstream } from '../../bench/mock-upstream.js';
import type { UpstreamConfig } from '../../src/config/types.js';
import type { Outcome } from '../../src/measure/outcome.js';
import { Recorder } from '../../src/measure/recorder.js';
import { createMetrics } from '../../src/metrics/registry.js';
import { DiscardDownstream } from '../../src/proxy/downstream-discard.js';
import { Exchange, type ExchangeContext } from '../../src/proxy/exchange.js';
import { Phase } from '../../src/proxy/exchange-phase.js';
import { Upstream } from '../../src/proxy/upstream.js';
import { silentLogger, waitFor } from '../helpers/stack.js';

// The seams token accounting and shadow copies plug into: an exchange with no client (a discard
// downstream) towards a real upstream, watched by a response observer.

let mock: MockUpstream | undefined;
let upstream: Upstream | undefined;

afterEach(async () => {
  await upstream?.destroy();
  await mock?.close();
  mock = undefined;
  upstream = undefined;
});

async function setup(behavior: { tokens: number; tokenIntervalMs: number }) {
  mock = await startMockUpstream({ name: 'new', ttfb: 5, ...behavior });
  const config: UpstreamConfig = {
    url: mock.url,
    connectTimeoutMs: 2000,
    ttfbTimeoutMs: 5000,
    idleTimeoutMs: 5000,
    maxSockets: 4,
    maxPending: null,
    poolTimeoutMs: 5000,
    keepAliveTimeoutMs: 1000,
    hostHeader: 'upstream',
    tlsInsecure: false,
  };
  upstream = new Upstream('new', config);
  const recorder = new Recorder({
    metrics: createMetrics({ defaultMetrics: false }),
    logger: silentLogger(),
    accessLog: false,
    windowMs: 60_000,
    slices: 6,
    clock: () => 0,
  });
  const ctx: ExchangeContext = {
    upstreams: { legacy: upstream, new: upstream },
    recorder,
    responseHeader: false,
    fallbackOnConnectError: false,
    onFallback: () => {},
    draining: false,
    closing: false,
    clientIdleTimeoutMs: 5000,
  };
  const seen = { chunks: [] as Buffer[], ends: [] as Outcome[] };
  const downstream = new DiscardDownstream('shadow');
  const body = JSON.stringify({ model: 'm', stream: true, messages: [] });
  const exchange = new Exchange({
    ctx,
    upstream: 'new',
    reason: 'shadow',
    bucket: 0,
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
    body: Readable.from([Buffer.from(body)]),
    downstream,
    observer: { onChunk: (chunk) => seen.chunks.push(chunk), onEnd: (end) => seen.ends.push(end) },
  });
  return { exchange, downstream, seen, recorder };
}

describe('an exchange with a discard downstream and a response observer', () => {
  it('reads the whole response and drops it, showing the observer every chunk and the end once', async () => {
    const { exchange, seen, recorder } = await setup({ tokens: 5, tokenIntervalMs: 5 });
    exchange.start();
    await waitFor(() => seen.ends.length > 0);
    const text = Buffer.concat(seen.chunks).toString('utf8');
    // Five tokens and the final event (finish_reason, usage), then [DONE].
    expect(text.match(/^data: \{/gm)?.length).toBe(6);
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(seen.chunks.reduce((n, chunk) => n + chunk.length, 0)).toBe(exchange.bytesOut);
    expect(seen.ends).toEqual(['ok']);
    expect(exchange.phase).toBe(Phase.Done);
    expect(exchange.protocol).toBe('shadow');
    expect(recorder.inflight.new).toBe(0);
  });

  it('stops at once when dropped mid-stream: the upstream sees the request aborted, the end is client_abort', async () => {
    const { exchange, downstream, seen } = await setup({ tokens: 1000, tokenIntervalMs: 10 });
    exchange.start();
    await waitFor(() => seen.chunks.length > 0);
    downstream.drop();
    expect(seen.ends).toEqual(['client_abort']);
    await waitFor(() => mock!.stats.aborted === 1);
    const chunksAtDrop = seen.chunks.length;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(seen.chunks.length).toBe(chunksAtDrop);
  });
});

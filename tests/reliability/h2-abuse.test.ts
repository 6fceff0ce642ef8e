import { execFile } from 'node:child_process';
import http2 from 'node:http2';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResetBudget } from '../../src/proxy/reset-budget.js';
import { requireProgram } from '../helpers/programs.js';
import { h2Request, type Stack, startStack, waitFor } from '../helpers/stack.js';
import { ERROR_CODE, FLAG, FRAME, frame, getBlock, literal, ping, RawH2, rstStream, settings } from './h2-frames.js';
import { rejectedByReason } from './recording-upstream.js';

const run = promisify(execFile);
const NO_H2LOAD = requireProgram('h2load');
const NO_NGHTTP = requireProgram('nghttp');

/**
 * HTTP/2 abuse from one connection while a well-behaved client keeps asking on another: veer must stay
 * up, keep memory bounded, keep serving the good client, and end the abusive session with GOAWAY.
 * Frames that no real client sends are written raw over node:net; h2load and nghttp (Debian's
 * nghttp2-client) are the well-behaved real tools.
 */

const LIMITS = {
  max_concurrent_streams: 100,
  max_header_size: 8192,
  idle_timeout: '1s',
  stream_reset_burst: 100,
  stream_reset_rate: 10,
};

describe('ResetBudget', () => {
  it('allows a burst, then refills at the rate, on an injected clock', () => {
    let now = 0;
    const budget = new ResetBudget(3, 2, () => now);
    expect([budget.spend(), budget.spend(), budget.spend(), budget.spend()]).toEqual([true, true, true, false]);
    now += 499;
    expect(budget.spend()).toBe(false);
    now += 1;
    expect(budget.spend()).toBe(true);
    now += 60_000;
    expect([budget.spend(), budget.spend(), budget.spend(), budget.spend()]).toEqual([true, true, true, false]);
  });
});

describe('HTTP/2 abuse', () => {
  let stack: Stack;
  let port: number;

  beforeAll(async () => {
    stack = await startStack({
      // A short ttfb_timeout ends streams whose body never comes (408), so their sessions can idle out.
      config: { listen: LIMITS, upstreams: { legacy: { ttfb_timeout: '1s' }, new: { ttfb_timeout: '1s' } } },
      legacy: { ttfb: 0 },
      next: { ttfb: 0 },
    });
    port = Number(new URL(stack.url).port);
  });
  afterAll(() => stack.close());

  /**
   * Runs `abuse` while a separate, well-behaved session asks for /v1/models every few ms; returns how
   * that session fared and how much the process' RSS grew.
   */
  async function whileServingAnother(
    abuse: () => Promise<void>,
  ): Promise<{ ok: number; failed: number; rssMb: number }> {
    const good = http2.connect(stack.url);
    good.on('error', () => {});
    await h2Request(good, { ':path': '/v1/models' });
    const rss0 = process.memoryUsage().rss;
    let stop = false;
    let ok = 0;
    let failed = 0;
    const loop = (async () => {
      while (!stop) {
        try {
          const r = await h2Request(good, { ':path': '/v1/models' });
          if (r.status === 200) ok++;
          else failed++;
        } catch {
          failed++;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await abuse();
    // A few more rounds after the abuse, so "keeps being served" covers the aftermath too.
    const after = ok;
    await waitFor(() => ok >= after + 5, 5000);
    stop = true;
    await loop;
    good.close();
    return { ok, failed, rssMb: (process.memoryUsage().rss - rss0) / 2 ** 20 };
  }

  async function flood(conn: RawH2, next: (i: number) => Buffer, max: number, maxMs = 5000): Promise<number> {
    const deadline = Date.now() + maxMs;
    let i = 0;
    while (i < max && !conn.closed && Date.now() < deadline) {
      if (!(await conn.writeAll(next(i)))) break;
      i++;
      // The attacker shares veer's event loop here: let veer read between writes, as it would if the
      // attacker were elsewhere.
      if (i % 16 === 0) await new Promise((r) => setImmediate(r));
    }
    return i;
  }

  it('rapid reset (HEADERS + RST_STREAM, CVE-2023-44487): GOAWAY ENHANCE_YOUR_CALM, connection closed, others served', async () => {
    const flood0 = (await rejectedByReason(stack.veer)).stream_reset_flood ?? 0;
    const upstream0 = stack.legacy.stats.requests + stack.next.stats.requests;
    const conn = new RawH2(port);
    let sent = 0;
    const fared = await whileServingAnother(async () => {
      await conn.open();
      sent = await flood(
        conn,
        (i) => {
          const id = 2 * i + 1;
          return Buffer.concat([
            frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, getBlock()),
            rstStream(id),
          ]);
        },
        50_000,
      );
      await Promise.race([conn.done, new Promise((r) => setTimeout(r, 2000))]);
    });
    expect(conn.closed).toBe(true);
    expect(conn.goaway()?.errorCode).toBe(ERROR_CODE.ENHANCE_YOUR_CALM);
    // veer's budget acted, not nghttp2's own limit (1000 streams, then GOAWAY INTERNAL_ERROR and a
    // session left open until the idle timeout).
    expect(conn.goaway()!.lastStreamId).toBeLessThan(2 * 1000);
    expect(sent).toBeLessThan(50_000);
    // One session closed for the flood (streams node refused under it count apart, as stream_refused).
    expect((await rejectedByReason(stack.veer)).stream_reset_flood).toBe(flood0 + 1);
    // Reset streams rarely reach an upstream, and never more than were let through.
    expect(stack.legacy.stats.requests + stack.next.stats.requests - upstream0).toBeLessThan(1000 + fared.ok);
    expect(fared.failed).toBe(0);
    expect(fared.rssMb).toBeLessThan(100);
    await waitFor(() => stack.veer.recorder.inflight.legacy + stack.veer.recorder.inflight.new === 0);
  });

  it('a client that cancels at a normal pace keeps its session', async () => {
    const session = http2.connect(stack.url);
    session.on('error', () => {});
    const cancelOne = () =>
      new Promise<void>((resolve) => {
        const req = session.request({ ':path': '/v1/chat/completions', ':method': 'POST' });
        req.on('error', () => {});
        req.once('response', () => {
          req.close(http2.constants.NGHTTP2_CANCEL);
          resolve();
        });
        req.end('{"stream":true}');
      });
    // 90 cancels at once (within the burst of 100), a pause that earns 8 back at 10/s, then 15 more.
    for (let i = 0; i < 90; i++) await cancelOne();
    await new Promise((r) => setTimeout(r, 800));
    for (let i = 0; i < 15; i++) await cancelOne();
    const r = await h2Request(session, { ':path': '/v1/models' });
    expect(r.status).toBe(200);
    expect(session.closed || session.destroyed).toBe(false);
    session.close();
  });

  it('a client that keeps cancelling past its budget is sent away, even at a slower pace than a flood', async () => {
    const session = http2.connect(stack.url);
    session.on('error', () => {});
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
    for (let i = 0; i < 130 && !session.closed && !session.destroyed; i++) {
      await new Promise<void>((resolve) => {
        const req = session.request({ ':path': '/v1/chat/completions', ':method': 'POST' });
        req.on('error', () => resolve());
        req.on('close', () => resolve());
        req.once('response', () => req.close(http2.constants.NGHTTP2_CANCEL));
        req.end('{"stream":true}');
      });
    }
    expect(await goaway).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    session.destroy();
  });

  it("streams veer cuts itself (an upstream failing mid-stream) do not spend the client's reset budget", async () => {
    stack.legacy.set({ resetRate: 1 });
    stack.next.set({ resetRate: 1 });
    const session = http2.connect(stack.url);
    session.on('error', () => {});
    try {
      const codes: number[] = [];
      for (let i = 0; i < LIMITS.stream_reset_burst + 30; i++) {
        codes.push(
          await new Promise<number>((resolve) => {
            const req = session.request({ ':path': '/v1/chat/completions', ':method': 'POST' });
            req.on('error', () => {});
            req.on('data', () => {});
            req.on('close', () => resolve(req.rstCode));
            req.end('{"stream":true}');
          }),
        );
      }
      expect(new Set(codes)).toEqual(new Set([http2.constants.NGHTTP2_INTERNAL_ERROR]));
      stack.legacy.set({ resetRate: 0 });
      stack.next.set({ resetRate: 0 });
      expect((await h2Request(session, { ':path': '/v1/models' })).status).toBe(200);
    } finally {
      stack.legacy.set({ resetRate: 0 });
      stack.next.set({ resetRate: 0 });
      session.close();
    }
  });

  it('CONTINUATION flood (a header block that never ends): GOAWAY, connection closed, nothing forwarded', async () => {
    const upstream0 = stack.legacy.stats.requests + stack.next.stats.requests;
    const conn = new RawH2(port);
    const fared = await whileServingAnother(async () => {
      await conn.open();
      conn.write(frame(FRAME.HEADERS, FLAG.END_STREAM, 1, getBlock()));
      await flood(conn, () => frame(FRAME.CONTINUATION, 0, 1, literal('x-pad', 'p'.repeat(100))), 200_000);
      await Promise.race([conn.done, new Promise((r) => setTimeout(r, 2000))]);
    });
    expect(conn.closed).toBe(true);
    expect(conn.goaway()).toBeDefined();
    expect(stack.legacy.stats.requests + stack.next.stats.requests - upstream0).toBe(fared.ok + 1);
    expect(fared.failed).toBe(0);
    expect(fared.rssMb).toBeLessThan(100);
  });

  it('SETTINGS flood from a client that reads nothing: the session is closed, memory bounded', async () => {
    const conn = new RawH2(port, { read: false });
    const fared = await whileServingAnother(async () => {
      const others = stack.veer.front.connections.h2c;
      await conn.open();
      await waitFor(() => stack.veer.front.connections.h2c === others + 1);
      await flood(conn, () => settings([[0x3, 100]]), 200_000);
      // The client never reads, so it cannot see the close; veer's count shows it.
      await waitFor(() => stack.veer.front.connections.h2c === others, 3000);
    });
    expect(fared.failed).toBe(0);
    expect(fared.rssMb).toBeLessThan(100);
    conn.destroy();
  });

  it('PING flood: GOAWAY, connection closed', async () => {
    const conn = new RawH2(port);
    const fared = await whileServingAnother(async () => {
      await conn.open();
      // All at once, as an attacker would: the ACKs pile up faster than the socket drains.
      await flood(conn, (i) => Buffer.concat(Array.from({ length: 100 }, (_, j) => ping(BigInt(i * 100 + j)))), 2000);
      await Promise.race([conn.done, new Promise((r) => setTimeout(r, 2000))]);
    });
    expect(conn.closed).toBe(true);
    expect(conn.goaway()).toBeDefined();
    expect(fared.failed).toBe(0);
  });

  const post = (id: number) =>
    frame(
      FRAME.HEADERS,
      FLAG.END_HEADERS,
      id,
      Buffer.concat([
        literal(':method', 'POST'),
        literal(':scheme', 'http'),
        literal(':path', '/v1/completions'),
        literal(':authority', 'x'),
      ]),
    );

  it('too many concurrent streams: past the limit streams are refused, an acknowledged limit broken ends the session', async () => {
    const upstream0 = stack.legacy.stats.requests + stack.next.stats.requests;
    // Before the client acknowledges veer's SETTINGS, nghttp2 refuses the streams over the limit.
    const early = new RawH2(port);
    await early.open();
    await flood(early, (i) => post(2 * i + 1), 1000);
    await waitFor(() => early.count(FRAME.RST_STREAM) >= 900, 3000);
    const refused = early.frames.filter(
      (f) => f.type === FRAME.RST_STREAM && f.payload.readUInt32BE(0) === ERROR_CODE.REFUSED_STREAM,
    );
    expect(refused.length).toBe(1000 - LIMITS.max_concurrent_streams);
    // The accepted ones never send a body: 408 at ttfb_timeout, then idle_timeout closes the session.
    await Promise.race([early.done, new Promise((r) => setTimeout(r, 5000))]);
    expect(early.closed).toBe(true);
    // After the acknowledgement, one stream too many is a protocol error: GOAWAY, connection closed.
    const acked = new RawH2(port);
    await acked.open();
    acked.ack();
    await new Promise((r) => setTimeout(r, 50));
    await flood(acked, (i) => post(2 * i + 1), 1000);
    await Promise.race([acked.done, new Promise((r) => setTimeout(r, 3000))]);
    expect(acked.goaway()).toBeDefined();
    expect(acked.closed).toBe(true);
    // No request body ever came, so no upstream saw more than a request head, and at most the limit.
    expect(stack.legacy.stats.requests + stack.next.stats.requests - upstream0).toBeLessThanOrEqual(
      2 * LIMITS.max_concurrent_streams,
    );
    await waitFor(() => stack.veer.recorder.inflight.legacy + stack.veer.recorder.inflight.new === 0);
  });

  const pad = (n: number) => Array.from({ length: n }, (_, i) => literal(`x-pad-${i}`, 'v'.repeat(100)));

  it('a header list over max_header_size: 431 when SETTINGS are not acknowledged, refused when they are; nothing forwarded', async () => {
    const upstream0 = stack.legacy.stats.requests + stack.next.stats.requests;
    // ~15 KiB of headers in one legal frame: more than max_header_size (8 KiB).
    const block = Buffer.concat([getBlock(), ...pad(110)]);
    const unacked = new RawH2(port);
    await unacked.open();
    unacked.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, block));
    await waitFor(() => unacked.responseHeaders(1) !== undefined, 2000);
    expect(unacked.responseHeaders(1)!.includes('431')).toBe(true);
    unacked.destroy();
    const acked = new RawH2(port);
    await acked.open();
    acked.ack();
    await new Promise((r) => setTimeout(r, 50));
    acked.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, block));
    await waitFor(() => acked.frames.some((f) => f.type === FRAME.RST_STREAM || f.type === FRAME.GOAWAY), 2000);
    expect(acked.responseHeaders(1)).toBeUndefined();
    acked.destroy();
    expect(stack.legacy.stats.requests + stack.next.stats.requests).toBe(upstream0);
  });

  it('a header frame over the frame size: GOAWAY FRAME_SIZE_ERROR; node stops reading, idle_timeout closes it', async () => {
    const big = new RawH2(port);
    await big.open();
    // ~40 KiB in one frame: more than the 16 KiB frame size.
    big.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, Buffer.concat([getBlock(), ...pad(360)])));
    await waitFor(() => big.goaway() !== undefined, 2000);
    expect(big.goaway()!.errorCode).toBe(0x6 /* FRAME_SIZE_ERROR */);
    await Promise.race([big.done, new Promise((r) => setTimeout(r, 3000))]);
    expect(big.closed).toBe(true);
  });

  it.skipIf(NO_H2LOAD)('h2load, well-behaved, gets every request answered while a rapid-reset flood runs', async () => {
    const conn = new RawH2(port);
    await conn.open();
    const load = run('h2load', ['-n', '2000', '-c', '4', '-m', '10', `${stack.url}/v1/models`], { timeout: 20_000 });
    await flood(
      conn,
      (i) => {
        const id = 2 * i + 1;
        return Buffer.concat([frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, getBlock()), rstStream(id)]);
      },
      50_000,
    );
    const { stdout } = await load;
    expect(stdout).toMatch(/requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored/);
    expect(stdout).toMatch(/status codes: 2000 2xx/);
    expect(conn.goaway()?.errorCode).toBe(ERROR_CODE.ENHANCE_YOUR_CALM);
    conn.destroy();
  });

  it.skipIf(NO_NGHTTP)('nghttp sees the advertised limits in the server SETTINGS', async () => {
    const { stdout } = await run('nghttp', ['-nv', `${stack.url}/v1/models`], { timeout: 10_000 });
    expect(stdout).toMatch(/SETTINGS_MAX_CONCURRENT_STREAMS\(0x03\):100/);
    expect(stdout).toMatch(/SETTINGS_MAX_HEADER_LIST_SIZE\(0x06\):8192/);
    expect(stdout).toMatch(/:status: 200/);
  });
});

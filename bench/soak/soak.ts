// The soak driver: holds mixed traffic through a real veer process for N minutes and reports its RSS, heap and handles every 10 s.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type MockUpstream, startMockUpstream } from '../mock-upstream.js';

/**
 * Traffic, per worker, in a loop until the deadline: 40% SSE streams over HTTP/2 (multiplexed on a few
 * sessions), 30% SSE streams over HTTP/1.1 keep-alive, 30% small JSON requests (both protocols, with
 * --think-ms between them); 2% of
 * streams are abandoned by the client after the first event, to exercise the abort paths. veer runs as
 * its own process, so its RSS and handle counts are its own. The verdict is the RSS slope after warm-up
 * (least squares, MB per minute): a leak shows as a steady climb, a healthy process as a flat line.
 */

const REPO = fileURLToPath(new URL('../../', import.meta.url));

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '1000' },
    'warmup-minutes': { type: 'string' },
    'max-slope': { type: 'string', default: '2' },
    out: { type: 'string' },
    'think-ms': { type: 'string', default: '200' },
  },
});
const minutes = Number(values.minutes);
const concurrency = Number(values.concurrency);
const warmupMs = values['warmup-minutes']
  ? Number(values['warmup-minutes']) * 60_000
  : Math.min(120_000, minutes * 12_000);
const maxSlope = Number(values['max-slope']);
const thinkMs = Number(values['think-ms']);

interface Sample {
  t: number;
  rssMb: number;
  heapMb: number;
  fds: number;
  handles: number;
  inflight: number;
  requests: number;
  errors: number;
  aborts: number;
}

const counts = { requests: 0, errors: 0, aborts: 0 };
const errorKinds = new Map<string, number>();
function failed(kind: string): void {
  counts.errors++;
  errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
}

function startVeer(
  legacy: MockUpstream,
  next: MockUpstream,
): Promise<{ child: ChildProcess; proxy: string; admin: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'veer-soak-'));
  const config = {
    listen: { host: '127.0.0.1', port: 0, max_connections: 20_000, max_concurrent_streams: 1000 },
    admin: { host: '127.0.0.1', port: 0 },
    upstreams: { legacy: { url: legacy.url }, new: { url: next.url } },
    rollout: { id: 'soak', weight: 50 },
    // The guard judges, but a 1% error budget is never breached by this traffic.
    slo: { min_samples: 100, rules: ['error_rate <= 5%'] },
    // No access log: a line per request would measure the pipe, not veer.
    log: { level: 'info', access: false },
    state: { path: join(dir, 'state.json'), audit_path: join(dir, 'audit.jsonl') },
  };
  const path = join(dir, 'veer.json');
  writeFileSync(path, JSON.stringify(config));
  const child = spawn(process.execPath, ['--import', 'tsx', `${REPO}src/cli/main.ts`, 'run', '--config', path], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let buffered = '';
    child.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString('utf8');
      for (const line of buffered.split('\n').slice(0, -1)) {
        try {
          const l = JSON.parse(line) as { msg?: string; proxy?: string; admin?: string };
          if (l.msg === 'veer started' && l.proxy && l.admin)
            resolve({ child, proxy: `http://${l.proxy}`, admin: `http://${l.admin}` });
        } catch {}
      }
      buffered = buffered.slice(buffered.lastIndexOf('\n') + 1);
    });
    child.once('exit', (code) => reject(new Error(`veer exited with ${code} before it started`)));
  });
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

async function scrape(admin: string): Promise<{ heapMb: number; handles: number; inflight: number }> {
  const text = await new Promise<string>((resolve, reject) => {
    http
      .get(`${admin}/metrics`, { agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
  const sum = (name: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
      .reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  return {
    heapMb: sum('veer_nodejs_heap_size_used_bytes') / 2 ** 20,
    handles: sum('veer_nodejs_active_handles'),
    inflight: sum('veer_inflight_streams'),
  };
}

/** Least-squares slope of y over t (ms), in units per minute. */
function slopePerMinute(points: { t: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mt = points.reduce((s, p) => s + p.t, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - mt) * (p.y - my);
    den += (p.t - mt) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 60_000;
}

const user = () => `user-${Math.floor(Math.random() * 10_000)}`;
const STREAM_BODY = JSON.stringify({ stream: true, messages: [{ role: 'user', content: 'hello' }] });
const SMALL_BODY = JSON.stringify({ messages: [{ role: 'user', content: 'hello' }] });

async function main(): Promise<void> {
  // Streams of 20 tokens 50 ms apart (about a second each), answers after 5-40 ms.
  const shape = { ttfb: { dist: 'uniform', min: 5, max: 40 } as const, tokens: 20, tokenIntervalMs: 50 };
  const legacy = await startMockUpstream({ name: 'legacy', ...shape });
  const next = await startMockUpstream({ name: 'new', ...shape });
  const veer = await startVeer(legacy, next);
  const pid = veer.child.pid!;
  const agent = new http.Agent({ keepAlive: true, maxSockets: Math.ceil(concurrency * 0.6) });
  const sessions: http2.ClientHttp2Session[] = [];
  const session = (i: number) => {
    const k = i % 10;
    let s = sessions[k];
    if (!s || s.closed || s.destroyed) {
      s = http2.connect(veer.proxy);
      s.on('error', () => {});
      sessions[k] = s;
    }
    return s;
  };

  const h2Once = (i: number, path: string, body: string, abandon: boolean) =>
    new Promise<void>((resolve) => {
      const req = session(i).request({
        ':method': 'POST',
        ':path': path,
        'x-user-id': user(),
        'content-type': 'application/json',
      });
      let status = 0;
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', () => {
        if (abandon) {
          counts.aborts++;
          req.close(http2.constants.NGHTTP2_CANCEL);
        }
      });
      req.on('error', () => {});
      req.on('close', () => {
        if (abandon) return resolve();
        if (status === 200 && req.rstCode === 0) counts.requests++;
        else failed(`h2 ${status} rst=${req.rstCode}`);
        resolve();
      });
      req.end(body);
    });

  const h1Once = (path: string, body: string, abandon: boolean) =>
    new Promise<void>((resolve) => {
      const req = http.request(`${veer.proxy}${path}`, {
        method: 'POST',
        agent,
        headers: { 'x-user-id': user(), 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      });
      req.on('response', (res) => {
        res.on('data', () => {
          if (abandon) {
            counts.aborts++;
            req.destroy();
          }
        });
        res.on('end', () => {
          if (res.statusCode === 200) counts.requests++;
          else failed(`h1 ${res.statusCode}`);
          resolve();
        });
        res.on('error', () => resolve());
      });
      req.on('error', (err) => {
        if (!abandon) failed(`h1 ${err.message}`);
        resolve();
      });
      req.end(body);
    });

  const deadline = Date.now() + minutes * 60_000;
  const worker = async (i: number) => {
    const kind = i % 10; // 0-3 h2 SSE, 4-6 h1 SSE, 7-9 small
    while (Date.now() < deadline) {
      const abandon = Math.random() < 0.02;
      if (kind <= 3) await h2Once(i, '/v1/chat/completions', STREAM_BODY, abandon);
      else if (kind <= 6) await h1Once('/v1/chat/completions', STREAM_BODY, abandon);
      else {
        if (kind === 7) await h2Once(i, '/v1/chat/completions', SMALL_BODY, false);
        else await h1Once('/v1/chat/completions', SMALL_BODY, false);
        // Small requests come from users, not from a benchmark: a pause between them holds the load steady.
        await new Promise((r) => setTimeout(r, thinkMs));
      }
    }
  };

  const t0 = Date.now();
  const samples: Sample[] = [];
  const report = async () => {
    const m = await scrape(veer.admin).catch(() => ({ heapMb: Number.NaN, handles: Number.NaN, inflight: Number.NaN }));
    const s: Sample = {
      t: Date.now() - t0,
      rssMb: rssMb(pid),
      heapMb: m.heapMb,
      fds: readdirSync(`/proc/${pid}/fd`).length,
      handles: m.handles,
      inflight: m.inflight,
      ...counts,
    };
    const prev = samples.at(-1);
    samples.push(s);
    const rps = prev ? ((s.requests - prev.requests) * 1000) / (s.t - prev.t) : 0;
    process.stdout.write(
      `${JSON.stringify({
        t_s: Math.round(s.t / 1000),
        rps: Math.round(rps),
        rss_mb: +s.rssMb.toFixed(1),
        heap_mb: +s.heapMb.toFixed(1),
        fds: s.fds,
        handles: s.handles,
        inflight: s.inflight,
        requests: s.requests,
        errors: s.errors,
        aborts: s.aborts,
      })}\n`,
    );
  };
  await report();
  const timer = setInterval(() => void report(), 10_000);
  await Promise.all(Array.from({ length: concurrency }, (_, i) => worker(i)));
  clearInterval(timer);
  await report();

  const after = samples.filter((s) => s.t >= warmupMs);
  const rssSlope = slopePerMinute(after.map((s) => ({ t: s.t, y: s.rssMb })));
  const heapSlope = slopePerMinute(after.map((s) => ({ t: s.t, y: s.heapMb })));
  const fdSlope = slopePerMinute(after.map((s) => ({ t: s.t, y: s.fds })));
  const summary = {
    minutes,
    concurrency,
    warmup_s: warmupMs / 1000,
    requests: counts.requests,
    errors: counts.errors,
    error_kinds: Object.fromEntries(errorKinds),
    client_aborts: counts.aborts,
    rss_mb: {
      first_after_warmup: after[0]?.rssMb,
      last: after.at(-1)?.rssMb,
      max: Math.max(...samples.map((s) => s.rssMb)),
    },
    rss_slope_mb_per_min: +rssSlope.toFixed(3),
    heap_slope_mb_per_min: +heapSlope.toFixed(3),
    fd_slope_per_min: +fdSlope.toFixed(3),
    flat: Math.abs(rssSlope) <= maxSlope,
  };
  process.stdout.write(`${JSON.stringify({ summary })}\n`);
  if (values.out) writeFileSync(values.out, JSON.stringify({ summary, samples }, null, 2));

  for (const s of sessions) s?.close();
  agent.destroy();
  veer.child.kill('SIGTERM');
  await new Promise((r) => veer.child.once('exit', r));
  await Promise.all([legacy.close(), next.close()]);
  process.exit(summary.flat && counts.errors === 0 ? 0 : 1);
}

main().catch((err) => {
  process.stderr.write(`soak: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});

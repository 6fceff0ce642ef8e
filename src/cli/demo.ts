// `veer demo` (npm start): two bundled mock upstreams, veer on the given config, and a little traffic to show the split.

import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { request } from 'undici';
import type { Config } from '../config/types.js';
import { startMockUpstream } from '../demo/mock-upstream.js';
import { startFromConfigFile } from './start.js';

type MockUpstream = Awaited<ReturnType<typeof startMockUpstream>>;

/** The demo's operator token: says what it is, so it is not mistaken for the rollout id (`demo-…`). */
export function demoToken(): string {
  return `veer-demo-token-${randomBytes(12).toString('hex')}`;
}

/**
 * Where the demo keeps its state and audit files: a new temporary directory each run (removed on
 * exit), so a demo never restores a state left by an earlier one; or `stateDir` when given, kept.
 */
function demoStateDir(stateDir: string | undefined): { dir: string; fresh: boolean; remove: () => void } {
  if (stateDir) {
    const dir = resolve(stateDir);
    mkdirSync(dir, { recursive: true });
    return { dir, fresh: false, remove: () => {} };
  }
  const dir = mkdtempSync(join(tmpdir(), 'veer-demo-'));
  return { dir, fresh: true, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function runDemo(configPath: string, options: { stateDir?: string } = {}): Promise<number> {
  const mocks: MockUpstream[] = [];
  let token: string | undefined;
  const state = demoStateDir(options.stateDir);
  const start = await startFromConfigFile(configPath, {
    logLevel: () => process.env.VEER_LOG_LEVEL ?? 'warn',
    beforeStart: async (config) => {
      config.state = { path: join(state.dir, 'veer-state.json'), auditPath: join(state.dir, 'veer-audit.jsonl') };
      mocks.push(...(await startMocks(config)));
      // The demo needs an operator token so a newcomer can try `veer kill`; a real config names its own.
      if (config.admin.tokens.length === 0) {
        token = process.env.VEER_ADMIN_TOKEN || demoToken();
        config.admin.tokens = [{ name: 'demo', role: 'operator', secret: token }];
      }
    },
  });
  if (!start.started) {
    await Promise.all(mocks.map((mock) => mock.close()));
    state.remove();
    return start.exitCode;
  }
  const { veer, config } = start;
  const [legacy, next] = mocks as [MockUpstream, MockUpstream];
  const proxy = `http://127.0.0.1:${veer.proxyAddress.port}`;
  const admin = veer.adminAddress ? `http://127.0.0.1:${veer.adminAddress.port}` : undefined;
  process.stdout.write(
    `veer demo: proxy ${proxy}  admin ${admin ?? '(off)'}\n` +
      `  legacy mock ${legacy.url}, new mock ${next.url}, rollout "${config.rollout.id}" at ${veer.table.weightBp / 100}% on new\n` +
      `  try: curl -N -H 'x-user-id: alice' -d '{"stream":true}' ${proxy}/v1/chat/completions\n` +
      (admin ? `  dashboard: ${admin}/ (paste the token below to act from it)\n` : '') +
      (token ? `  operate it from another terminal: export VEER_ADMIN_TOKEN=${token}; npm run veer -- status\n` : '') +
      `  state and audit log: ${state.dir}${state.fresh ? ' (fresh, removed on exit; --state-dir DIR keeps them)' : ''}\n` +
      `  sending demo traffic from 200 simulated users; Ctrl-C to stop\n\n`,
  );

  const tally = { legacy: 0, new: 0, other: 0 };
  let running = true;
  const user = async (i: number) => {
    while (running) {
      try {
        const res = await request(`${proxy}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-user-id': `user-${i}` },
          body: JSON.stringify({ model: 'demo', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
        });
        await res.body.dump({ limit: Number.MAX_SAFE_INTEGER });
        const side = res.headers['x-veer-upstream'];
        if (side === 'legacy' || side === 'new') tally[side]++;
        else tally.other++;
      } catch {
        tally.other++;
      }
      await new Promise((r) => setTimeout(r, 500 + Math.random() * 1000));
    }
  };
  const users = Array.from({ length: 200 }, (_, i) => user(i));
  const report = setInterval(() => {
    const total = tally.legacy + tally.new;
    const share = total ? ((100 * tally.new) / total).toFixed(1) : '0.0';
    const s = veer.recorder.windows;
    const p95 = (w: typeof s.new) => {
      const v = w.snapshot().ttfbQuantile(0.95);
      return v === undefined ? '   -  ' : `${v.toFixed(0).padStart(4)}ms`;
    };
    process.stdout.write(
      `requests legacy ${String(tally.legacy).padStart(6)}  new ${String(tally.new).padStart(6)}  ` +
        `share on new ${share.padStart(5)}% (weight ${veer.table.weightBp / 100}%, ${veer.table.state})  ` +
        `TTFB p95 legacy ${p95(s.legacy)} new ${p95(s.new)}${tally.other ? `  errors ${tally.other}` : ''}\n`,
    );
  }, 2000);

  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  running = false;
  clearInterval(report);
  await Promise.allSettled(users);
  await veer.shutdown(2000);
  await Promise.all([legacy.close(), next.close()]);
  state.remove();
  return 0;
}

/** The two bundled mock upstreams, on the ports the config's upstream URLs name; new answers sooner. */
async function startMocks(config: Config): Promise<[MockUpstream, MockUpstream]> {
  const port = (url: string) => Number(new URL(url).port);
  const legacy = await startMockUpstream({
    name: 'legacy',
    port: port(config.upstreams.legacy.url),
    ttfb: { dist: 'lognormal', median: 120, sigma: 0.3 },
    tokens: 20,
    tokenIntervalMs: 25,
  });
  const next = await startMockUpstream({
    name: 'new',
    port: port(config.upstreams.new.url),
    ttfb: { dist: 'lognormal', median: 80, sigma: 0.3 },
    tokens: 20,
    tokenIntervalMs: 15,
  });
  return [legacy, next];
}

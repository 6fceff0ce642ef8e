// The operator CLI as a real child process against a real veer: every subcommand, text and --json, and its exit codes.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MockUpstream, startMockUpstream } from '../../bench/mock-upstream.js';
import { loadConfigFile } from '../../src/config/load.js';
import { Veer } from '../../src/veer.js';
import { runVeerCli } from '../helpers/process.js';
import { silentLogger, stateFiles, unusedPort, waitFor } from '../helpers/stack.js';

const OPERATOR = 'oncall-secret-0123456789';
const READER = 'viewer-secret-0123456789';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `veer <args>` as a child process; asynchronous, because the veer it talks to runs in this process. */
const veer = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> => runVeerCli(args, env);

describe('veer operator commands against a running veer', () => {
  let legacy: MockUpstream;
  let next: MockUpstream;
  let proxy: Veer;
  let dir: string;
  let configFile: string;
  let opToken: string;
  let adminUrl: string;
  let proxyUrl: string;
  const state = stateFiles();
  /** The whole config file; `rule` and `weight` vary for the reload test. */
  let configText: (rule?: string, weight?: number) => string;

  const api = async (path: string) => {
    const res = await request(`${adminUrl}${path}`, { headers: { authorization: `Bearer ${OPERATOR}` } });
    return (await res.body.json()) as { rollout?: Record<string, unknown> };
  };
  /** Connection flags for most runs: explicit address and the operator token file. */
  const op = () => ['--admin', adminUrl, '--token-file', opToken];

  beforeAll(async () => {
    legacy = await startMockUpstream({ name: 'legacy', ttfb: 1, tokens: 2, tokenIntervalMs: 1 });
    next = await startMockUpstream({ name: 'new', ttfb: 1, tokens: 2, tokenIntervalMs: 1 });
    dir = mkdtempSync(join(tmpdir(), 'veer-cli-op-'));
    opToken = join(dir, 'oncall.token');
    writeFileSync(opToken, `${OPERATOR}\n`);
    writeFileSync(join(dir, 'viewer.token'), `${READER}\n`);
    // A fixed admin port written into the file, so `--config` alone tells the CLI where veer listens.
    const adminPort = await unusedPort();
    configText = (rule = 'ttfb_p95 <= 550ms', weight) =>
      [
        'listen: {host: 127.0.0.1, port: 0}',
        `upstreams: {legacy: {url: "${legacy.url}"}, new: {url: "${next.url}"}}`,
        `rollout: {id: cli-test, ${weight === undefined ? '' : `weight: ${weight}, `}steps: [1, 5, 25, 100], step_min_duration: 1h}`,
        'routing: {overrides: {new: [tester]}}',
        `slo: {interval: 100ms, min_samples: 5, rules: ["${rule}", "error_rate <= 1%"]}`,
        'admin:',
        `  host: 127.0.0.1`,
        `  port: ${adminPort}`,
        `  tokens: [{name: oncall, file: "${opToken}"}, {name: viewer, file: "${join(dir, 'viewer.token')}", role: read}]`,
        `state: ${JSON.stringify(state)}`,
        'log: {level: silent}',
        '',
      ].join('\n');
    configFile = join(dir, 'veer.yaml');
    writeFileSync(configFile, configText());
    proxy = await Veer.start({ config: await loadConfigFile(configFile), logger: silentLogger() });
    adminUrl = `http://127.0.0.1:${proxy.adminAddress!.port}`;
    proxyUrl = `http://127.0.0.1:${proxy.proxyAddress.port}`;
  });
  afterAll(async () => {
    await proxy?.close();
    await Promise.all([legacy?.close(), next?.close()]);
  });

  it('status shows rollout, step, latch, last change, both windows and every rule, finding veer through --config', async () => {
    // Traffic for both windows: "tester" is pinned to new, the other keys land on legacy at 1 %.
    const send = async (key: string) => {
      const res = await request(`${proxyUrl}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-user-id': key },
        body: '{"stream":true}',
      });
      await res.body.text();
    };
    for (let i = 0; i < 8; i++) await Promise.all([send('tester'), send(`user-${i}`)]);
    await waitFor(() => proxy.controller.lastVerdict?.rules.every((r) => r.status === 'pass') === true);

    // The overrides part of the status is shown to a token holder only (a read-only token will do).
    const r = await veer(['status', '--config', configFile, '--token-file', join(dir, 'viewer.token')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^rollout +cli-test$/m);
    expect(r.stdout).toMatch(/^state +progressing$/m);
    expect(r.stdout).toMatch(/^weight +1% /m);
    expect(r.stdout).toMatch(/^step +1 of 4 \(steps 1%, 5%, 25%, 100%\)$/m);
    expect(r.stdout).toMatch(/^latch +off$/m);
    expect(r.stdout).toMatch(/^last change +\S+Z +start by config: rollout cli-test started/m);
    expect(r.stdout).toMatch(/^upstream +p50 +p95 +p99 +errors +samples +in-flight +waiting +url$/m);
    expect(r.stdout).toMatch(
      new RegExp(`^new +\\d+\\.\\d ms +\\d+\\.\\d ms +\\d+\\.\\d ms +0\\.00% +8 +0 +0 +${next.url}$`, 'm'),
    );
    expect(r.stdout).toMatch(/^legacy +\d+\.\d ms .* 0\.00% +8 +0 /m);
    expect(r.stdout).toMatch(/^ttfb_p95 <= 550ms +\d+\.\d ms +550\.0 ms +8\/5 +PASS$/m);
    expect(r.stdout).toMatch(/^error_rate <= 1% +0\.00% +1\.00% +8\/5 +PASS$/m);
    expect(r.stdout).toMatch(/^overrides pinned to new: +tester$/m);
  });

  it('status --json prints the API reply itself', async () => {
    const r = await veer(['status', '--json', '--admin', adminUrl]);
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout);
    const direct = await api('/api/status');
    expect(body.rollout).toEqual(direct.rollout);
    expect(body.upstreams.new).toMatchObject({ samples: 8, url: next.url });
    expect(body.slo.rules.map((x: { status: string }) => x.status)).toEqual(['pass', 'pass']);
  });

  it('runs a rollout: promote, kill, a refused weight, resume, weight, rollback — each applied when the command exits', async () => {
    let r = await veer(['promote', ...op()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^weight +5% /m);
    expect((await api('/api/status')).rollout).toMatchObject({ weight_percent: 5, step: 1 });

    // The token from the environment this time.
    r = await veer(['kill', '--reason', 'pager 4411', '--admin', adminUrl], { VEER_ADMIN_TOKEN: OPERATOR });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^state +killed \(pager 4411\)$/m);
    expect((await api('/api/status')).rollout).toMatchObject({
      state: 'killed',
      weight_percent: 0,
      kill_reason: 'pager 4411',
    });

    r = await veer(['weight', '25', '--reason', 'too early', ...op()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'veer: 409 conflict: cannot set the weight: the rollout is killed; resume it first (veer resume)\n',
    );
    expect(r.stdout).toBe('');

    r = await veer(['resume', '--reason', 'fixed upstream', ...op()]);
    expect(r.code).toBe(0);
    expect((await api('/api/status')).rollout).toMatchObject({ state: 'progressing', weight_percent: 5 });

    r = await veer(['weight', '25%', '--reason', 'widen', '--json', ...op()]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).rollout).toMatchObject({ weight_percent: 25, step: 2, state: 'progressing' });

    r = await veer(['rollback', '-r', 'p95 creeping', ...op()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^state +rolled_back$/m);
    expect((await api('/api/status')).rollout).toMatchObject({ state: 'rolled_back', weight_percent: 0 });
  });

  it('audit lists the newest entries with actor, action, change and reason; --json carries the whole entries', async () => {
    const [text, json] = await Promise.all([
      veer(['audit', '--limit', '2', '--admin', adminUrl]),
      veer(['audit', '--limit', '10', '--json', '--admin', adminUrl]),
    ]);
    expect(text.code).toBe(0);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^time +actor +action +change +reason$/);
    expect(lines[1]).toMatch(/^\S+Z +admin:oncall +rollback +progressing 25% -> rolled_back 0% +p95 creeping$/);
    expect(lines[2]).toMatch(/^\S+Z +admin:oncall +weight +progressing 5% -> progressing 25% +widen$/);

    expect(json.code).toBe(0);
    const entries = JSON.parse(json.stdout).entries as { action: string }[];
    expect(entries.length).toBeLessThanOrEqual(10);
    expect(entries.find((e) => e.action === 'kill')).toMatchObject({
      actor: 'admin:oncall',
      reason: 'pager 4411',
      after: { state: 'killed', weight_percent: 0 },
    });
  });

  it('overrides set pins keys to each side, rm unpins them, and the bare command lists them', async () => {
    let r = await veer(['overrides', 'set', '--new', 'u1', 'u2', '--legacy', 'u3', '--reason', 'qa cohort', ...op()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('overrides pinned to new:    tester, u1, u2\noverrides pinned to legacy: u3\n');
    expect(await api('/api/overrides')).toEqual({ new: ['tester', 'u1', 'u2'], legacy: ['u3'] });

    r = await veer(['overrides', 'rm', 'u1', 'u3', '--reason', 'qa done', '--json', ...op()]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ new: ['tester', 'u2'], legacy: [] });

    r = await veer(['overrides', '--admin', adminUrl, '--token-file', join(dir, 'viewer.token')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('overrides pinned to new:    tester, u2\noverrides pinned to legacy: (none)\n');
    // Routing keys are never listed without a token, whatever admin.read_requires_token says.
    r = await veer(['overrides', '--admin', adminUrl]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/401 unauthorized/);
  });

  it('reload reports the changed fields; an invalid file is refused with its problems and exit 1', async () => {
    writeFileSync(configFile, configText('ttfb_p95 <= 600ms'));
    let r = await veer(['reload', '--reason', 'looser p95', ...op()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^config reloaded \(rollout cli-test\)$/m);
    expect(r.stdout).toMatch(/^changed: +.*slo\.rules/m);
    expect(r.stdout).toMatch(/^restart required: +\(none\)$/m);

    writeFileSync(configFile, configText('ttfb_p95 <= 600ms', 150));
    r = await veer(['reload', ...op()]);
    writeFileSync(configFile, configText('ttfb_p95 <= 600ms'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^veer: 400 bad_config: .*the running config is unchanged\n {2}rollout\.weight: must be <= 100\n$/,
    );
    expect(proxy.config.slo.rules[0]!.text).toMatch(/600ms/);
  });

  it('without a token or with a read-only one, a change is refused: exit 1 with the API code and message', async () => {
    const before = proxy.controller.snapshot.version;
    const [none, reader] = await Promise.all([
      veer(['kill', '--reason', 'x', '--admin', adminUrl]),
      veer(['kill', '--reason', 'x', '--admin', adminUrl], { VEER_ADMIN_TOKEN: READER }),
    ]);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe('veer: 401 unauthorized: send Authorization: Bearer <token>\n');
    expect(reader.code).toBe(1);
    expect(reader.stderr).toBe('veer: 403 forbidden: token "viewer" may read but not change the rollout\n');
    expect(proxy.controller.snapshot.version).toBe(before);
  });

  it('exits 3 and names the address when no admin API answers there', async () => {
    const port = await unusedPort();
    const r = await veer(['status'], { VEER_ADMIN: `http://127.0.0.1:${port}` });
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`veer: cannot reach the admin API at http://127.0.0.1:${port} (ECONNREFUSED`);
    expect(r.stderr).toContain('address from VEER_ADMIN');
  });

  it('usage errors exit 2 with the synopsis and send nothing', async () => {
    const before = proxy.controller.snapshot.version;
    const runs = await Promise.all([
      veer(['kill', ...op()]),
      veer(['weight', 'lots', '--reason', 'x', ...op()]),
      veer(['overrides', 'set', 'u9', '--reason', 'x', ...op()]),
      veer(['audit', '--limit', 'ten', ...op()]),
      veer(['status', '--frobnicate', ...op()]),
    ]);
    expect(runs.map((r) => r.code)).toEqual([2, 2, 2, 2, 2]);
    expect(runs[0]!.stderr).toBe(
      'veer: --reason is required (a short text for the audit log)\nusage: veer kill --reason R (veer help for all options)\n',
    );
    expect(runs[1]!.stderr).toContain('PERCENT must be a number such as 25 or 2.5, got "lots"');
    expect(runs[2]!.stderr).toContain('"u9": put keys after --new or --legacy');
    expect(runs[3]!.stderr).toContain('--limit must be a whole number, got "ten"');
    expect(runs[4]!.stderr).toContain("Unknown option '--frobnicate'");
    expect(proxy.controller.snapshot.version).toBe(before);
  });

  it('check-config prints the initial weight: the first step when steps are set and no weight is', async () => {
    const r = await veer(['check-config', configFile]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${configFile}: ok (rollout cli-test, initial weight 1%, 2 SLO rules)\n`);
  });
});

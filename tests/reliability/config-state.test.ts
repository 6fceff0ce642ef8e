import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildConfig, ConfigError, loadConfigFile } from '../../src/config/load.js';
import { StateFileError } from '../../src/state/store.js';
import { Veer } from '../../src/veer.js';
import { spawnVeer } from '../helpers/process.js';
import { mustBuild, rawConfig, type Stack, silentLogger, startStack } from '../helpers/stack.js';

/**
 * Config and state faults. A bad config names every field at fault and why; a state file that cannot be
 * written refuses the admin change with 503 and leaves the old file whole; an unreadable state file
 * stops start-up with a message that says what to do.
 */

const OPERATOR = 'operator-token-0123456789';
let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

function problems(doc: Record<string, unknown>): string[] {
  const r = buildConfig(rawConfig('http://127.0.0.1:1', 'http://127.0.0.1:2', doc));
  return r.ok ? [] : r.problems;
}

describe('config faults name the field and the reason', () => {
  it.each([
    ['a wrong type', { listen: { port: '8080' } }, /^listen\.port: must be integer/],
    [
      'a number out of range',
      { listen: { max_concurrent_streams: 0 } },
      /^listen\.max_concurrent_streams: must be >= 1/,
    ],
    [
      'a bad duration',
      { upstreams: { new: { ttfb_timeout: 'soon' } } },
      /^upstreams\.new\.ttfb_timeout: must be a duration/,
    ],
    ['a bad enum', { slo: { on_breach: 'panic' } }, /^slo\.on_breach: must be one of/],
    ['an unknown key', { listen: { prot: 8080 } }, /^listen\.prot: unknown field/],
    ['an unknown top-level key', { listner: {} }, /^listner: unknown field/],
    [
      'a URL that is not http(s)',
      { upstreams: { legacy: { url: 'ftp://x' } } },
      /^upstreams\.legacy\.url: must be an http\(s\) URL/,
    ],
    [
      'an unreadable TLS file',
      { listen: { tls: { cert: '/nonexistent/c.pem', key: '/nonexistent/k.pem' } } },
      /^listen\.tls\.cert: cannot read/,
    ],
    [
      'an unreadable token file',
      { admin: { tokens: [{ name: 'a', file: '/nonexistent/token' }] } },
      /^admin\.tokens\[0\]/,
    ],
    [
      'a stream reset limit out of range',
      { listen: { stream_reset_burst: 0 } },
      /^listen\.stream_reset_burst: must be >= 1/,
    ],
  ])('%s', (_name, doc, line) => {
    const found = problems(doc as Record<string, unknown>);
    expect(
      found.some((p) => line.test(p)),
      found.join('\n'),
    ).toBe(true);
  });

  it('reports every problem at once, one line each', () => {
    const found = problems({ listen: { port: -1, idle_timeout: 'x' }, rollout: { weight: 101 } });
    expect(found.length).toBeGreaterThanOrEqual(3);
    for (const p of found) expect(p).toMatch(/^[a-z_.[\]0-9]+: /);
  });

  it('names a missing, unreadable or unparsable config file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'veer-cfg-'));
    await expect(loadConfigFile(join(dir, 'missing.yaml'))).rejects.toThrow(/missing\.yaml.*ENOENT/);
    mkdirSync(join(dir, 'a-directory.yaml'));
    await expect(loadConfigFile(join(dir, 'a-directory.yaml'))).rejects.toThrow(/EISDIR/);
    writeFileSync(join(dir, 'broken.yaml'), 'upstreams: [unclosed');
    const err = await loadConfigFile(join(dir, 'broken.yaml')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems[0]).toMatch(/^\(file\): cannot parse/);
  });
});

/** veer with an operator token and its state file in a fresh directory. */
async function stackWithState(): Promise<{ s: Stack; statePath: string; tmpPath: string; api: typeof fetch }> {
  const dir = mkdtempSync(join(tmpdir(), 'veer-state-fault-'));
  writeFileSync(join(dir, 'token'), OPERATOR);
  const statePath = join(dir, 'state.json');
  stack = await startStack({
    config: {
      state: { path: statePath, audit_path: join(dir, 'audit.jsonl') },
      admin: { tokens: [{ name: 'op', file: join(dir, 'token') }] },
      rollout: { weight: 10 },
    },
  });
  const s = stack;
  const api = ((path: string, init: RequestInit = {}) =>
    fetch(`${s.adminUrl}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/json' },
    })) as typeof fetch;
  // The store writes `.<name>.<pid>.tmp` next to the file, then renames it over.
  return { s, statePath, tmpPath: join(dirname(statePath), `.${basename(statePath)}.${process.pid}.tmp`), api };
}

describe('state faults', () => {
  it('a full disk (ENOSPC): the change is refused with 503, the state file is untouched, routing unchanged', async () => {
    const { s, statePath, tmpPath, api } = await stackWithState();
    const before = readFileSync(statePath, 'utf8');
    // Writes to /dev/full fail with ENOSPC: the temp file becomes a link to it.
    symlinkSync('/dev/full', tmpPath);
    const res = await api('/api/weight', { method: 'PUT', body: JSON.stringify({ percent: 50, reason: 'soak' }) });
    expect(res.status).toBe(503);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('state_write_failed');
    expect(body.error.message).toMatch(/ENOSPC/);
    expect(readFileSync(statePath, 'utf8')).toBe(before);
    expect(s.veer.table.weightBp).toBe(1000);
    // /readyz says so.
    const ready = await fetch(`${s.adminUrl}/readyz`);
    expect(ready.status).toBe(503);
    rmSync(tmpPath, { force: true });
  });

  it('a disk that refuses writes: a kill still applies (safety first) but says it was not persisted', async () => {
    const { s, statePath, tmpPath, api } = await stackWithState();
    const before = readFileSync(statePath, 'utf8');
    // Opening the temp file fails (EISDIR), as it would on a read-only file system (EROFS).
    mkdirSync(tmpPath);
    const refused = await api('/api/weight', { method: 'PUT', body: JSON.stringify({ percent: 50, reason: 'x' }) });
    expect(refused.status).toBe(503);
    const kill = await api('/api/kill', { method: 'POST', body: JSON.stringify({ reason: 'incident' }) });
    expect(kill.status).toBe(503);
    expect(((await kill.json()) as { error: { code: string } }).error.code).toBe('state_not_persisted');
    expect(s.veer.table.weightBp).toBe(0);
    expect(readFileSync(statePath, 'utf8')).toBe(before);
    rmSync(tmpPath, { recursive: true, force: true });
  });

  it('a corrupt state file stops start-up with a message naming the file and what to do', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'veer-corrupt-'));
    const statePath = join(dir, 'state.json');
    writeFileSync(statePath, '{"format": 1, "rollout_id": "test-rollout", "state": "kil');
    const config = mustBuild(
      rawConfig('http://127.0.0.1:1', 'http://127.0.0.1:2', {
        state: { path: statePath, audit_path: join(dir, 'audit.jsonl') },
      }),
    );
    const err = await Veer.start({ config, logger: silentLogger() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateFileError);
    expect((err as Error).message).toMatch(/state\.json is not valid JSON/);
    expect((err as Error).message).toMatch(/will not start/);
    // The same from the command line: exit 1, the reason on stderr.
    const cfgPath = join(dir, 'veer.json');
    writeFileSync(
      cfgPath,
      JSON.stringify(
        rawConfig('http://127.0.0.1:1', 'http://127.0.0.1:2', {
          state: { path: statePath, audit_path: join(dir, 'audit.jsonl') },
        }),
      ),
    );
    const proc = spawnVeer(['run', '--config', cfgPath]);
    const exit = await proc.exited;
    expect(exit.code).toBe(1);
    expect(proc.stderr()).toMatch(/state file .*state\.json is not valid JSON/);
  });
});

// The operator CLI prints what the admin API holds (reasons, actors, keys) with every control character escaped.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Veer } from '../../src/veer.js';
import { runVeerCli } from '../helpers/process.js';
import { mustBuild, rawConfig, silentLogger } from '../helpers/stack.js';

/**
 * The API now refuses control characters in new reasons and keys, but an audit log written before, or a
 * key pinned in the config file, can still hold them: an outside probe printed a forged
 * `admin:oncall kill` row and retitled the terminal through `veer audit`. A real veer, the real CLI.
 */

const TOKEN = 'escape-test-token-0123456789';
const FORGED_ROW = 'typo\r\n2026-12-01T00:00:00.000Z  admin:oncall  kill  -  forged';
const OSC_TITLE = 'x\u001b]0;pwned\u0007y';
const C1_CSI = 'z\u009b2Jz';
const ESC_KEY = 'user\u001b[31mred';

let veer: Veer;
let adminUrl: string;
let tokenFile: string;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'veer-cli-escape-'));
  tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, TOKEN);
  const auditPath = join(dir, 'audit.jsonl');
  const entry = (actor: string, reason: string) =>
    JSON.stringify({
      time: '2026-12-01T12:00:00.000Z',
      actor,
      action: 'weight',
      reason,
      rollout_id: 'test-rollout',
      before: null,
      after: null,
    });
  writeFileSync(auditPath, `${[entry('admin:old', FORGED_ROW), entry(`admin:${OSC_TITLE}`, C1_CSI)].join('\n')}\n`);
  const config = mustBuild(
    rawConfig('http://127.0.0.1:9', 'http://127.0.0.1:9', {
      admin: { tokens: [{ name: 'op', file: tokenFile }] },
      routing: { overrides: { new: [ESC_KEY, 'plain'] } },
      state: { path: join(dir, 'state.json'), audit_path: auditPath },
    }),
  );
  veer = await Veer.start({ config, logger: silentLogger() });
  adminUrl = `http://127.0.0.1:${veer.adminAddress!.port}`;
});
afterAll(() => veer.close());

const cli = (args: string[]) => runVeerCli([...args, '--admin', adminUrl, '--token-file', tokenFile]);

// biome-ignore lint/suspicious/noControlCharactersInRegex: what must never reach the terminal.
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

describe('CLI output of stored reasons, actors and keys', () => {
  it('veer audit prints one row per entry, the CR/LF, OSC and CSI written as escapes', async () => {
    const r = await cli(['audit']);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    const rows = r.stdout.trimEnd().split('\n');
    // A header, the two seeded entries and veer's own start entry: no forged row.
    expect(rows.filter((row) => row.startsWith('2026-12-01T00:00:00.000Z'))).toEqual([]);
    expect(rows).toHaveLength(4);
    expect(r.stdout).toContain('typo\\r\\n2026-12-01T00:00:00.000Z');
    expect(r.stdout).toContain('admin:x\\e]0;pwned\\x07y');
    expect(r.stdout).toContain('z\\x9b2Jz');
  });

  it('veer overrides and veer status print a key with ESC escaped', async () => {
    for (const args of [['overrides'], ['status']]) {
      const r = await cli(args);
      expect(r.code).toBe(0);
      expect(r.stdout).not.toMatch(RAW_CONTROL);
      expect(r.stdout).toMatch(/^overrides pinned to new: +plain, user\\e\[31mred$/m);
    }
  });

  it('--json keeps valid JSON with C1 characters as \\u escapes', async () => {
    const r = await cli(['audit', '--json']);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    const entries = JSON.parse(r.stdout).entries as { reason: string }[];
    expect(entries.map((e) => e.reason)).toContain(C1_CSI);
  });

  it('an API error quoting the request is printed escaped on stderr', async () => {
    const r = await cli(['overrides', 'set', '--new', 'bad\u001b[2Jkey', '--reason', 'qa']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/400 bad_request/);
    expect(r.stderr).not.toMatch(RAW_CONTROL);
  });
});

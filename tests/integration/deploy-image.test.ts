// The container image recipe: docker/Dockerfile's steps replayed outside Docker, and the rules of its replay.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  checkRecipe,
  DOCKERFILE,
  dockerignore,
  imageConfigOf as imageConfig,
  parseDockerfile,
  REPO,
} from '../../docker/verify-image-steps.js';

const dockerfileText = readFileSync(DOCKERFILE, 'utf8');

const imageConfigOf = (text: string) => imageConfig(parseDockerfile(text));

describe('docker/Dockerfile', () => {
  it('keeps the promises of the recipe: pinned node slim, multi-stage, production-only runtime, non-root, SIGTERM', () => {
    const parsed = parseDockerfile(dockerfileText);
    expect(parsed.stages.map((s) => s.from)).toEqual(['node:24.21.0-bookworm-slim', 'node:24.21.0-bookworm-slim']);
    expect(() => checkRecipe(parsed, imageConfigOf(dockerfileText))).not.toThrow();
    const cfg = imageConfigOf(dockerfileText);
    expect(cfg.env.VEER_CONFIG).toBe('/etc/veer/veer.yaml');
    expect(cfg.user).toBe('1000:1000');
  });

  it('rejects recipes that run as root, ship dev dependencies or float the base image', () => {
    const variants: [string, string, RegExp][] = [
      ['USER 1000:1000', 'USER 0', /non-root/],
      ['USER 1000:1000', 'USER node', /numeric/],
      ['COPY --from=build /app/dist ./dist', 'COPY --from=build /app/node_modules ./node_modules', /node_modules/],
      ['npm ci --omit=dev', 'npm ci', /production dependencies only/],
      ['node:24.21.0-bookworm-slim', 'node:24-slim', /pinned/],
      ['STOPSIGNAL SIGTERM', 'STOPSIGNAL SIGKILL', /STOPSIGNAL/],
    ];
    for (const [from, to, reason] of variants) {
      expect(dockerfileText).toContain(from);
      const text = dockerfileText.replace(from, to);
      expect(() => checkRecipe(parseDockerfile(text), imageConfigOf(text)), to).toThrow(reason);
    }
  });

  it('honours .dockerignore as Docker does: an allowlist with re-included folders', () => {
    const ignored = dockerignore(readFileSync(join(REPO, '.dockerignore'), 'utf8'));
    for (const kept of [
      'package.json',
      'package-lock.json',
      'tsconfig.build.json',
      'src/veer.ts',
      'bench/mock-upstream.ts',
    ])
      expect(ignored(kept), kept).toBe(false);
    for (const dropped of ['node_modules/yaml/package.json', 'dist/src/veer.js', '.git/HEAD', 'tests/unit/x.ts'])
      expect(ignored(dropped), dropped).toBe(true);
    expect(ignored('bench/results/run.json')).toBe(true);
    expect(ignored('src/veer-state.json')).toBe(true);
  });

  it('builds and runs outside Docker: installs, builds, runs `veer run` from the production tree, proxies, answers `veer status` and drains on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'docker/verify-image-steps.ts')], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d;
    });
    const [code] = await once(child, 'exit');
    expect(code, out).toBe(0);
    expect(out).toContain('healthcheck: exit 0');
    expect(out).toMatch(/proxy: 20 streams, legacy \d+, new \d+/);
    expect(out).toContain('veer status: rollout compose-demo');
    expect(out).toMatch(/drain: the open stream finished, exit 0/);
    expect(out).toContain('healthcheck: fails once veer is gone');
  }, 90_000);
});

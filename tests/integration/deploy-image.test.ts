// The container image recipe: docker/Dockerfile's steps replayed outside Docker, and the rules of its replay.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  checkRecipe,
  DOCKERFILE,
  dockerignore,
  imageConfigOf as imageConfig,
  imageProblems,
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
      'src/demo/mock-upstream.ts',
    ])
      expect(ignored(kept), kept).toBe(false);
    for (const dropped of [
      'node_modules/yaml/package.json',
      'dist/src/veer.js',
      '.git/HEAD',
      'tests/unit/x.ts',
      'bench/mock-upstream.ts',
      'bench/results/run.json',
      'deploy/helm/veer/values.yaml',
    ])
      expect(ignored(dropped), dropped).toBe(true);
    expect(ignored('src/veer-state.json')).toBe(true);
  });

  it('accepts only what veer run needs in /app: compiled src, the schema, the dashboard assets, production packages', () => {
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
    const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8'));
    const good = {
      files: [
        'package.json',
        'package-lock.json',
        'dist/config/veer.schema.json',
        'dist/src/cli/main.js',
        'dist/src/cli/main.js.map',
        'dist/src/demo/mock-upstream.js',
        'dist/src/admin/dashboard/assets/index.html',
        'dist/src/admin/dashboard/assets/app.js',
        'dist/src/admin/dashboard/assets/app.css',
      ],
      packages: ['pino', 'undici', 'yaml'],
    };
    expect(imageProblems(good, pkg, lock)).toEqual([]);
    const bad = {
      files: [
        ...good.files.filter((f) => f !== 'dist/src/cli/main.js'),
        'dist/bench/run.js',
        'src/veer.ts',
        'tests/unit/config.test.ts',
        'README.md',
      ],
      packages: [...good.packages, 'http2-proxy', 'typescript'],
    };
    expect(imageProblems(bad, pkg, lock)).toEqual([
      'unexpected file dist/bench/run.js',
      'unexpected file src/veer.ts',
      'unexpected file tests/unit/config.test.ts',
      'unexpected file README.md',
      'missing dist/src/cli/main.js',
      'node_modules/http2-proxy is a dev dependency',
      'node_modules/typescript is a dev dependency',
      'devDependency http2-proxy is in the image',
      'devDependency typescript is in the image',
    ]);
  });

  it('needs no dev dependency at run time: every package src/ imports is a production dependency (http2-proxy is dev only)', () => {
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
    expect(pkg.devDependencies['http2-proxy']).toBeDefined();
    expect(pkg.dependencies['http2-proxy']).toBeUndefined();
    const imported = new Set<string>();
    const walk = (dir: string) => {
      for (const e of readdirSync(join(REPO, dir), { withFileTypes: true })) {
        const rel = `${dir}/${e.name}`;
        // The dashboard's browser code is bundled at build time (esbuild, uPlot: dev dependencies).
        if (e.isDirectory()) {
          if (rel !== 'src/admin/dashboard/client') walk(rel);
        } else if (rel.endsWith('.ts')) {
          const text = readFileSync(join(REPO, rel), 'utf8');
          for (const m of text.matchAll(/^import\s[^;]*?from\s+'([^'.][^']*)'/gms)) imported.add(m[1]!);
        }
      }
    };
    walk('src');
    const packageOf = (spec: string) =>
      (spec.startsWith('@') ? spec.split('/').slice(0, 2) : spec.split('/').slice(0, 1)).join('/');
    const outside = [...imported]
      .filter((spec) => !spec.startsWith('node:') && !builtinModules.includes(spec))
      .map(packageOf)
      .filter((name) => !(name in pkg.dependencies));
    expect(imported.size).toBeGreaterThan(5);
    expect(outside).toEqual([]);
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
    expect(out).toMatch(
      /image files: \d+ under \/app \(dist\/src \d+, dist\/config 1, no bench, no \.ts\), \d+ production packages/,
    );
    expect(out).toContain('healthcheck: exit 0');
    expect(out).toMatch(/proxy: 20 streams, legacy \d+, new \d+/);
    expect(out).toContain('veer status: rollout compose-demo');
    expect(out).toMatch(/drain: the open stream finished, exit 0/);
    expect(out).toContain('healthcheck: fails once veer is gone');
  }, 90_000);
});

// veer's V8 flags are the same wherever it is started: the image, the npm scripts and the bench.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DOCKERFILE, imageConfigOf, parseDockerfile, REPO } from '../../docker/verify-image-steps.js';
import { VEER_NODE_FLAGS } from '../../src/cli/node-flags.js';

describe('VEER_NODE_FLAGS', () => {
  it('are what the image sets in NODE_OPTIONS', () => {
    const env = imageConfigOf(parseDockerfile(readFileSync(DOCKERFILE, 'utf8'))).env;
    expect(env.NODE_OPTIONS?.split(' ')).toEqual([...VEER_NODE_FLAGS]);
  });

  it('are passed by the npm scripts that start veer', () => {
    const scripts = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).scripts as Record<string, string>;
    for (const name of ['start', 'veer']) {
      const argv = scripts[name]!.split(' ');
      expect(argv[0], name).toBe('node');
      for (const flag of VEER_NODE_FLAGS) expect(argv, name).toContain(flag);
    }
  });

  it('are passed by the bench when it starts veer', () => {
    const source = readFileSync(join(REPO, 'bench/lib/veer-process.ts'), 'utf8');
    expect(source).toMatch(/spawnNode\(\s*\[\s*\.\.\.VEER_NODE_FLAGS,/);
  });
});

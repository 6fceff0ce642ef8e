// The README's rule example is a config an operator can paste: it loads as written.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { buildConfig } from '../../src/config/load.js';

describe("README's rule example", () => {
  it('loads beside the default config, every rule parsed', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const block = /```yaml\n(slo:\n[\s\S]*?)```/.exec(readme);
    expect(block, 'README has a ```yaml block starting with slo:').not.toBeNull();
    const defaults = parseYaml(readFileSync(new URL('../../config/veer.yaml', import.meta.url), 'utf8'));
    const result = buildConfig({ ...defaults, slo: parseYaml(block![1]!).slo });
    expect(result.ok ? [] : result.problems).toEqual([]);
    const rules = result.ok ? result.config.slo.rules : [];
    expect(rules.map((rule) => rule.metric)).toEqual([
      'ttfb_p95',
      'tpot_p95',
      'incomplete_rate',
      'error_rate',
      'query',
      'ttfb_p99',
    ]);
    expect(rules.at(-1)?.action).toBe('observe');
  });
});

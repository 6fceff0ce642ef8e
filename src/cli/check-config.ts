// `veer check-config [PATH] [--probe]`: validates a config file and, with --probe, runs each query rule once against Prometheus.

import { parseArgs } from 'node:util';
import { ConfigError, loadConfigFile, resolveConfigPath } from '../config/load.js';
import type { Config, QueryRule } from '../config/types.js';
import { judgeQueryRule } from '../guard/evaluate.js';
import { queryOnce, type RuleReadings } from '../guard/prometheus.js';
import { printConfigError } from './output.js';

/** 0 valid (and with --probe, every query answered), 1 a query gave no value, 2 invalid config or usage. */
export async function checkConfig(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { config: { type: 'string', short: 'c' }, probe: { type: 'boolean' } },
  });
  if (positionals.length > 1) {
    process.stderr.write(
      `veer: expected at most one PATH, got ${positionals.join(' ')}\nusage: veer check-config [PATH] [--probe]\n`,
    );
    return 2;
  }
  const path = resolveConfigPath(positionals[0] ?? values.config);
  let config: Config;
  try {
    config = await loadConfigFile(path);
  } catch (err) {
    if (err instanceof ConfigError) {
      printConfigError(err);
      return 2;
    }
    throw err;
  }
  process.stdout.write(
    `${path}: ok (rollout ${config.rollout.id}, initial weight ${config.rollout.weightBp / 100}%, ${config.slo.rules.length} SLO rules)\n`,
  );
  return values.probe ? probe(config) : 0;
}

async function probe(config: Config): Promise<number> {
  const rules = config.slo.rules.filter((rule): rule is QueryRule => rule.metric === 'query');
  const source = config.slo.prometheus;
  if (!source || rules.length === 0) {
    process.stdout.write('probe: no query rules to run\n');
    return 0;
  }
  const clock = Date.now;
  const results = await Promise.all(
    rules.map(async (rule) => {
      const readings: RuleReadings = { new: await queryOnce(source, rule.query, clock) };
      if (rule.legacyQuery !== undefined) readings.legacy = await queryOnce(source, rule.legacyQuery, clock);
      return judgeQueryRule(rule, { readings: new Map([[rule.name, readings]]), staleAfterMs: Infinity }, clock());
    }),
  );
  let failed = 0;
  for (const result of results) {
    if (result.status === 'inconclusive') failed++;
    const legacy = result.legacy === null ? '' : `, legacy ${result.legacy}`;
    const shown =
      result.status === 'inconclusive'
        ? `no value (${result.detail})`
        : `${result.value}${legacy} (max ${result.threshold}: ${result.status})`;
    process.stdout.write(`probe ${result.name}: ${shown}\n`);
  }
  return failed > 0 ? 1 : 0;
}

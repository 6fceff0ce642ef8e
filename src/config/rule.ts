// The SLO rule language (config parses it): `ttfb_p95 <= 550ms`, `error_rate <= 1%`, `ttfb_p95 <= 1.2 x legacy`, `error_rate <= legacy + 0.5%`, `tokens_per_s_p5 >= 0.8 x legacy`.

import { higherIsBetter, isSloMetric, metricUnit, parseRate, SLO_METRICS } from './slo-metrics.js';
import type { SloMetric, SloRule } from './types.js';
import { parseDuration, parseRatio } from './units.js';

const METRICS = SLO_METRICS;
const RULE = /^\s*(?:new\.)?([a-z0-9_]+)\s*(<=|>=)\s*(.+?)\s*$/;
const RATIO_TO_LEGACY = /^(\d+(?:\.\d+)?)\s*(?:x|×|\*)\s*legacy(?:\.([a-z0-9_]+))?$/;
const DELTA_OVER_LEGACY = /^legacy(?:\.([a-z0-9_]+))?\s*([+-])\s*(.+)$/;

export const RULE_SYNTAX =
  'expected `METRIC <= VALUE`, `METRIC <= F x legacy` or `METRIC <= legacy + DELTA` (`>=` and `legacy - DELTA` for tokens_per_s_p5) with METRIC one of ' +
  METRICS.join(', ');

export type ParsedRule = { ok: true; rule: SloRule } | { ok: false; reason: string };

/** A latency metric takes durations, a rate ratios, a decode rate tokens per second. Returns ms, a ratio or a rate. */
function parseValue(metric: SloMetric, text: string): number | undefined {
  const unit = metricUnit(metric);
  return unit === 'ratio' ? parseRatio(text) : unit === 'per_s' ? parseRate(text) : parseDuration(text);
}

function valueHint(metric: SloMetric): string {
  const unit = metricUnit(metric);
  if (unit === 'ratio') return 'a ratio such as 1% or 0.01';
  if (unit === 'per_s') return 'a rate such as 30 or 30/s';
  return 'a duration such as 550ms or 2s';
}

export function parseRule(text: string, minSamples: number, name?: string): ParsedRule {
  const m = RULE.exec(text);
  if (!m) return { ok: false, reason: RULE_SYNTAX };
  const metric = m[1]!;
  const op = m[2]!;
  const rhs = m[3]!;
  if (!isSloMetric(metric))
    return { ok: false, reason: `unknown metric "${metric}"; use one of ${METRICS.join(', ')}` };
  const higher = higherIsBetter(metric);
  if (higher !== (op === '>=')) {
    return {
      ok: false,
      reason: higher
        ? `${metric} is worse when lower: write \`${metric} >= ...\``
        : `${metric} is worse when higher: write \`${metric} <= ...\``,
    };
  }
  const sameMetric = (other: string | undefined): string | undefined =>
    other === undefined || other === metric
      ? undefined
      : `a relative rule compares the same metric on both sides, got legacy.${other}`;

  const ratio = RATIO_TO_LEGACY.exec(rhs);
  if (ratio) {
    const mismatch = sameMetric(ratio[2]);
    if (mismatch) return { ok: false, reason: mismatch };
    const factor = Number(ratio[1]);
    if (!(factor > 0)) return { ok: false, reason: 'the factor must be greater than 0' };
    return {
      ok: true,
      rule: {
        name: name ?? `${metric}_vs_legacy`,
        text: text.trim(),
        metric,
        kind: 'ratio_to_legacy',
        factor,
        minSamples,
      },
    };
  }
  const delta = DELTA_OVER_LEGACY.exec(rhs);
  if (delta) {
    const mismatch = sameMetric(delta[1]);
    if (mismatch) return { ok: false, reason: mismatch };
    if ((delta[2] === '-') !== higher) {
      return {
        ok: false,
        reason: higher ? 'write `legacy - DELTA` for a rate judged from below' : 'write `legacy + DELTA`',
      };
    }
    const d = parseValue(metric, delta[3]!);
    if (d === undefined) return { ok: false, reason: `the delta must be ${valueHint(metric)}` };
    return {
      ok: true,
      rule: {
        name: name ?? `${metric}_over_legacy`,
        text: text.trim(),
        metric,
        kind: 'delta_over_legacy',
        delta: d,
        minSamples,
      },
    };
  }
  const threshold = parseValue(metric, rhs);
  if (threshold === undefined) return { ok: false, reason: `the threshold must be ${valueHint(metric)}` };
  return {
    ok: true,
    rule: { name: name ?? metric, text: text.trim(), metric, kind: 'absolute', threshold, minSamples },
  };
}

// The SLO rule language (config parses it): `ttfb_p95 <= 550ms`, `error_rate <= 1%`, `ttfb_p95 <= 1.2 x legacy`, `error_rate <= legacy + 0.5%`.

import type { SloMetric, SloRule } from './types.js';
import { parseDuration, parseRatio } from './units.js';

const METRICS: readonly SloMetric[] = ['ttfb_p50', 'ttfb_p90', 'ttfb_p95', 'ttfb_p99', 'duration_p95', 'error_rate'];
const RULE = /^\s*(?:new\.)?([a-z0-9_]+)\s*<=\s*(.+?)\s*$/;
const RATIO_TO_LEGACY = /^(\d+(?:\.\d+)?)\s*(?:x|×|\*)\s*legacy(?:\.([a-z0-9_]+))?$/;
const DELTA_OVER_LEGACY = /^legacy(?:\.([a-z0-9_]+))?\s*\+\s*(.+)$/;

export const RULE_SYNTAX =
  'expected `METRIC <= VALUE`, `METRIC <= F x legacy` or `METRIC <= legacy + DELTA` with METRIC one of ' +
  METRICS.join(', ');

export type ParsedRule = { ok: true; rule: SloRule } | { ok: false; reason: string };

function isMetric(name: string): name is SloMetric {
  return (METRICS as readonly string[]).includes(name);
}

/** A latency metric takes durations; error_rate takes ratios. Returns ms or a ratio. */
function parseValue(metric: SloMetric, text: string): number | undefined {
  return metric === 'error_rate' ? parseRatio(text) : parseDuration(text);
}

function valueHint(metric: SloMetric): string {
  return metric === 'error_rate' ? 'a ratio such as 1% or 0.01' : 'a duration such as 550ms or 2s';
}

export function parseRule(text: string, minSamples: number, name?: string): ParsedRule {
  const m = RULE.exec(text);
  if (!m) return { ok: false, reason: RULE_SYNTAX };
  const metric = m[1]!;
  const rhs = m[2]!;
  if (!isMetric(metric)) return { ok: false, reason: `unknown metric "${metric}"; use one of ${METRICS.join(', ')}` };
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
    const d = parseValue(metric, delta[2]!);
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

// The token panel's two charts: decode speed (ITL, TPOT) and completeness (truncated, in-band error, empty), with their rule limits.

import type { SeriesPoint } from '../../api-types.js';
import { LEGACY, type Line, limitLine, NEW, pct, type Spec } from './chart-spec.js';

const DECODE_METRICS = new Set(['itl_p50', 'itl_p95', 'itl_p99', 'tpot_p95']);
const COMPLETENESS_METRICS = new Set(['incomplete_rate', 'inband_error_rate', 'empty_rate']);

/** Rules drawn on the token charts (the other charts leave them out). */
export function isTokenMetric(metric: string): boolean {
  return DECODE_METRICS.has(metric) || COMPLETENESS_METRICS.has(metric) || metric === 'tokens_per_s_p5';
}

export function tokenSpecs(latest: SeriesPoint | undefined, texts: ReadonlyMap<string, string>): Spec[] {
  const rules = latest?.rules ?? [];
  const decode = (side: 'legacy' | 'new', color: string): Line[] => [
    { label: `${side} ITL p50`, stroke: color, width: 1, get: (p) => p[side].itl_p50_ms ?? null },
    { label: `${side} ITL p99`, stroke: color, width: 1.5, dash: [2, 3], get: (p) => p[side].itl_p99_ms ?? null },
    { label: `${side} TPOT p95`, stroke: color, width: 2.5, get: (p) => p[side].tpot_p95_ms ?? null },
  ];
  const ends = (side: 'legacy' | 'new', color: string): Line[] => [
    { label: `${side} incomplete`, stroke: color, width: 2.5, get: (p) => pct(p[side].incomplete_rate) },
    {
      label: `${side} in-band error`,
      stroke: color,
      width: 1.5,
      dash: [2, 3],
      get: (p) => pct(p[side].inband_error_rate),
    },
    { label: `${side} empty`, stroke: color, width: 1, dash: [6, 3], get: (p) => pct(p[side].empty_rate) },
  ];
  const limits = (metrics: Set<string>, scale: (x: number | null) => number | null) =>
    rules.filter((r) => metrics.has(r.metric)).map((r) => limitLine(r.name, texts.get(r.name) ?? r.name, scale));
  return [
    {
      id: 'chart-decode',
      unit: 'ms',
      digits: 1,
      lines: [...decode('legacy', LEGACY), ...decode('new', NEW), ...limits(DECODE_METRICS, (x) => x)],
    },
    {
      id: 'chart-completeness',
      unit: '%',
      digits: 2,
      lines: [...ends('legacy', LEGACY), ...ends('new', NEW), ...limits(COMPLETENESS_METRICS, pct)],
    },
  ];
}

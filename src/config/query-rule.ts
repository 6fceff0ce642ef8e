// Query rules in the config: `{ name, query, legacy_query?, max }`, where max is a number, `F x legacy` or `legacy + D`.

import type { QueryRule } from './types.js';

const RATIO_TO_LEGACY = /^\s*(\d+(?:\.\d+)?)\s*(?:x|×|\*)\s*legacy\s*$/;
const DELTA_OVER_LEGACY = /^\s*legacy\s*\+\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$/;
const NUMBER = /^\s*-?\d+(?:\.\d+)?(?:e-?\d+)?\s*$/;

export interface RawQueryRule {
  name?: string;
  query: string;
  legacy_query?: string;
  max: number | string;
  action?: 'act' | 'observe';
}

export type ParsedQueryRule = { ok: true; rule: QueryRule } | { ok: false; problems: string[] };

/** A query rule from its config form; each problem names its field under `at` (e.g. `slo.rules[2]`). */
export function parseQueryRule(raw: RawQueryRule, at: string): ParsedQueryRule {
  const problems: string[] = [];
  if (raw.name === undefined) problems.push(`${at}.name: required for a query rule (it labels its metrics)`);
  if (raw.query.trim() === '') problems.push(`${at}.query: must not be empty`);
  const name = raw.name ?? 'query';
  const text = (max: string) => `${name}: ${raw.query.trim()} <= ${max}`;
  const relative = (): QueryRule | undefined => {
    if (typeof raw.max === 'number') return undefined;
    const ratio = RATIO_TO_LEGACY.exec(raw.max);
    const delta = DELTA_OVER_LEGACY.exec(raw.max);
    if (!ratio && !delta) return undefined;
    if (raw.legacy_query === undefined || raw.legacy_query.trim() === '') {
      problems.push(`${at}.legacy_query: required when max is relative to legacy ("${raw.max.trim()}")`);
      return undefined;
    }
    const base = {
      name,
      text: text(raw.max.trim()),
      metric: 'query' as const,
      query: raw.query,
      minSamples: 0 as const,
    };
    if (ratio) {
      const factor = Number(ratio[1]);
      if (!(factor > 0)) problems.push(`${at}.max: the factor must be greater than 0`);
      return { ...base, kind: 'ratio_to_legacy', factor, legacyQuery: raw.legacy_query };
    }
    return { ...base, kind: 'delta_over_legacy', delta: Number(delta![1]), legacyQuery: raw.legacy_query };
  };
  let rule = relative();
  if (rule === undefined && problems.length === 0) {
    const threshold = typeof raw.max === 'number' ? raw.max : NUMBER.test(raw.max) ? Number(raw.max) : Number.NaN;
    if (!Number.isFinite(threshold)) {
      problems.push(`${at}.max: must be a number, "F x legacy" or "legacy + D", got "${String(raw.max).slice(0, 40)}"`);
    } else if (raw.legacy_query !== undefined) {
      problems.push(`${at}.legacy_query: only with a max relative to legacy (such as "1.5 x legacy")`);
    } else {
      rule = {
        name,
        text: text(String(threshold)),
        metric: 'query',
        query: raw.query,
        minSamples: 0,
        kind: 'absolute',
        threshold,
      };
    }
  }
  return problems.length > 0 || rule === undefined ? { ok: false, problems } : { ok: true, rule };
}

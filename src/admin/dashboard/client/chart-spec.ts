// What a dashboard chart is made of (its lines and unit) and the colours and limit lines every chart shares.

import type { SeriesPoint } from '../../api-types.js';

export const LEGACY = '#1d4ed8';
export const NEW = '#c2410c';
export const LIMIT = '#b91c1c';

export interface Line {
  label: string;
  stroke: string;
  width?: number;
  dash?: number[];
  /** Draw as steps (a configured value that jumps), not as a slope. */
  stepped?: boolean;
  get: (p: SeriesPoint) => number | null;
}

export interface Spec {
  id: string;
  unit: string;
  digits: number;
  range?: [number, number];
  lines: Line[];
}

export const ruleAt = (p: SeriesPoint, name: string) => p.rules.find((r) => r.name === name);
export const pct = (x: number | null | undefined) => (x === null || x === undefined ? null : x * 100);

/** A rule's threshold as a dashed red line, labelled with the rule's text. */
export function limitLine(name: string, text: string, scale: (x: number | null) => number | null): Line {
  return {
    label: `limit ${text}`,
    stroke: LIMIT,
    width: 2,
    dash: [8, 4],
    get: (p) => scale(ruleAt(p, name)?.threshold ?? null),
  };
}

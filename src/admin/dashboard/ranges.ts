// The dashboard's time ranges (5 min, 15 min, 1 h) and which sampled points fall in one; the sampler keeps the longest.

import type { SeriesPoint } from '../api-types.js';

export const RANGES = [
  { seconds: 300, label: '5 min' },
  { seconds: 900, label: '15 min' },
  { seconds: 3600, label: '1 h' },
] as const;

/** The longest range, in seconds: what the server's sampler keeps at one point a second. */
export const LONGEST_RANGE_S = Math.max(...RANGES.map((r) => r.seconds));

/** The points of the last `seconds` before the newest one (the server's clock: points carry its time). */
export function inRange(points: readonly SeriesPoint[], seconds: number): SeriesPoint[] {
  const newest = points[points.length - 1];
  if (!newest) return [];
  const from = newest.t - seconds * 1000;
  let i = points.length;
  while (i > 0 && points[i - 1]!.t > from) i--;
  return points.slice(i);
}

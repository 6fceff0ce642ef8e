// Quantiles over sorted centroid lists: how closed windows, open slices and fleet members are read together.

/** Centroids of a digest, as published and merged (e.g. across a fleet). */
export interface Centroid {
  mean: number;
  n: number;
}

/** Merges two centroid lists sorted by mean into one sorted list, in linear time. */
export function mergeSorted(a: readonly Centroid[], b: readonly Centroid[]): Centroid[] {
  const out: Centroid[] = new Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = a[i]!.mean <= b[j]!.mean ? a[i++]! : b[j++]!;
  while (i < a.length) out[k++] = a[i++]!;
  while (j < b.length) out[k++] = b[j++]!;
  return out;
}

export function totalCount(centroids: readonly Centroid[]): number {
  let n = 0;
  for (const c of centroids) n += c.n;
  return n;
}

/**
 * The q-quantile of a sorted centroid list, interpolated between the bracketing centroids' mid-ranks
 * exactly as npm tdigest's percentile() does, so a merged read agrees with a merged digest.
 */
export function quantileOf(sorted: readonly Centroid[], q: number, total = totalCount(sorted)): number | undefined {
  if (sorted.length === 0 || total === 0) return undefined;
  const h = total * q;
  let cum = 0;
  let prevMid = Number.NaN;
  let prev: Centroid | undefined;
  for (const c of sorted) {
    const mid = cum + c.n / 2;
    if (mid === h) return c.mean;
    if (mid > h) {
      if (prev === undefined) return c.mean;
      return prev.mean + ((h - prevMid) * (c.mean - prev.mean)) / (mid - prevMid);
    }
    prev = c;
    prevMid = mid;
    cum += c.n;
  }
  return prev!.mean;
}

// Latency samples kept whole (no histogram buckets) so percentiles of sub-millisecond differences stay exact.

export class Samples {
  private data = new Float64Array(1024);
  private n = 0;
  private sorted: Float64Array | undefined;

  get count(): number {
    return this.n;
  }

  add(value: number): void {
    if (this.n === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.n++] = value;
    this.sorted = undefined;
  }

  addAll(other: Samples): void {
    const values = other.values();
    for (let i = 0; i < values.length; i++) this.add(values[i]!);
  }

  /** One set holding every value of `parts` (the rounds of one side, say). */
  static pooled(parts: Iterable<Samples>): Samples {
    const all = new Samples();
    for (const p of parts) all.addAll(p);
    return all;
  }

  values(): Float64Array {
    return this.data.subarray(0, this.n);
  }

  /** Nearest-rank percentile (p in 0..100); NaN when empty. */
  percentile(p: number): number {
    if (this.n === 0) return Number.NaN;
    if (!this.sorted) this.sorted = this.data.slice(0, this.n).sort();
    const rank = Math.min(this.n - 1, Math.max(0, Math.ceil((p / 100) * this.n) - 1));
    return this.sorted[rank]!;
  }

  mean(): number {
    if (this.n === 0) return Number.NaN;
    let sum = 0;
    for (let i = 0; i < this.n; i++) sum += this.data[i]!;
    return sum / this.n;
  }
}

/** Microseconds elapsed since a process.hrtime.bigint() reading. */
export function usSince(startNs: bigint, now = process.hrtime.bigint()): number {
  return Number(now - startNs) / 1000;
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

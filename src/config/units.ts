// Parsing of the config's human units: durations (250ms, 2s, 1.5m) and ratios (1%, 0.01).

const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds from a number of ms or a string such as 550ms; undefined when it is not a duration. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = DURATION.exec(value);
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

const PERCENT = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/;

/** A ratio 0..1 from a number or a percentage string such as 1%; undefined otherwise. */
export function parseRatio(value: unknown): number | undefined {
  if (typeof value === 'number') return value >= 0 && value <= 1 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = PERCENT.exec(value);
  if (m) {
    const r = Number(m[1]) / 100;
    return r <= 1 ? r : undefined;
  }
  const n = Number(value.trim());
  return value.trim() !== '' && Number.isFinite(n) && n >= 0 && n <= 1 ? n : undefined;
}

export function formatDuration(ms: number): string {
  if (ms >= 1000 && ms % 1000 === 0) return `${ms / 1000}s`;
  return `${Math.round(ms * 1000) / 1000}ms`;
}

export function formatPercent(ratio: number): string {
  return `${Math.round(ratio * 1e6) / 1e4}%`;
}

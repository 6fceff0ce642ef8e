// Parsing of the config's human units: durations (250ms, 2s, 1.5m), ratios (1%, 0.01) and sizes (1MiB).

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

const SIZE = /^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|kB|KB|MB|GB)?\s*$/;
const UNIT_BYTES: Record<string, number> = {
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  kB: 1000,
  KB: 1000,
  MB: 1000 ** 2,
  GB: 1000 ** 3,
};

/** Bytes from a number or a string such as 512KiB or 1MiB; undefined when it is not a size. */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = SIZE.exec(value);
  if (!m) return undefined;
  return Math.floor(Number(m[1]) * UNIT_BYTES[m[2] ?? 'B']!);
}

export function formatDuration(ms: number): string {
  if (ms >= 1000 && ms % 1000 === 0) return `${ms / 1000}s`;
  return `${Math.round(ms * 1000) / 1000}ms`;
}

export function formatPercent(ratio: number): string {
  return `${Math.round(ratio * 1e6) / 1e4}%`;
}

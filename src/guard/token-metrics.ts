// The token metrics on one window side: ITL, TPOT and decode-rate quantiles (streams as samples), answer rates as counts.

import type { SloMetric } from '../config/types.js';
import type { RateCounts, TokenView } from '../measure/token-window.js';

const ITL_QUANTILE: Partial<Record<SloMetric, number>> = { itl_p50: 0.5, itl_p95: 0.95, itl_p99: 0.99 };
const NONE: RateCounts = Object.freeze({ failures: 0, total: 0 });
const NOTHING = Object.freeze({ value: null, samples: 0 });

/** incomplete_rate, inband_error_rate, empty_rate: judged as rates on (failures, answers), like error_rate. */
export function isTokenRate(metric: SloMetric): boolean {
  return metric === 'incomplete_rate' || metric === 'inband_error_rate' || metric === 'empty_rate';
}

/** A token rate's counts on one side; none without a token side (the rule is then inconclusive). */
export function tokenRateCounts(metric: SloMetric, w: { tokens?: TokenView | undefined }): RateCounts {
  const t = w.tokens;
  if (t === undefined) return NONE;
  if (metric === 'incomplete_rate') return t.incomplete;
  if (metric === 'inband_error_rate') return t.inbandErrors;
  if (metric === 'empty_rate') return t.empty;
  throw new Error(`${metric} is not a token rate`);
}

/**
 * A token metric's value and samples (streams) on one side, or undefined for a metric that is not a token
 * metric. A side without token figures gives no value and no samples.
 */
export function measureToken(
  metric: SloMetric,
  w: { tokens?: TokenView | undefined },
): { value: number | null; samples: number } | undefined {
  if (isTokenRate(metric)) {
    const r = tokenRateCounts(metric, w);
    return { value: r.total > 0 ? r.failures / r.total : null, samples: r.total };
  }
  const itlQ = ITL_QUANTILE[metric];
  const isQuantile = itlQ !== undefined || metric === 'tpot_p95' || metric === 'tokens_per_s_p5';
  if (!isQuantile) return undefined;
  const t = w.tokens;
  if (t === undefined) return NOTHING;
  if (itlQ !== undefined) return { value: t.itlQuantile(itlQ) ?? null, samples: t.itlStreams };
  if (metric === 'tpot_p95') return { value: t.tpotQuantile(0.95) ?? null, samples: t.tpotSamples };
  return { value: t.tokensPerSecondQuantile(0.05) ?? null, samples: t.tpotSamples };
}

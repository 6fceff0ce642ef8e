// A window's TTFB and error figures as the admin API shows them, for an upstream and for the shadow alike.

import type { WindowSnapshot } from '../../measure/window.js';

export function windowJson(url: string, window: WindowSnapshot) {
  const quantileMs = (q: number) => {
    const value = window.ttfbQuantile(q);
    return value === undefined ? null : Math.round(value * 1000) / 1000;
  };
  return {
    url,
    ttfb_p50_ms: quantileMs(0.5),
    ttfb_p95_ms: quantileMs(0.95),
    ttfb_p99_ms: quantileMs(0.99),
    error_rate: window.requests > 0 ? window.errorRate : null,
    samples: window.ttfbSamples,
    requests: window.requests,
    errors: window.errors,
  };
}

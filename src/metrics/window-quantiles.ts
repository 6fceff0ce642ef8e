// A gauge of quantiles veer computes itself, exposed as a summary.

import { Gauge, type GaugeConfiguration } from 'prom-client';

/**
 * Quantiles veer computes itself (from the window's t-digests) are declared TYPE summary: Prometheus reserves
 * the `quantile` label for summaries and `promtool check metrics` rejects it on a gauge. There is no
 * _sum/_count: a summary's are cumulative, and the window has none to give.
 */
export class WindowQuantiles<T extends string> extends Gauge<T> {
  constructor(config: GaugeConfiguration<T>) {
    super(config);
    (this as unknown as { type: string }).type = 'summary';
  }
}

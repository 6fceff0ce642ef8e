// Token accounting's Prometheus series: per-answer counters and histograms, and the window's token figures.

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { WindowQuantiles } from './window-quantiles.js';

export interface TokenWindowReading {
  itl: Record<string, number | undefined>;
  tpot: Record<string, number | undefined>;
  tokensPerSecond: Record<string, number | undefined>;
  /** Share of answers in the window per end class (client_abort left out); undefined without answers. */
  endRatio: Record<string, number | undefined>;
}

/** Token accounting's quantiles published from the window: ITL and TPOT from the top, decode rate from the bottom. */
export const TOKEN_WINDOW_QUANTILES = ['0.5', '0.95', '0.99'] as const;
export const TOKENS_PER_SECOND_QUANTILES = ['0.05', '0.5'] as const;
export const ANSWER_ENDS = ['complete', 'truncated', 'inband_error', 'empty', 'client_abort'] as const;
/** Time per output token: ~1 ms (small models, speculative decoding) to a second (overloaded). */
export const TPOT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1];
/** The longest gap of a stream: tens of ms when healthy, seconds when it stalls. */
export const MAX_GAP_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Token accounting's series: per-answer counters and histograms (batched like the request metrics), and window gauges. */
export function tokenMetrics(
  registers: Registry[],
  tokenWindow: () => Record<'legacy' | 'new', TokenWindowReading> | undefined,
  flushRecorder: () => void,
) {
  const windowQuantiles = (
    name: string,
    help: string,
    quantiles: readonly string[],
    read: (r: TokenWindowReading) => Record<string, number | undefined>,
  ) =>
    new WindowQuantiles({
      name,
      help,
      labelNames: ['upstream', 'quantile'] as const,
      registers,
      collect() {
        const w = tokenWindow();
        if (!w) return;
        for (const upstream of ['legacy', 'new'] as const) {
          const values = read(w[upstream]);
          for (const quantile of quantiles) {
            const v = values[quantile];
            if (v === undefined) this.remove({ upstream, quantile });
            else this.set({ upstream, quantile }, v);
          }
        }
      },
    });
  return {
    answerEnds: new Counter({
      name: 'veer_answer_ends_total',
      help: 'Answers (SSE streams and JSON bodies with a 2xx status) read by token accounting, by upstream and how they ended (complete, truncated, inband_error, empty, client_abort).',
      labelNames: ['upstream', 'end'] as const,
      registers,
      collect: flushRecorder,
    }),
    tokenEvents: new Counter({
      name: 'veer_token_events_total',
      help: 'SSE events that carried content (a token delta), by upstream.',
      labelNames: ['upstream'] as const,
      registers,
      collect: flushRecorder,
    }),
    outputTokens: new Counter({
      name: 'veer_output_tokens_total',
      help: "Output tokens the upstreams reported in their answers' usage, by upstream.",
      labelNames: ['upstream'] as const,
      registers,
      collect: flushRecorder,
    }),
    tpot: new Histogram({
      name: 'veer_time_per_output_token_seconds',
      help: 'Per stream: (last token event - first token event) / (token events - 1), by upstream; streams the client cut or held back are left out.',
      labelNames: ['upstream'] as const,
      buckets: TPOT_BUCKETS,
      registers,
      collect: flushRecorder,
    }),
    maxGap: new Histogram({
      name: 'veer_stream_max_gap_seconds',
      help: 'Per stream: the longest gap between two token events (a stall), by upstream.',
      labelNames: ['upstream'] as const,
      buckets: MAX_GAP_BUCKETS,
      registers,
      collect: flushRecorder,
    }),
    itlWindow: windowQuantiles(
      'veer_itl_window_seconds',
      "Inter-token gap quantiles over the SLO window, from the window's gap histograms (every gap of every stream that ended in it).",
      TOKEN_WINDOW_QUANTILES,
      (r) => r.itl,
    ),
    tpotWindow: windowQuantiles(
      'veer_tpot_window_seconds',
      'Time-per-output-token quantiles over the SLO window (one sample per stream).',
      TOKEN_WINDOW_QUANTILES,
      (r) => r.tpot,
    ),
    tokensPerSecondWindow: windowQuantiles(
      'veer_tokens_per_second_window',
      'Decode rate quantiles over the SLO window, in tokens per second (one sample per stream; 0.05 is the slowest 5 %).',
      TOKENS_PER_SECOND_QUANTILES,
      (r) => r.tokensPerSecond,
    ),
    windowAnswerRatio: new Gauge({
      name: 'veer_window_answer_ratio',
      help: 'Share of answers in the SLO window that ended so, by upstream and end class (client aborts are not answers judged).',
      labelNames: ['upstream', 'end'] as const,
      registers,
      collect() {
        const w = tokenWindow();
        if (!w) return;
        for (const upstream of ['legacy', 'new'] as const) {
          for (const end of ['complete', 'truncated', 'inband_error', 'empty']) {
            const v = w[upstream].endRatio[end];
            if (v === undefined) this.remove({ upstream, end });
            else this.set({ upstream, end }, v);
          }
        }
      },
    }),
  };
}

// Where a finished stream's measurements go: its upstream's window, the Prometheus metrics and the access log.

import { performance } from 'node:perf_hooks';
import type { UpstreamName } from '../config/types.js';
import { type AccessLogWriter, type AccessTokenFields, accessLogWriter, beforeLogFlush, type Logger } from '../log.js';
import { type Metrics, WINDOW_QUANTILES } from '../metrics/registry.js';
import {
  TOKEN_WINDOW_QUANTILES,
  TOKENS_PER_SECOND_QUANTILES,
  type TokenWindowReading,
} from '../metrics/token-metrics.js';
import { BATCH_MAX, Batch } from './finished-batch.js';
import { OUTCOME_INDEX, OUTCOMES, type Outcome } from './outcome.js';
import { END_CLASS_INDEX, END_CLASSES, type TokenSummary, tpotMs } from './token-summary.js';
import type { TokenView } from './token-window.js';
import { WaitingList, type WaitingRecord } from './waiting.js';
import { type Clock, SlidingWindow, type WindowSnapshot } from './window.js';

/** A window snapshot that also answers for the requests still waiting for their first byte. */
export type SideView = WindowSnapshot & {
  /** Ages (ms, oldest first) of requests waiting for their first byte longer than `ms`. */
  waitingOver(ms: number): number[];
  since(at: number): SideView;
};

/** What the proxy hands over when a stream ends; times are monotonic milliseconds. */
export interface StreamRecord {
  upstream: UpstreamName;
  reason: string;
  bucket: number;
  method: string;
  path: string;
  protocol: string;
  /** The status the client saw, 0 when none was sent. */
  status: number;
  outcome: Outcome;
  /** When veer dispatched it to the upstream's pool. */
  dispatchedAt: number;
  /**
   * When it went out on a connection: the upstream's timings start here and the pool wait ends (its end
   * when it never went out).
   */
  startedAt: number;
  headersAt: number;
  firstByteAt: number;
  endedAt: number;
  bytesOut: number;
  /** Set when the request was retried on legacy after new refused it. */
  fallback: boolean;
  /** Token accounting's summary of the answer, when it was read (2xx SSE or JSON, accounting on). */
  tokens?: TokenSummary | undefined;
}

const CODE_CLASS = ['none', '1xx', '2xx', '3xx', '4xx', '5xx'];
const UPSTREAMS: readonly UpstreamName[] = ['legacy', 'new'];

/**
 * Finished streams wait here for Prometheus and the access log, and are metered together: at most
 * BATCH_MS after the first of them, at BATCH_MAX of them, or when anything reads (a scrape, a log flush).
 * Metering one stream between requests costs several times what it costs in a run (prom-client's label
 * lookups, the line formatting and their data are out of the CPU caches by then); see bench/ (throughput).
 * BATCH_MS is 100, not 10: the batch timer wakes the process, and at 200 streams (100 ending a second)
 * a 10 ms timer woke veer once per stream for one stream's metering (bench/ ttfb-overhead).
 */
const BATCH_MS = 100;

export interface RecorderOptions {
  metrics: Metrics;
  logger: Logger;
  accessLog: boolean;
  windowMs: number;
  slices: number;
  clock: Clock;
  /** Monotonic clock of StreamRecord times (performance.now); tests may inject one. */
  monotonic?: Clock;
}

export class Recorder {
  readonly windows: Record<UpstreamName, SlidingWindow>;
  /** The third window side: new's answers to shadow copies, judged against legacy by the same rules. */
  readonly shadowWindow: SlidingWindow;
  readonly inflight: Record<UpstreamName, number> = { legacy: 0, new: 0 };
  /** Requests still waiting for their first byte, oldest first (hangs are read from here, off the request path). */
  readonly waiting: Record<UpstreamName, WaitingList> = { legacy: new WaitingList(), new: new WaitingList() };
  private readonly monotonic: Clock;
  /** Streams finished per upstream since start (monotonic; the dashboard derives req/s from it). */
  readonly finishedTotal: Record<UpstreamName, number> = { legacy: 0, new: 0 };
  private readonly metrics: Metrics;
  private readonly accessLines: AccessLogWriter;
  private readonly ttfbHistograms;
  private readonly durationHistograms;
  private readonly tpotHistograms;
  private readonly maxGapHistograms;
  private readonly batch = new Batch();
  private batchTimer: NodeJS.Timeout | undefined;
  private readonly flushBatch = () => this.flush();
  accessLog: boolean;

  constructor(options: RecorderOptions) {
    this.metrics = options.metrics;
    this.accessLines = accessLogWriter(options.logger);
    // Lines still in a batch are written before the logger flushes (shutdown, tests).
    beforeLogFlush(options.logger, this.flushBatch);
    this.accessLog = options.accessLog;
    const window = () =>
      new SlidingWindow({ windowMs: options.windowMs, slices: options.slices, clock: options.clock });
    this.windows = { legacy: window(), new: window() };
    this.shadowWindow = window();
    this.ttfbHistograms = { legacy: this.metrics.ttfb.labels('legacy'), new: this.metrics.ttfb.labels('new') };
    this.durationHistograms = {
      legacy: this.metrics.duration.labels('legacy'),
      new: this.metrics.duration.labels('new'),
    };
    this.tpotHistograms = { legacy: this.metrics.tpot.labels('legacy'), new: this.metrics.tpot.labels('new') };
    this.maxGapHistograms = { legacy: this.metrics.maxGap.labels('legacy'), new: this.metrics.maxGap.labels('new') };
    this.metrics.live.tokenWindow = () => ({
      legacy: tokenReading(this.windows.legacy.snapshot().tokens),
      new: tokenReading(this.windows.new.snapshot().tokens),
    });
    this.metrics.live.flush = this.flushBatch;
    this.metrics.live.inflight = () => this.inflight;
    this.monotonic = options.monotonic ?? (() => performance.now());
    this.metrics.live.oldestWaiting = () => {
      const now = this.monotonic();
      return { legacy: this.waiting.legacy.oldestAgeMs(now) / 1000, new: this.waiting.new.oldestAgeMs(now) / 1000 };
    };
    this.metrics.live.window = () => {
      const read = (w: SlidingWindow) => {
        const s = w.snapshot();
        const quantiles: Record<string, number | undefined> = {};
        for (const q of WINDOW_QUANTILES) {
          const v = s.ttfbQuantile(Number(q));
          quantiles[q] = v === undefined ? undefined : v / 1000;
        }
        return { quantiles, samples: s.ttfbSamples, errorRate: s.errorRate };
      };
      return { legacy: read(this.windows.legacy), new: read(this.windows.new) };
    };
  }

  /** slo.window or slo.slices reloaded: both windows take the new shape and keep their samples. */
  reshapeWindows(windowMs: number, slices: number): void {
    this.windows.legacy.reshape(windowMs, slices);
    this.windows.new.reshape(windowMs, slices);
    this.shadowWindow.reshape(windowMs, slices);
  }

  /** A shadow copy ended: its sample goes to the shadow window only (it is in no request metric or access line). */
  finishedShadow(outcome: Outcome, status: number, ttfbMs: number | undefined, durationMs: number | undefined): void {
    const answered = status > 0 && status < 500;
    this.shadowWindow.record(outcome, answered ? ttfbMs : undefined, outcome === 'ok' ? durationMs : undefined);
  }

  /**
   * A request went to an upstream: a record with links waits on that upstream's list until its first byte
   * or its end (a bare upstream name only counts it in flight).
   */
  started(r: UpstreamName | (WaitingRecord & { upstream: UpstreamName })): void {
    if (typeof r === 'string') {
      this.inflight[r]++;
      return;
    }
    this.inflight[r.upstream]++;
    this.waiting[r.upstream].add(r);
  }

  /**
   * The request went out on a connection: from now it waits for its first byte (a wait for a connection
   * before it is veer's, not the upstream's, so it does not count toward a hang).
   */
  sent(r: WaitingRecord & { upstream: UpstreamName }): void {
    this.waiting[r.upstream].add(r);
  }

  /** The first body byte arrived: the request no longer waits. */
  firstByte(r: WaitingRecord): void {
    r.waitList?.remove(r);
  }

  /** What the SLO guard reads of one upstream: its window, and its requests still waiting. */
  sideView(upstream: UpstreamName, snapshot = this.windows[upstream].snapshot()): SideView {
    const waitingOver = (ms: number) => this.waiting[upstream].agesOver(ms, this.monotonic());
    return {
      ...snapshot,
      waitingOver,
      since: (at) => this.sideView(upstream, this.windows[upstream].snapshotSince(at)),
    };
  }

  /**
   * TTFB is the first body byte, or the response headers for a response without a body; it is
   * recorded whenever the upstream answered with a non-5xx status, since a client that leaves after
   * the first token (or an upstream that goes silent after it) still showed that token's latency. Duration is recorded for completed responses only.
   * TTFB, headers and duration count from when the request went out on a connection: a wait for a free
   * connection is veer's (its max_sockets), not the upstream's, and is logged apart as the pool wait.
   * The window (which the SLO guard reads) takes the stream now; metrics and the access log in a batch.
   */
  finished(r: StreamRecord & Partial<WaitingRecord>): void {
    r.waitList?.remove(r as WaitingRecord);
    this.inflight[r.upstream]--;
    this.finishedTotal[r.upstream]++;
    const answered =
      r.outcome === 'ok' || r.outcome === 'reset' || r.outcome === 'client_abort' || r.outcome === 'timeout';
    const firstByteAt = r.firstByteAt > 0 ? r.firstByteAt : r.outcome === 'ok' ? r.headersAt : 0;
    const ttfbMs = answered && firstByteAt > 0 ? firstByteAt - r.startedAt : undefined;
    const durationMs = r.outcome === 'ok' ? r.endedAt - r.startedAt : undefined;
    const t = r.tokens;
    this.windows[r.upstream].record(r.outcome, ttfbMs, durationMs, t);
    const b = this.batch;
    const i = b.n++;
    b.upstream[i] = r.upstream === 'new' ? 1 : 0;
    b.outcome[i] = r.outcome;
    b.status[i] = r.status;
    b.reason[i] = r.fallback ? 'fallback' : r.reason;
    b.ttfb[i] = ttfbMs ?? Number.NaN;
    b.duration[i] = durationMs ?? Number.NaN;
    b.bucket[i] = r.bucket;
    b.method[i] = r.method;
    b.path[i] = r.path;
    b.protocol[i] = r.protocol;
    b.headersMs[i] = r.headersAt > 0 ? r.headersAt - r.startedAt : Number.NaN;
    b.totalMs[i] = r.endedAt - r.startedAt;
    b.poolWaitMs[i] = r.startedAt - r.dispatchedAt;
    b.bytes[i] = r.bytesOut;
    b.endedAt[i] = r.endedAt;
    if (t === undefined) b.end[i] = -1;
    else {
      b.end[i] = END_CLASS_INDEX[t.end];
      b.events[i] = t.events;
      b.tokenEvents[i] = t.tokenEvents;
      b.outputTokens[i] = t.outputTokens;
      // Timing of a stream the client cut or held back is not the upstream's alone (as in the window).
      const timed = t.end !== 'client_abort' && !t.heldBack;
      b.tpot[i] = (timed ? tpotMs(t) : undefined) ?? Number.NaN;
      b.maxGap[i] = timed && t.tokenEvents >= 2 ? t.maxGapMs : Number.NaN;
    }
    if (i === 0) this.batchTimer = setTimeout(this.flushBatch, BATCH_MS);
    if (b.n === BATCH_MAX) this.flush();
  }

  /** Meters the streams waiting in the batch: Prometheus counters and histograms, then access lines. */
  flush(): void {
    const b = this.batch;
    const n = b.n;
    if (n === 0) return;
    b.n = 0;
    clearTimeout(this.batchTimer);
    this.batchTimer = undefined;
    // Counts per label set: [upstream][outcome], and per reason [upstream][code class].
    const outcomes = new Float64Array(UPSTREAMS.length * OUTCOMES.length);
    const requests = new Map<string, Float64Array>();
    for (let i = 0; i < n; i++) {
      const u = b.upstream[i]!;
      const ttfb = b.ttfb[i]!;
      const duration = b.duration[i]!;
      if (!Number.isNaN(ttfb)) this.ttfbHistograms[UPSTREAMS[u]!].observe(ttfb / 1000);
      if (!Number.isNaN(duration)) this.durationHistograms[UPSTREAMS[u]!].observe(duration / 1000);
      outcomes[u * OUTCOMES.length + OUTCOME_INDEX[b.outcome[i]!]]! += 1;
      const reason = b.reason[i]!;
      let byClass = requests.get(reason);
      if (!byClass) {
        byClass = new Float64Array(UPSTREAMS.length * CODE_CLASS.length);
        requests.set(reason, byClass);
      }
      const codeClass = Math.floor(b.status[i]! / 100);
      byClass[u * CODE_CLASS.length + (codeClass < CODE_CLASS.length ? codeClass : 0)]! += 1;
    }
    for (let k = 0; k < outcomes.length; k++) {
      if (outcomes[k] === 0) continue;
      const labels = { upstream: UPSTREAMS[Math.floor(k / OUTCOMES.length)]!, outcome: OUTCOMES[k % OUTCOMES.length]! };
      this.metrics.outcomes.inc(labels, outcomes[k]);
    }
    for (const [reason, byClass] of requests) {
      for (let k = 0; k < byClass.length; k++) {
        if (byClass[k] === 0) continue;
        const upstream = UPSTREAMS[Math.floor(k / CODE_CLASS.length)]!;
        this.metrics.requests.inc({ upstream, code_class: CODE_CLASS[k % CODE_CLASS.length]!, reason }, byClass[k]);
      }
    }
    this.meterTokens(n);
    if (this.accessLog) {
      // Wall-clock time of a monotonic instant, read once per batch.
      const wallOffset = Date.now() - performance.now();
      for (let i = 0; i < n; i++) {
        const ttfb = b.ttfb[i]!;
        const headers = b.headersMs[i]!;
        this.accessLines.line(
          {
            upstream: UPSTREAMS[b.upstream[i]!]!,
            reason: b.reason[i]!,
            bucket: b.bucket[i]!,
            method: b.method[i]!,
            path: withoutQuery(b.path[i]!),
            proto: b.protocol[i]!,
            status: b.status[i]!,
            outcome: b.outcome[i]!,
            pool_wait_ms: round(b.poolWaitMs[i]!),
            ttfb_ms: Number.isNaN(ttfb) ? null : round(ttfb),
            headers_ms: Number.isNaN(headers) ? null : round(headers),
            duration_ms: round(b.totalMs[i]!),
            bytes: b.bytes[i]!,
            tokens: this.tokenFields(i),
          },
          wallOffset + b.endedAt[i]!,
        );
      }
      this.accessLines.flush();
    }
    // Let go of the strings (paths) of this batch.
    b.path.fill('', 0, n);
  }

  /** Token accounting's counters and histograms for the first n streams of the batch. */
  private meterTokens(n: number): void {
    const b = this.batch;
    const m = this.metrics;
    const ends = new Float64Array(UPSTREAMS.length * END_CLASSES.length);
    const tokenEvents = [0, 0];
    const outputTokens = [0, 0];
    let any = false;
    for (let i = 0; i < n; i++) {
      const end = b.end[i]!;
      if (end < 0) continue;
      any = true;
      const u = b.upstream[i]!;
      ends[u * END_CLASSES.length + end]! += 1;
      tokenEvents[u]! += b.tokenEvents[i]!;
      if (b.outputTokens[i]! > 0) outputTokens[u]! += b.outputTokens[i]!;
      const tpot = b.tpot[i]!;
      if (!Number.isNaN(tpot)) this.tpotHistograms[UPSTREAMS[u]!].observe(tpot / 1000);
      const maxGap = b.maxGap[i]!;
      if (!Number.isNaN(maxGap)) this.maxGapHistograms[UPSTREAMS[u]!].observe(maxGap / 1000);
    }
    if (!any) return;
    for (let k = 0; k < ends.length; k++) {
      if (ends[k] === 0) continue;
      const upstream = UPSTREAMS[Math.floor(k / END_CLASSES.length)]!;
      m.answerEnds.inc({ upstream, end: END_CLASSES[k % END_CLASSES.length]! }, ends[k]);
    }
    for (let u = 0; u < UPSTREAMS.length; u++) {
      if (tokenEvents[u]! > 0) m.tokenEvents.inc({ upstream: UPSTREAMS[u]! }, tokenEvents[u]);
      if (outputTokens[u]! > 0) m.outputTokens.inc({ upstream: UPSTREAMS[u]! }, outputTokens[u]);
    }
  }

  /** Access-log fields of token accounting; none when the answer was not read. */
  private tokenFields(i: number): AccessTokenFields | undefined {
    const b = this.batch;
    const end = b.end[i]!;
    if (end < 0) return undefined;
    const tpot = b.tpot[i]!;
    const maxGap = b.maxGap[i]!;
    return {
      end: END_CLASSES[end]!,
      events: b.events[i]!,
      token_events: b.tokenEvents[i]!,
      output_tokens: b.outputTokens[i]! >= 0 ? b.outputTokens[i]! : null,
      tpot_ms: Number.isNaN(tpot) ? null : round(tpot),
      max_gap_ms: Number.isNaN(maxGap) ? null : round(maxGap),
    };
  }
}

/** The token window as the metrics publish it: seconds, tokens per second, and shares of answers. */
function tokenReading(v: TokenView): TokenWindowReading {
  const seconds = (ms: number | undefined) => (ms === undefined ? undefined : ms / 1000);
  const itl: Record<string, number | undefined> = {};
  const tpot: Record<string, number | undefined> = {};
  for (const q of TOKEN_WINDOW_QUANTILES) {
    itl[q] = seconds(v.itlQuantile(Number(q)));
    tpot[q] = seconds(v.tpotQuantile(Number(q)));
  }
  const tokensPerSecond: Record<string, number | undefined> = {};
  for (const q of TOKENS_PER_SECOND_QUANTILES) tokensPerSecond[q] = v.tokensPerSecondQuantile(Number(q));
  const endRatio: Record<string, number | undefined> = {};
  for (const end of END_CLASSES) endRatio[end] = v.answers > 0 ? v.ends[end] / v.answers : undefined;
  return { itl, tpot, tokensPerSecond, endRatio };
}

/** A query string may carry keys and tokens (`?api_key=`, a routing key read from the query): never logged. */
function withoutQuery(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

// Reads query rules' values from Prometheus on the guard's interval, off the request path, each query bounded in time.

import { request } from 'undici';
import type { PrometheusSourceConfig, QueryRule } from '../config/types.js';
import type { Logger } from '../log.js';

/** Why a query gave no usable value; each is inconclusive, never a pass that promotes nor a breach. */
export type QueryFailure = 'no_data' | 'multiple_series' | 'not_a_number' | 'error' | 'timeout';

export type QueryReading =
  | { status: 'ok'; value: number; at: number }
  | { status: QueryFailure; detail: string; at: number };

/** A rule's readings: the query's, and legacy_query's for a relative rule. */
export interface RuleReadings {
  new: QueryReading;
  legacy?: QueryReading;
}

/** What evaluation reads: the latest readings by rule name (absent until the first poll answered). */
export type QueryReadings = ReadonlyMap<string, RuleReadings>;

interface PrometheusAnswer {
  status?: string;
  error?: string;
  data?: { resultType?: string; result?: unknown };
}

/** One instant query: exactly one finite value, or the reason there is none. */
export async function queryOnce(
  source: PrometheusSourceConfig,
  promql: string,
  now: () => number,
): Promise<QueryReading> {
  const url = `${source.url}/api/v1/query?query=${encodeURIComponent(promql)}`;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (source.bearerToken) headers.authorization = `Bearer ${source.bearerToken}`;
  let answer: PrometheusAnswer;
  let status: number;
  try {
    const res = await request(url, { headers, signal: AbortSignal.timeout(source.timeoutMs) });
    status = res.statusCode;
    answer = (await res.body.json().catch(() => ({}))) as PrometheusAnswer;
  } catch (err) {
    const name = (err as Error).name;
    if (name === 'TimeoutError' || name === 'AbortError')
      return { status: 'timeout', detail: `no answer within ${source.timeoutMs} ms`, at: now() };
    return { status: 'error', detail: (err as Error).message, at: now() };
  }
  if (status !== 200 || answer.status !== 'success') {
    return { status: 'error', detail: `HTTP ${status}: ${answer.error ?? 'not a Prometheus answer'}`, at: now() };
  }
  const result = answer.data?.result;
  let raw: unknown;
  if (answer.data?.resultType === 'scalar') {
    raw = (result as [number, string] | undefined)?.[1];
  } else if (answer.data?.resultType === 'vector' && Array.isArray(result)) {
    if (result.length === 0) return { status: 'no_data', detail: 'the query returned no series', at: now() };
    if (result.length > 1)
      return { status: 'multiple_series', detail: `the query returned ${result.length} series, not one`, at: now() };
    raw = (result[0] as { value?: [number, string] }).value?.[1];
  } else {
    return { status: 'error', detail: `result type ${answer.data?.resultType ?? 'missing'}, not a vector`, at: now() };
  }
  const value = Number(raw);
  if (typeof raw !== 'string' || !Number.isFinite(value))
    return { status: 'not_a_number', detail: `the value is ${String(raw)}`, at: now() };
  return { status: 'ok', value, at: now() };
}

export interface PrometheusSourceOptions {
  source: PrometheusSourceConfig;
  rules: readonly QueryRule[];
  logger: Logger;
  clock: () => number;
  /** Counts every query by rule and result (veer_slo_query_total). */
  count: (rule: string, result: 'ok' | QueryFailure) => void;
}

/**
 * Polls every query rule concurrently; evaluation reads the latest readings and never waits for a
 * query. A rule whose state changes (ok → failing, or the failure's kind) is logged once, not per poll.
 */
export class PrometheusSource {
  private readings = new Map<string, RuleReadings>();
  private logged = new Map<string, string>();
  private polling: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: PrometheusSourceOptions) {}

  get latest(): QueryReadings {
    return this.readings;
  }

  /** Polls now and then every `intervalMs` until stopped (the guard's interval: evaluation reads the latest). */
  start(intervalMs: number): void {
    this.stop();
    void this.poll();
    this.timer = setInterval(() => void this.poll(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One round of every query; a round still running is joined, not doubled. */
  poll(): Promise<void> {
    this.polling ??= this.round().finally(() => {
      this.polling = undefined;
    });
    return this.polling;
  }

  private async round(): Promise<void> {
    const { source, rules, clock } = this.options;
    await Promise.all(
      rules.map(async (rule) => {
        const [mine, legacy] = await Promise.all([
          queryOnce(source, rule.query, clock),
          rule.legacyQuery === undefined ? undefined : queryOnce(source, rule.legacyQuery, clock),
        ]);
        this.readings.set(rule.name, legacy ? { new: mine, legacy } : { new: mine });
        this.note(rule.name, mine);
        if (legacy) this.note(`${rule.name} (legacy_query)`, legacy);
      }),
    );
  }

  private note(label: string, reading: QueryReading): void {
    this.options.count(label.split(' ')[0]!, reading.status);
    const previous = this.logged.get(label);
    if (previous === reading.status || (previous === undefined && reading.status === 'ok')) return;
    this.logged.set(label, reading.status);
    if (reading.status === 'ok') this.options.logger.info({ rule: label }, 'slo query answers again');
    else
      this.options.logger.warn(
        { rule: label, result: reading.status, detail: reading.detail },
        'slo query inconclusive: its rule is not judged until it answers',
      );
  }
}

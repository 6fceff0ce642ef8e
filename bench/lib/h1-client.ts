// hrtime-timed HTTP/1.1 requests on undici pools: time to headers, to the first body byte, to the end, and per SSE event.

import { type Dispatcher, Pool } from 'undici';

export interface Timing {
  status: number;
  /** The x-mock-upstream header: which mock answered ('legacy' or 'new'). */
  upstream: string;
  startNs: bigint;
  headersNs: bigint;
  /** First response body byte (for SSE: the first token event); 0n when none arrived. */
  firstByteNs: bigint;
  endNs: bigint;
  /** Arrival of the latest body chunk (a held stream is alive while this keeps moving). */
  lastDataNs: bigint;
  /** SSE events received (count of blank-line terminators). */
  events: number;
  error: string | undefined;
}

export interface RequestSpec {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string;
}

export interface TimedOptions {
  /** Per SSE event: its arrival time and the `t` the mock stamped on it when writing (ms since the epoch). */
  onEvent?: (recvNs: bigint, t: number) => void;
}

/** A request in flight: its timing fills in as the response arrives. */
export interface Started {
  timing: Timing;
  done: Promise<Timing>;
  /** Drops the request (how the bench ends a held stream). */
  abort(): void;
}

const LF = 10;
const T_FIELD = /"t":([0-9.]+)/;
const kAbort = new Error('dropped by the bench');

/** A pool of keep-alive connections without undici's timeouts (streams are held as long as the bench wants). */
export function benchPool(url: string, connections: number): Pool {
  return new Pool(url, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 120_000,
    keepAliveMaxTimeout: 600_000,
    headersTimeout: 0,
    bodyTimeout: 0,
    connectTimeout: 30_000,
  });
}

class TimedHandler implements Dispatcher.DispatchHandler {
  readonly t: Timing = {
    status: 0,
    upstream: '',
    startNs: process.hrtime.bigint(),
    headersNs: 0n,
    firstByteNs: 0n,
    endNs: 0n,
    lastDataNs: 0n,
    events: 0,
    error: undefined,
  };
  private lastWasLf = false;
  private text = '';
  private controller: Dispatcher.DispatchController | undefined;
  private dropped = false;
  resolve: (t: Timing) => void = () => {};

  constructor(private readonly options: TimedOptions) {}

  abort(): void {
    this.dropped = true;
    this.controller?.abort(kAbort);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.dropped) controller.abort(kAbort);
  }

  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: Record<string, unknown>): void {
    this.t.headersNs = process.hrtime.bigint();
    this.t.status = status;
    const up = headers['x-mock-upstream'];
    this.t.upstream = typeof up === 'string' ? up : '';
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    const now = process.hrtime.bigint();
    if (this.t.firstByteNs === 0n) this.t.firstByteNs = now;
    this.t.lastDataNs = now;
    if (this.options.onEvent) {
      this.text += chunk.toString('latin1');
      let at = this.text.indexOf('\n\n');
      while (at !== -1) {
        const event = this.text.slice(0, at);
        this.text = this.text.slice(at + 2);
        this.t.events++;
        const m = T_FIELD.exec(event);
        if (m) this.options.onEvent(now, Number(m[1]));
        at = this.text.indexOf('\n\n');
      }
      return;
    }
    // Counting only: scan bytes, no strings (the streams scenario holds thousands of these).
    let prev = this.lastWasLf;
    for (let i = 0; i < chunk.length; i++) {
      const lf = chunk[i] === LF;
      if (lf && prev) this.t.events++;
      prev = lf;
    }
    this.lastWasLf = prev;
  }

  onResponseEnd(): void {
    this.t.endNs = process.hrtime.bigint();
    this.resolve(this.t);
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.t.endNs = process.hrtime.bigint();
    this.t.error = err === kAbort ? 'dropped' : ((err as NodeJS.ErrnoException).code ?? err.message);
    this.resolve(this.t);
  }
}

/** One request; never rejects (failures are in `error`). */
export function timedRequest(pool: Dispatcher, spec: RequestSpec, options: TimedOptions = {}): Promise<Timing> {
  return startRequest(pool, spec, options).done;
}

export function startRequest(pool: Dispatcher, spec: RequestSpec, options: TimedOptions = {}): Started {
  const handler = new TimedHandler(options);
  const done = new Promise<Timing>((resolve) => {
    handler.resolve = resolve;
    try {
      pool.dispatch(
        {
          method: spec.method,
          path: spec.path,
          headers: spec.body === undefined ? spec.headers : { 'content-type': 'application/json', ...spec.headers },
          body: spec.body ?? null,
        },
        handler,
      );
    } catch (err) {
      handler.onResponseError(undefined as unknown as Dispatcher.DispatchController, err as Error);
    }
  });
  return { timing: handler.t, done, abort: () => handler.abort() };
}

/** A small chat completion request: JSON back, or SSE when `stream` is true. */
export function chatRequest(key: string, stream: boolean): RequestSpec {
  return {
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { 'x-user-id': key },
    body: stream ? STREAM_BODY : PLAIN_BODY,
  };
}

const PLAIN_BODY = JSON.stringify({ model: 'bench', messages: [{ role: 'user', content: 'hi' }] });
const STREAM_BODY = JSON.stringify({ model: 'bench', stream: true, messages: [{ role: 'user', content: 'hi' }] });

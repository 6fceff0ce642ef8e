// Request/reply over a forked child's IPC channel, how the bench drives its mock host and client workers.

import type { ChildProcess } from 'node:child_process';

interface Call {
  id: number;
  type: string;
  payload?: unknown;
}

interface Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

let nextId = 1;
const pending = new WeakMap<ChildProcess, Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>>();

/** Sends `type` to the child and resolves with its handler's return value. */
export function call<T = unknown>(
  child: ChildProcess,
  type: string,
  payload?: unknown,
  timeoutMs = 120_000,
): Promise<T> {
  let waiting = pending.get(child);
  if (!waiting) {
    const map = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
    waiting = map;
    pending.set(child, map);
    child.on('message', (m: Reply) => {
      const w = map.get(m.id);
      if (!w) return;
      map.delete(m.id);
      if (m.ok) w.resolve(m.value);
      else w.reject(new Error(m.error));
    });
    child.once('exit', (code, signal) => {
      for (const w of map.values()) w.reject(new Error(`child ${child.pid} exited (${code ?? signal})`));
      map.clear();
    });
  }
  const id = nextId++;
  const map = waiting;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      map.delete(id);
      reject(new Error(`child ${child.pid} did not answer "${type}" within ${timeoutMs} ms`));
    }, timeoutMs);
    map.set(id, {
      resolve: (v) => {
        clearTimeout(timer);
        resolve(v as T);
      },
      reject: (e) => {
        clearTimeout(timer);
        reject(e);
      },
    });
    child.send({ id, type, payload } satisfies Call);
  });
}

/** In the child: answers calls with the named handlers; exits when the parent goes away. */
export function serve(handlers: Record<string, (payload: never) => unknown>): void {
  process.on('message', (m: Call) => {
    const handler = handlers[m.type];
    const reply = (r: Omit<Reply, 'id'>) => process.send?.({ id: m.id, ...r });
    if (!handler) return reply({ ok: false, error: `unknown call ${m.type}` });
    Promise.resolve()
      .then(() => handler(m.payload as never))
      .then(
        (value) => reply({ ok: true, value }),
        (err: Error) => reply({ ok: false, error: err.stack ?? err.message }),
      );
  });
  // An orphaned worker must not linger holding thousands of sockets.
  process.on('disconnect', () => process.exit(0));
}

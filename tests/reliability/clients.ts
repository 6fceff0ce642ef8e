// Small one-shot clients for the reliability suite: each request on its own connection, closed after, so fd counts settle.

import http from 'node:http';
import http2 from 'node:http2';

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** The stream ended in an error (reset, truncated chunked body) instead of a clean end. */
  error?: string;
  /** HTTP/2 only: the RST_STREAM code the stream closed with (0 for a clean end). */
  rstCode?: number;
}

/** One HTTP/1.1 request on a fresh connection (`Connection: close`). */
export function h1(
  base: string,
  path: string,
  options: { method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  return new Promise((resolve) => {
    const req = http.request(`${base}${path}`, {
      method: options.method ?? 'GET',
      agent: false,
      // A length, not chunked: node would send a DELETE's body unframed.
      headers:
        options.body === undefined
          ? options.headers
          : { 'content-length': String(Buffer.byteLength(options.body)), ...options.headers },
    });
    let reply: Reply = { status: 0, headers: {}, body: '' };
    req.on('response', (res) => {
      reply = { status: res.statusCode ?? 0, headers: res.headers, body: '' };
      res.setEncoding('utf8');
      res.on('data', (d: string) => (reply.body += d));
      res.on('end', () => resolve(reply));
      res.on('error', (err) => resolve({ ...reply, error: err.message }));
      res.on('aborted', () => resolve({ ...reply, error: 'aborted' }));
    });
    req.on('error', (err) => resolve({ ...reply, error: err.message }));
    req.end(options.body);
  });
}

/** One HTTP/2 request on a fresh h2c session, closed after. */
export function h2(
  base: string,
  path: string,
  options: { method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  return new Promise((resolve) => {
    const session = http2.connect(base);
    session.on('error', () => {});
    const req = session.request(
      { ':method': options.method ?? 'GET', ':path': path, ...options.headers },
      { endStream: options.body === undefined },
    );
    let reply: Reply = { status: 0, headers: {}, body: '' };
    let error: string | undefined;
    req.setEncoding('utf8');
    req.on('response', (h) => {
      reply = { status: Number(h[':status']), headers: h as Reply['headers'], body: '' };
    });
    req.on('data', (d: string) => (reply.body += d));
    req.on('error', (err) => (error = err.message));
    req.on('close', () => {
      session.close();
      resolve({ ...reply, rstCode: req.rstCode, ...(error || req.rstCode ? { error: error ?? 'reset' } : {}) });
    });
    if (options.body !== undefined) req.end(options.body);
  });
}

export function errorCode(reply: Reply): string | undefined {
  try {
    return (JSON.parse(reply.body) as { error: { code: string } }).error.code;
  } catch {
    return undefined;
  }
}

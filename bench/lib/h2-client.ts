// hrtime-timed HTTP/2 (h2c, prior knowledge) requests on a few shared sessions.

import http2 from 'node:http2';

export async function h2Sessions(url: string, count: number): Promise<http2.ClientHttp2Session[]> {
  const sessions: http2.ClientHttp2Session[] = [];
  for (let i = 0; i < count; i++) {
    const session = http2.connect(url, { settings: { enablePush: false }, peerMaxConcurrentStreams: 10_000 });
    session.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      session.once('connect', () => resolve());
      session.once('error', reject);
    });
    sessions.push(session);
  }
  return sessions;
}

export interface H2Timing {
  status: number;
  upstream: string;
  /** Request start to response end, µs. */
  us: number;
  error: string | undefined;
}

/** One request with a small body; never rejects. */
export function h2Timed(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body: string,
): Promise<H2Timing> {
  const start = process.hrtime.bigint();
  return new Promise((resolve) => {
    const out: H2Timing = { status: 0, upstream: '', us: 0, error: undefined };
    const finish = (error?: string) => {
      if (out.us !== 0) return;
      out.us = Number(process.hrtime.bigint() - start) / 1000;
      out.error = error;
      resolve(out);
    };
    let req: http2.ClientHttp2Stream;
    try {
      req = session.request(headers);
    } catch (err) {
      finish((err as Error).message);
      return;
    }
    req.on('response', (h) => {
      out.status = Number(h[':status']);
      const up = h['x-mock-upstream'];
      out.upstream = typeof up === 'string' ? up : '';
    });
    req.on('data', () => {});
    req.on('end', () => finish());
    req.on('error', (err) => finish(err.message));
    req.on('close', () => finish(out.status === 0 ? 'closed' : undefined));
    req.end(body);
  });
}

// Reading an admin request's JSON body: capped in size, parsed, with errors an operator can act on.

import type { IncomingMessage } from 'node:http';

/** An admin request that cannot be served; becomes `{"error":{"code","message"}}` with `status`. */
export class AdminError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The body as parsed JSON (undefined when empty); 413 past `maxBytes`, 400 when it is not JSON. */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > maxBytes) {
    throw new AdminError(413, 'payload_too_large', `request body is larger than ${maxBytes} bytes`);
  }
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      throw new AdminError(413, 'payload_too_large', `request body is larger than ${maxBytes} bytes`);
    }
    parts.push(chunk);
  }
  if (size === 0) return undefined;
  const type = req.headers['content-type'];
  if (type !== undefined && !/^application\/json\b/i.test(type)) {
    throw new AdminError(415, 'unsupported_media_type', 'send the body as application/json');
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch (err) {
    throw new AdminError(400, 'bad_json', `request body is not valid JSON: ${(err as Error).message}`);
  }
}

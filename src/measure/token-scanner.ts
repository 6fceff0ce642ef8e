// Which token scanner (if any) reads an answer: SSE streams and JSON answers with a 2xx status.

import { JsonAnswerScanner } from './json-scan.js';
import { SseScanner } from './sse-scan.js';
import type { StreamFormatSetting } from './token-summary.js';

export type TokenScanner = SseScanner | JsonAnswerScanner;

/** A scanner for a 2xx answer of type text/event-stream or JSON; undefined for anything else. */
export function scannerFor(
  setting: StreamFormatSetting,
  path: string,
  status: number,
  contentType: string | string[] | undefined,
): TokenScanner | undefined {
  if (status < 200 || status >= 300 || typeof contentType !== 'string') return undefined;
  const type = contentType.trimStart().toLowerCase();
  if (type.startsWith('text/event-stream')) return new SseScanner(setting, path);
  if (type.startsWith('application/json') || /^application\/[a-z0-9.+-]*\+json/.test(type)) {
    return new JsonAnswerScanner();
  }
  return undefined;
}

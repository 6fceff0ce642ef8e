// Token accounting of a non-streaming JSON answer: its head and tail are copied aside as they are relayed, and read at the end.

import { ByteCapture } from './event-bytes.js';
import { jsonAnswer } from './event-kind.js';
import type { EndClass, StreamFormat, TokenSummary } from './token-summary.js';

/**
 * The body goes on to the client untouched; only its first and last 8 KiB are copied (an answer opens
 * with `error` or its content and closes with `usage`), so memory stays bounded whatever its size.
 */
const HEAD = 8 * 1024;
const TAIL = 8 * 1024;

export class JsonAnswerScanner implements TokenSummary {
  readonly kind = 'json' as const;
  readonly format: StreamFormat = 'openai';
  readonly events = 0;
  readonly tokenEvents = 0;
  readonly firstTokenAt = 0;
  readonly lastTokenAt = 0;
  readonly gaps = undefined;
  readonly maxGapMs = 0;
  heldBack = false;
  outputTokens = -1;
  end: EndClass = 'truncated';
  /** The body is a completion (choices, content with a role, output, usage of output tokens, or an error). */
  answer = false;
  private readonly capture = new ByteCapture(HEAD, TAIL);

  feed(chunk: Buffer, _now: number): void {
    this.capture.append(chunk, 0, chunk.length);
  }

  finish(how: 'upstream_end' | 'cut' | 'client_abort'): EndClass {
    // What came of the body (all of it, or its head when it was cut) says whether it is a completion.
    const read = jsonAnswer(this.capture.buf, this.capture.length);
    this.answer = read.answer;
    if (how === 'client_abort') this.end = 'client_abort';
    else if (how === 'cut') this.end = 'truncated';
    else {
      this.outputTokens = read.outputTokens;
      this.end = read.error ? 'inband_error' : read.empty ? 'empty' : 'complete';
    }
    return this.end;
  }
}

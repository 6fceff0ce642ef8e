// Token accounting as an exchange's response observer: picks a scanner by the response head, feeds it each relayed chunk, ends it.

import { performance } from 'node:perf_hooks';
import type { Outcome } from './outcome.js';
import { scannerFor, type TokenScanner } from './token-scanner.js';
import type { StreamFormatSetting, TokenSummary } from './token-summary.js';

/**
 * One per exchange (proxy/downstream.ts's ResponseObserver). Reads only 2xx SSE and JSON answers; for
 * any other it costs a status check. The summary it leaves in `tokens` goes to the recorder with the
 * stream's record, so the window, the metrics and the access line see one answer once.
 */
export class TokenAccounting {
  private scanner: TokenScanner | undefined;

  constructor(
    private readonly setting: StreamFormatSetting,
    private readonly path: string,
  ) {}

  /** The answer's summary; none for a JSON body that is not a completion (a model list, an embedding). */
  get tokens(): TokenSummary | undefined {
    const s = this.scanner;
    return s === undefined || (s.kind === 'json' && !s.answer) ? undefined : s;
  }

  onHead(status: number, headers: Record<string, string | string[] | undefined>): void {
    this.scanner = scannerFor(this.setting, this.path, status, headers['content-type']);
  }

  onChunk(chunk: Buffer): void {
    // The time of the chunk's arrival (it was written to the client just before): its events' time.
    if (this.scanner !== undefined) this.scanner.feed(chunk, performance.now());
  }

  onHeldBack(): void {
    if (this.scanner !== undefined) this.scanner.heldBack = true;
  }

  onEnd(outcome: Outcome): void {
    this.scanner?.finish(outcome === 'client_abort' ? 'client_abort' : outcome === 'ok' ? 'upstream_end' : 'cut');
  }
}

// A downstream with no client: the response is read and dropped (for a detached exchange, such as a shadow copy).

import type { Downstream, RequestBody } from './downstream.js';
import type { OutHeaders } from './headers.js';

/**
 * Takes every chunk at once and never asks the upstream to pause. `drop()` ends the exchange at any
 * moment as a client that went away would (the upstream request is aborted, the record says client_abort).
 */
export class DiscardDownstream implements Downstream {
  readonly protocol: string;
  private closeListener: (() => void) | undefined;

  constructor(protocol = 'discard') {
    this.protocol = protocol;
  }

  onClose(listener: () => void): void {
    this.closeListener = listener;
  }

  /** Stops the exchange: its upstream request is aborted. */
  drop(): void {
    const listener = this.closeListener;
    this.closeListener = undefined;
    listener?.();
  }

  respond(_status: number, _headers: OutHeaders, _lastOnConnection: boolean): void {}
  earlyHints(_hints: OutHeaders): void {}
  write(_chunk: Buffer): boolean {
    return false;
  }
  onDrain(_listener: () => void): void {}
  end(): void {
    this.closeListener = undefined;
  }
  endAndStopUpload(_body: RequestBody): void {
    this.end();
  }
  /** No client uploads here: the body (a tee) is the exchange's own business. */
  stillSending(): boolean {
    return false;
  }
  waitingForBody(): boolean {
    return false;
  }
  cutStalled(): void {
    this.end();
  }
  cutMidStream(): void {
    this.end();
  }
  answer(_status: number, _headers: Record<string, string | number>, _body: string, _unfinished: RequestBody): void {
    this.end();
  }
}

// Sends one confirmed command to the admin API and says how it went: the outcome on success, the API's own words on refusal.

import { ApiError, api } from './api.js';

const $ = (id: string) => document.getElementById(id)!;

export function showResult(text: string, ok: boolean): void {
  const out = $('action-result');
  out.dataset.ok = String(ok);
  // A refusal interrupts; a success waits its turn.
  out.setAttribute('aria-live', ok ? 'polite' : 'assertive');
  out.textContent = text;
}

/** The page's refresh after any command (set once by the entry point). */
let refresh: () => void = () => {};
export function onCommandDone(fn: () => void): void {
  refresh = fn;
}

/** Runs one command; `outcome` words the reply. Resolves true when the API accepted it. */
export async function command<T>(
  what: string,
  method: string,
  path: string,
  body: unknown,
  outcome: (reply: T) => string,
): Promise<boolean> {
  try {
    const reply = await api<T>(method, path, body);
    showResult(`${what}: done at ${new Date().toLocaleTimeString()}. ${outcome(reply)}`, true);
    return true;
  } catch (err) {
    const text =
      err instanceof ApiError
        ? `${what} refused: ${err.status} ${err.code}: ${err.message}${err.problems.length > 0 ? ` (${err.problems.join('; ')})` : ''}`
        : `${what} failed: ${(err as Error).message}`;
    showResult(text, false);
    return false;
  } finally {
    refresh();
  }
}

/** Wires a form's submit to a handler; its buttons are busy (and cannot double-fire) until the answer. */
export function onSubmit(form: HTMLFormElement, handler: () => Promise<unknown>): void {
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(form, handler);
  });
}

export function busy(container: HTMLElement, handler: () => Promise<unknown>): void {
  const buttons = container.querySelectorAll('button');
  buttons.forEach((b) => {
    b.disabled = true;
  });
  container.setAttribute('aria-busy', 'true');
  handler().finally(() => {
    buttons.forEach((b) => {
      b.disabled = false;
    });
    container.removeAttribute('aria-busy');
  });
}

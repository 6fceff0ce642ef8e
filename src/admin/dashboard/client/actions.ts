// The operator's actions (token, kill with confirm and reason, resume, promote, set weight) and how their outcome reads.

import type { Rollout } from '../../api-types.js';
import { ApiError, api, token } from './api.js';
import { STATE_LABEL } from './view.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

function show(text: string, ok: boolean): void {
  const out = $('action-result');
  out.dataset.ok = String(ok);
  // A refusal interrupts; a success waits its turn.
  out.setAttribute('aria-live', ok ? 'polite' : 'assertive');
  out.textContent = text;
}

function showTokenState(): void {
  $('token-state').textContent = token.get()
    ? 'A token is set for this tab (kept in sessionStorage, sent only as an Authorization header).'
    : 'No token: every action will be refused (401).';
}

/** Runs one command; the API's own words are shown when it refuses. */
async function run(what: string, method: string, path: string, body: unknown, refresh: () => void): Promise<boolean> {
  try {
    const r = await api<{ rollout: Rollout }>(method, path, body);
    show(
      `${what}: done at ${new Date().toLocaleTimeString()}. The rollout is ${STATE_LABEL[r.rollout.state]} at ${r.rollout.weight_percent} %.`,
      true,
    );
    refresh();
    return true;
  } catch (err) {
    const text =
      err instanceof ApiError
        ? `${what} refused: ${err.status} ${err.code}: ${err.message}`
        : `${what} failed: ${(err as Error).message}`;
    show(text, false);
    refresh();
    return false;
  }
}

/** Wires a form's submit to a command; the button is busy (and cannot double-fire) until the answer. */
function onSubmit(form: HTMLFormElement, handler: () => Promise<unknown>): void {
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const buttons = form.querySelectorAll('button');
    buttons.forEach((b) => {
      b.disabled = true;
    });
    form.setAttribute('aria-busy', 'true');
    handler().finally(() => {
      buttons.forEach((b) => {
        b.disabled = false;
      });
      form.removeAttribute('aria-busy');
    });
  });
}

const reasonOf = (id: string) => {
  const v = $<HTMLInputElement>(id).value.trim();
  return v === '' ? undefined : v;
};

export function setupActions(refresh: () => void): void {
  showTokenState();
  const tokenForm = $<HTMLFormElement>('token-form');
  tokenForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $<HTMLInputElement>('token');
    const value = input.value.trim();
    if (value) token.set(value);
    input.value = '';
    showTokenState();
  });
  $('token-forget').addEventListener('click', () => {
    token.clear();
    showTokenState();
  });

  const dialog = $<HTMLDialogElement>('kill-dialog');
  $('kill-open').addEventListener('click', () => {
    dialog.showModal();
    $('kill-reason').focus();
  });
  $('kill-cancel').addEventListener('click', () => dialog.close());
  onSubmit($<HTMLFormElement>('kill-form'), async () => {
    const ok = await run('Kill', 'POST', '/api/kill', { reason: $<HTMLTextAreaElement>('kill-reason').value }, refresh);
    dialog.close();
    if (ok) $<HTMLTextAreaElement>('kill-reason').value = '';
  });

  onSubmit($<HTMLFormElement>('resume-form'), () =>
    run('Resume', 'POST', '/api/resume', { reason: reasonOf('resume-reason') }, refresh),
  );
  onSubmit($<HTMLFormElement>('promote-form'), () =>
    run('Promote', 'POST', '/api/promote', { reason: reasonOf('promote-reason') }, refresh),
  );
  onSubmit($<HTMLFormElement>('weight-form'), () =>
    run(
      'Set weight',
      'PUT',
      '/api/weight',
      { percent: Number($<HTMLInputElement>('weight-percent').value), reason: reasonOf('weight-reason') },
      refresh,
    ),
  );
}

// The overrides panel: keys pinned to new and to legacy (text only: keys are client input), pinning and unpinning, each confirmed.

import type { Overrides } from '../../api-types.js';
import { busy, command, onSubmit } from './command.js';
import { confirmAction } from './confirm.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const listed = (o: Overrides) => `${o.new.length} pinned to new, ${o.legacy.length} to legacy`;

async function unpin(key: string, side: 'new' | 'legacy'): Promise<void> {
  const answer = await confirmAction({
    title: `Unpin this key from ${side}?`,
    detail: `Key: ${key}\nIts requests go back to the hash (the weight decides). A key pinned in the config file stays pinned.`,
    confirmLabel: 'Unpin',
    reason: 'required',
  });
  if (!answer) return;
  await command<Overrides>('Unpin', 'DELETE', '/api/overrides', { keys: [key], reason: answer.reason }, listed);
}

/**
 * Shows both lists; `data-key` holds each key as typed, for tests and scripts. The status carries them
 * only for a request with a valid token (override keys act as bearer secrets).
 */
export function renderOverrides(status: { overrides?: Overrides }): void {
  for (const side of ['new', 'legacy'] as const) {
    const list = $(`overrides-${side}`);
    const keys = status.overrides?.[side];
    if (!keys || keys.length === 0) {
      const li = document.createElement('li');
      li.className = 'muted';
      li.textContent = keys ? 'none' : 'shown with a token (enter it under Actions)';
      list.replaceChildren(li);
      continue;
    }
    list.replaceChildren(
      ...keys.map((key) => {
        const li = document.createElement('li');
        li.dataset.key = key;
        const code = document.createElement('code');
        code.textContent = key;
        const remove = document.createElement('button');
        remove.type = 'button';
        remove.className = 'small';
        remove.textContent = 'Unpin';
        remove.setAttribute('aria-label', `Unpin ${key} from ${side}`);
        remove.addEventListener('click', () => busy(li, () => unpin(key, side)));
        li.append(code, ' ', remove);
        return li;
      }),
    );
  }
}

export function setupOverrides(): void {
  const form = $<HTMLFormElement>('override-form');
  onSubmit(form, async () => {
    const key = $<HTMLInputElement>('override-key').value;
    const side = $<HTMLSelectElement>('override-side').value as 'new' | 'legacy';
    const answer = await confirmAction({
      title: `Pin this key to ${side}?`,
      detail: `Key: ${key}\nEvery request with this key goes to ${side}, before the hash (a kill still sends it to legacy).`,
      confirmLabel: `Pin to ${side}`,
      reason: 'required',
    });
    if (!answer) return;
    const ok = await command<Overrides>(
      'Pin',
      'PUT',
      '/api/overrides',
      { keys: { [key]: side }, reason: answer.reason },
      listed,
    );
    if (ok) $<HTMLInputElement>('override-key').value = '';
  });
}

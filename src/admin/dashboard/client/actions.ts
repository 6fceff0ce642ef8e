// The operator's rollout actions (token; kill; rollback, resume, promote, weight, reload, each confirmed) and how their outcome reads.

import type { ReloadReply, Rollout } from '../../api-types.js';
import { token } from './api.js';
import { command, onSubmit } from './command.js';
import { confirmAction } from './confirm.js';
import { STATE_LABEL } from './view.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

function showTokenState(): void {
  $('token-state').textContent = token.get()
    ? 'A token is set for this tab (kept in sessionStorage, sent only as an Authorization header).'
    : 'No token: every action will be refused (401).';
}

const rollout = (r: { rollout: Rollout }) =>
  `The rollout is ${STATE_LABEL[r.rollout.state]} at ${r.rollout.weight_percent} %.`;

const reloaded = (r: ReloadReply) =>
  (r.changed.length === 0 ? 'Nothing changed.' : `Changed: ${r.changed.join(', ')}.`) +
  (r.restart_required.length > 0 ? ` Needs a restart to apply: ${r.restart_required.join(', ')}.` : '');

const typed = (id: string) => $<HTMLInputElement>(id).value.trim();

/** A rollout command behind its confirmation: the reason typed beside the button is offered in the dialog. */
function confirmed(
  formId: string,
  ask: () => {
    title: string;
    detail: string;
    confirmLabel: string;
    danger?: boolean;
    required: boolean;
    reasonId?: string;
  },
  send: (reason: string | undefined) => Promise<boolean>,
): void {
  onSubmit($<HTMLFormElement>(formId), async () => {
    const q = ask();
    const answer = await confirmAction({
      title: q.title,
      detail: q.detail,
      confirmLabel: q.confirmLabel,
      danger: q.danger,
      reason: q.required ? 'required' : 'optional',
      reasonValue: q.reasonId ? typed(q.reasonId) : undefined,
    });
    if (!answer) return;
    if ((await send(answer.reason)) && q.reasonId) $<HTMLInputElement>(q.reasonId).value = '';
  });
}

export function setupActions(): void {
  showTokenState();
  $<HTMLFormElement>('token-form').addEventListener('submit', (ev) => {
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

  // The kill switch keeps its own dialog: the one action that must be found and confirmed fastest.
  const dialog = $<HTMLDialogElement>('kill-dialog');
  $('kill-open').addEventListener('click', () => {
    dialog.showModal();
    $('kill-reason').focus();
  });
  $('kill-cancel').addEventListener('click', () => dialog.close());
  onSubmit($<HTMLFormElement>('kill-form'), async () => {
    const ok = await command(
      'Kill',
      'POST',
      '/api/kill',
      { reason: $<HTMLTextAreaElement>('kill-reason').value },
      rollout,
    );
    dialog.close();
    if (ok) $<HTMLTextAreaElement>('kill-reason').value = '';
  });

  confirmed(
    'rollback-form',
    () => ({
      title: 'Roll new back to 0 %?',
      detail: 'Every keyed user goes back to legacy and the rollout stops (state rolled back) until someone resumes.',
      confirmLabel: 'Roll back',
      danger: true,
      required: true,
      reasonId: 'rollback-reason',
    }),
    (reason) => command('Rollback', 'POST', '/api/rollback', { reason }, rollout),
  );
  confirmed(
    'resume-form',
    () => ({
      title: 'Resume the rollout?',
      detail: 'Lifts a kill, a rollback or the flap latch: new gets traffic again at the weight it returns to.',
      confirmLabel: 'Resume',
      required: false,
      reasonId: 'resume-reason',
    }),
    (reason) => command('Resume', 'POST', '/api/resume', { reason }, rollout),
  );
  confirmed(
    'promote-form',
    () => ({
      title: 'Promote to the next step?',
      detail: 'Approves the next step of the rollout (100 % when no steps are configured).',
      confirmLabel: 'Promote',
      required: false,
      reasonId: 'promote-reason',
    }),
    (reason) => command('Promote', 'POST', '/api/promote', { reason }, rollout),
  );
  confirmed(
    'weight-form',
    () => ({
      title: `Set the weight on new to ${$<HTMLInputElement>('weight-percent').value} %?`,
      detail: 'Raising it adds users to new; lowering it moves the newest of them back to legacy.',
      confirmLabel: 'Set weight',
      required: true,
      reasonId: 'weight-reason',
    }),
    (reason) =>
      command(
        'Set weight',
        'PUT',
        '/api/weight',
        { percent: Number($<HTMLInputElement>('weight-percent').value), reason },
        rollout,
      ),
  );
  confirmed(
    'reload-form',
    () => ({
      title: 'Reload the config file?',
      detail:
        'veer re-reads its config file; an invalid file is refused with its problems and the running config keeps serving.',
      confirmLabel: 'Reload',
      required: false,
    }),
    (reason) => command('Reload', 'POST', '/api/reload', reason === undefined ? {} : { reason }, reloaded),
  );
}

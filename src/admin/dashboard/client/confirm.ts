// The one confirmation dialog every dashboard action goes through: what will happen, and a reason when the audit log needs one.

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

export interface ConfirmRequest {
  /** The question, e.g. "Roll new back to 0 %?" */
  title: string;
  /** What happens, in plain words; shown as text (it may carry keys an operator typed). */
  detail: string;
  /** The button that goes ahead. */
  confirmLabel: string;
  danger?: boolean;
  /** 'required': the API refuses without one; 'optional': asked for; 'none': not asked. */
  reason: 'required' | 'optional' | 'none';
  /** A reason typed beside the button already, offered for editing. */
  reasonValue?: string;
}

let pending: ((answer: { reason?: string } | null) => void) | undefined;

/** Resolves with the reason (trimmed; undefined when empty) once confirmed, or null when cancelled. */
export function confirmAction(request: ConfirmRequest): Promise<{ reason?: string } | null> {
  const dialog = $<HTMLDialogElement>('confirm-dialog');
  $('confirm-title').textContent = request.title;
  $('confirm-detail').textContent = request.detail;
  const ok = $<HTMLButtonElement>('confirm-ok');
  ok.textContent = request.confirmLabel;
  ok.classList.toggle('danger', request.danger === true);
  const field = $('confirm-reason-field');
  const reason = $<HTMLTextAreaElement>('confirm-reason');
  field.hidden = request.reason === 'none';
  reason.required = request.reason === 'required';
  reason.value = request.reasonValue ?? '';
  $('confirm-reason-label').textContent =
    request.reason === 'required'
      ? 'Reason (required; goes to the audit log)'
      : 'Reason (optional; goes to the audit log)';
  pending?.(null);
  dialog.showModal();
  (request.reason === 'none' ? ok : reason).focus();
  return new Promise((resolve) => {
    pending = resolve;
  });
}

function answer(value: { reason?: string } | null): void {
  const resolve = pending;
  pending = undefined;
  $<HTMLDialogElement>('confirm-dialog').close();
  resolve?.(value);
}

export function setupConfirm(): void {
  $('confirm-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = $<HTMLTextAreaElement>('confirm-reason').value.trim();
    answer({ reason: text === '' ? undefined : text });
  });
  $('confirm-cancel').addEventListener('click', () => answer(null));
  // Escape closes the dialog: that is a cancel too.
  $('confirm-dialog').addEventListener('close', () => {
    if (pending) answer(null);
  });
}

// Renders the rollout header, the SLO rules table and the audit table (text only: reasons and keys are operator or client input).

import type { AuditEntry, RolloutState, RuleJson, Status } from '../../api-types.js';

export const STATE_LABEL: Record<RolloutState, string> = {
  shadowing: 'shadowing (0 % real traffic)',
  progressing: 'progressing',
  holding: 'holding at gate',
  promoted: 'promoted',
  rolled_back: 'rolled back',
  killed: 'killed',
  latched: 'latched',
};

const $ = (id: string) => document.getElementById(id)!;

/** "42 s", "3 min 5 s", "2 h 10 min", "3 d 4 h". */
export function ago(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function cell(tr: HTMLTableRowElement, text: string, className?: string): HTMLTableCellElement {
  const td = tr.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

export function fill(tbody: HTMLTableSectionElement, rows: HTMLTableRowElement[], empty: string, cols: number): void {
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    const td = cell(tr, empty, 'muted');
    td.colSpan = cols;
    rows = [tr];
  }
  tbody.replaceChildren(...rows);
}

/** The header; `skewMs` (server clock minus this browser's) keeps "time since" right on a skewed laptop. */
export function renderHeader(status: Status, skewMs: number): void {
  const r = status.rollout;
  $('rollout-id').textContent = r.id;
  document.title = `${STATE_LABEL[r.state]} · ${r.id} · veer`;
  const state = $('state');
  state.dataset.state = r.state;
  state.textContent = r.latched && r.state !== 'latched' ? `${STATE_LABEL[r.state]} (latched)` : STATE_LABEL[r.state];
  $('weight').textContent = `${r.weight_percent} %`;
  $('step').textContent =
    r.steps.length === 0
      ? 'no steps configured'
      : r.step === null
        ? `off the steps (${r.steps.join(' → ')} %)`
        : `${r.step + 1} of ${r.steps.length} (${r.steps.join(' → ')} %)`;
  const last = r.last_change;
  const since = $('last-change');
  if (last) {
    since.textContent = `${ago(Date.now() + skewMs - Date.parse(last.time))} ago · ${last.action} by ${last.actor}: ${last.reason}`;
    since.title = last.time;
  } else {
    since.textContent = 'no change recorded';
  }
  renderFleet(status);
  const g = r.gate;
  $('gate').textContent = r.kill_reason
    ? `killed: ${r.kill_reason}`
    : r.stalled
      ? `stalled: inconclusive since ${new Date(r.stalled.since).toLocaleTimeString()} (${r.stalled.on_inconclusive})`
      : !g
        ? '–'
        : g.waiting_for_approval
          ? `${g.next_percent} % open, waiting for approval (promote)`
          : g.eligible_at
            ? `${g.next_percent} % in ${ago(Date.parse(g.eligible_at) - Date.now() - skewMs)} if rules keep passing`
            : `${g.next_percent} % once every rule passes`;
}

/** Fleet mode: the link to the store, the judge, the version, and what this sidecar has not shared yet. */
function renderFleet(status: Status): void {
  const f = status.fleet;
  $('fleet-fact').hidden = !f;
  if (!f) return;
  const link =
    f.state === 'awaiting_fleet'
      ? 'awaiting first sync (legacy only)'
      : f.connected
        ? 'connected'
        : 'DISCONNECTED (changes toward new refused)';
  const judge = f.is_leader ? 'this sidecar judges' : f.leader ? `judge ${f.leader}` : 'judge unknown';
  const version = f.version === null ? 'no version yet' : `v${f.version}`;
  const pending = f.pending_changes > 0 ? ` · ${f.pending_changes} change(s) pending` : '';
  const fleet = $('fleet');
  fleet.textContent = `${link} · ${judge} · ${version}${pending}`;
  fleet.title = f.last_sync ? `last sync ${f.last_sync}` : 'never synced';
  fleet.dataset.state = f.state;
}

export function value(r: RuleJson, x: number | null): string {
  if (x === null) return '–';
  if (r.unit === 'value') return String(Number(x.toPrecision(6)));
  if (r.unit === 'per_s') return `${x.toFixed(1)} tokens/s`;
  return r.unit === 'ratio' ? `${(x * 100).toFixed(2)} %` : `${x.toFixed(1)} ms`;
}

export function renderRules(status: Status): void {
  const slo = status.slo;
  $('slo-meta').textContent =
    `Judged every ${slo.interval_ms / 1000} s on the last ${slo.window_ms / 1000} s; on breach: ${slo.on_breach}` +
    (slo.evaluated_at ? `; last evaluation ${new Date(slo.evaluated_at).toLocaleTimeString()}` : '; not evaluated yet');
  const tbody = ($('rules') as HTMLTableElement).tBodies[0]!;
  const rows = slo.rules.map((r) => {
    const tr = document.createElement('tr');
    tr.dataset.status = r.status;
    cell(tr, r.action === 'observe' ? `${r.text} (observe only)` : r.text);
    // An inconclusive query rule says why (no data, a time-out, a stale answer).
    cell(tr, r.detail ? `${r.status}: ${r.detail}` : r.status, `status ${r.status}`);
    cell(tr, value(r, r.value), 'num');
    cell(tr, value(r, r.threshold) + (r.legacy !== null ? ` (legacy ${value(r, r.legacy)})` : ''), 'num');
    cell(tr, `${r.samples} / ${r.min_samples}`, 'num');
    return tr;
  });
  fill(tbody, rows, 'no SLO rules configured: the guard never acts', 5);
}

const summary = (s: AuditEntry['before']) => (s ? `${s.state} ${s.weight_percent} %` : '–');

export function renderAudit(entries: readonly AuditEntry[]): void {
  const tbody = ($('audit') as HTMLTableElement).tBodies[0]!;
  const rows = entries.map((e) => {
    const tr = document.createElement('tr');
    tr.dataset.action = e.action;
    const time = cell(tr, new Date(e.time).toLocaleTimeString());
    time.title = e.time;
    cell(tr, e.actor);
    cell(tr, e.action);
    cell(tr, e.reason);
    cell(tr, e.before || e.after ? `${summary(e.before)} → ${summary(e.after)}` : '');
    return tr;
  });
  fill(tbody, rows, 'no entries', 5);
}

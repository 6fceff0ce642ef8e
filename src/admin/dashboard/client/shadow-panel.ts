// Renders the shadow (its share, window and rules on the shadow) and the segments' counts (text only).

import type { Status } from '../../api-types.js';
import { cell, fill, value } from './view.js';

const $ = (id: string) => document.getElementById(id)!;

export function renderShadowPanel(status: Status): void {
  const shadow = status.shadow;
  if (shadow) {
    const w = shadow.window;
    $('shadow-meta').textContent =
      shadow.percent === 0
        ? `off (set: ${shadow.set_percent} %)`
        : `${shadow.percent} % of legacy's users mirrored to new · ${shadow.inflight} of ${shadow.max_inflight} copies open · ` +
          `window: ${w.requests} copies, p95 ${w.ttfb_p95_ms === null ? '–' : `${w.ttfb_p95_ms.toFixed(1)} ms`}, ` +
          `errors ${w.error_rate === null ? '–' : `${(w.error_rate * 100).toFixed(2)} %`} · on breach: ${shadow.on_breach}` +
          (shadow.eligible_at
            ? ` · first step at ${new Date(shadow.eligible_at).toLocaleTimeString()} if rules keep passing`
            : '');
    const rows = shadow.rules.map((r) => {
      const tr = document.createElement('tr');
      tr.dataset.status = r.status;
      cell(tr, r.text);
      cell(tr, r.status, `status ${r.status}`);
      cell(tr, value(r, r.value), 'num');
      cell(tr, value(r, r.threshold) + (r.legacy !== null ? ` (legacy ${value(r, r.legacy)})` : ''), 'num');
      cell(tr, `${r.samples} / ${r.min_samples}`, 'num');
      return tr;
    });
    fill(
      ($('shadow-rules') as HTMLTableElement).tBodies[0]!,
      rows,
      shadow.percent === 0 ? 'shadow off' : 'not judged yet',
      5,
    );
  }
  const segments = status.segments ?? [];
  const rows = segments.map((s) => {
    const tr = document.createElement('tr');
    cell(tr, s.name);
    cell(tr, s.side ?? `${s.weight_percent} % on new`);
    cell(tr, `${s.requests.new} / ${s.requests.legacy}`, 'num');
    return tr;
  });
  fill(($('segments') as HTMLTableElement).tBodies[0]!, rows, 'no segments configured', 3);
}

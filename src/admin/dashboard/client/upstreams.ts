// The upstreams panel: each side's URL, streams in flight and window figures, from /api/status.

import type { Status, UpstreamStatus } from '../../api-types.js';

const ms = (x: number | null) => (x === null ? '–' : `${x.toFixed(1)} ms`);

export function renderUpstreams(status: Status): void {
  const tbody = (document.getElementById('upstreams') as HTMLTableElement).tBodies[0]!;
  const row = (name: 'legacy' | 'new', u: UpstreamStatus) => {
    const tr = document.createElement('tr');
    tr.dataset.upstream = name;
    const cells: [string, string | undefined][] = [
      [name, undefined],
      [u.url, 'url'],
      [String(u.inflight), 'num inflight'],
      [ms(u.ttfb_p50_ms), 'num'],
      [ms(u.ttfb_p95_ms), 'num'],
      [u.error_rate === null ? '–' : `${(u.error_rate * 100).toFixed(2)} %`, 'num'],
      [String(u.samples), 'num'],
    ];
    for (const [text, className] of cells) {
      const td = tr.insertCell();
      td.textContent = text;
      if (className) td.className = className;
    }
    return tr;
  };
  tbody.replaceChildren(row('legacy', status.upstreams.legacy), row('new', status.upstreams.new));
}

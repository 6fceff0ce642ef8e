// The charts' time range picker: 5 min, 15 min or 1 h of the server's one-a-second sampler, kept for the tab.

import { RANGES } from '../ranges.js';

export { inRange, RANGES } from '../ranges.js';

/** Fills the range picker and calls `changed` with the chosen seconds; returns the initial choice. */
export function setupRange(changed: (seconds: number) => void): number {
  const select = document.getElementById('range') as HTMLSelectElement;
  select.replaceChildren(
    ...RANGES.map((r) => {
      const option = document.createElement('option');
      option.value = String(r.seconds);
      option.textContent = r.label;
      return option;
    }),
  );
  const kept = Number(sessionStorage.getItem('veer.range'));
  const initial = RANGES.some((r) => r.seconds === kept) ? kept : RANGES[0].seconds;
  select.value = String(initial);
  select.addEventListener('change', () => {
    const seconds = Number(select.value);
    sessionStorage.setItem('veer.range', String(seconds));
    changed(seconds);
  });
  return initial;
}

// `veer status` in fleet mode: the link to the store, the judge, the version and what is not shared yet.

import { describe, expect, it } from 'vitest';
import type { FleetStatus } from '../../src/admin/api-types.js';
import { fleetView } from '../../src/cli/admin-views.js';

const connected: FleetStatus = {
  state: 'connected',
  connected: true,
  member: 'pod-a:1:aa',
  leader: 'pod-b:1:bb',
  is_leader: false,
  version: 41,
  last_sync: '2026-12-02T13:00:00.000Z',
  pending_changes: 0,
};

describe('veer status, fleet block', () => {
  it('names the judge, the store version and the last sync', () => {
    const text = fleetView(connected);
    expect(text).toMatch(/^fleet\s+connected$/m);
    expect(text).toMatch(/^leader\s+pod-b:1:bb$/m);
    expect(text).toContain('v41, last sync 2026-12-02T13:00:00.000Z');
    expect(text).toMatch(/^pending\s+nothing$/m);
  });

  it('says plainly when the sidecar is cut off with changes not yet shared, or still awaiting its first sync', () => {
    expect(fleetView({ ...connected, state: 'disconnected', connected: false, pending_changes: 2 })).toMatch(
      /DISCONNECTED[\s\S]*2 local change\(s\) not yet in the store/,
    );
    expect(fleetView({ ...connected, state: 'awaiting_fleet', connected: false, version: null })).toMatch(
      /AWAITING FIRST SYNC: serving legacy only[\s\S]*none yet/,
    );
    expect(fleetView({ ...connected, is_leader: true, leader: 'pod-a:1:aa' })).toContain('pod-a:1:aa (this sidecar)');
  });
});

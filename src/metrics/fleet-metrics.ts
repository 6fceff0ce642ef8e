// Fleet mode's Prometheus series: membership, the lease, and this sidecar's link to the fleet store.

import { Counter, Gauge, type Registry } from 'prom-client';

export function fleetMetrics(registers: Registry[], disconnectedSeconds: () => number | undefined) {
  return {
    fleetMembers: new Gauge({
      name: 'veer_fleet_members',
      help: 'Sidecars that published a window within its TTL.',
      registers,
    }),
    fleetLeader: new Gauge({
      name: 'veer_fleet_leader',
      help: '1 when this sidecar holds the fleet lease, else 0.',
      registers,
    }),
    fleetSyncErrors: new Counter({
      name: 'veer_fleet_sync_errors_total',
      help: 'Failed exchanges with the fleet store (Redis).',
      registers,
    }),
    fleetConnected: new Gauge({
      name: 'veer_fleet_connected',
      help: '1 while this sidecar is in sync with the fleet store (Redis answers within fleet.command_timeout), else 0.',
      registers,
    }),
    fleetDisconnected: new Gauge({
      name: 'veer_fleet_disconnected_seconds',
      help: 'Seconds since this sidecar last was in sync with the fleet store (0 while in sync, and outside fleet mode).',
      registers,
      collect() {
        this.set(disconnectedSeconds() ?? 0);
      },
    }),
    fleetPendingChanges: new Gauge({
      name: 'veer_fleet_pending_changes',
      help: 'Local changes toward legacy applied here and not yet in the fleet store.',
      registers,
    }),
    fleetStateVersion: new Gauge({
      name: 'veer_fleet_state_version',
      help: 'Version of the shared rollout state this sidecar applies.',
      registers,
    }),
  };
}

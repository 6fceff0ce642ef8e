// What the admin routes read and drive, and the shape of a route before and after authentication.

import type { Config, UpstreamName } from '../config/types.js';
import { type ChangeOutcome, type Controller, notPersistedError, settledOutcome } from '../guard/controller.js';
import type { Recorder } from '../measure/recorder.js';
import type { PoolReading } from '../proxy/upstream.js';
import type { AuditLog } from '../state/audit.js';
import type { FleetAck, FleetStatus } from './api-types.js';
import type { AuthorizedHandler, Principal, TokenAuth } from './auth.js';
import type { SeriesSampler } from './dashboard/series.js';

export interface ReloadOutcome {
  rolloutId: string;
  changed: string[];
  restartRequired: string[];
  /** The reload's change of routing state (in effect; maybe not written to the state file). */
  state: ChangeOutcome;
}

/** What the routes read and drive; getters, because a reload replaces config and tokens. */
export interface AdminContext {
  controller: Controller;
  recorder: Recorder;
  audit: AuditLog;
  config: () => Config;
  auth: () => TokenAuth;
  clock: () => number;
  /** Re-reads the config file; throws ConfigError when it is invalid (the old config keeps serving). */
  reload: (actor: string, reason?: string) => Promise<ReloadOutcome>;
  /** Fleet mode: the link to the fleet's store, as the routes read it. */
  fleet?: FleetView;
  /** The dashboard's one-point-a-second history (GET /api/series). */
  series: SeriesSampler;
  /** Shadow copies open now. */
  shadowInflight?: () => number;
  /** Requests each segment routed since start, by side. */
  segmentCounts?: () => ReadonlyMap<string, { new: number; legacy: number }>;
  /** Each upstream pool's connections and requests waiting for one. */
  pools: () => Record<UpstreamName, PoolReading>;
}

export interface FleetView {
  /** After a change toward legacy: waits briefly for the store; says whether it has every change made here. */
  settle(): Promise<FleetAck>;
  status(): FleetStatus;
}

/** A handler after authentication: `who` is the token's principal, undefined on an open read. */
export type ApiHandler = AuthorizedHandler;

/**
 * The token a route needs: `read` one only when admin.read_requires_token says so, `private` any token
 * always (it lists routing keys, which are user identifiers and, while the key header comes from clients,
 * bearer secrets that route onto new), `operate` an operator token.
 */
export type Access = 'read' | 'private' | 'operate';

/** One row of the route table: `access` decides the token needed, `action` names it in the audit log. */
export interface ApiRoute {
  method: string;
  path: string;
  access: Access;
  action: string;
  handler: ApiHandler;
}

export const actorOf = (who: Principal | undefined) => (who ? `admin:${who.name}` : 'admin:anonymous');

/** A change in effect but not on disk is answered 503 state_not_persisted: it will not survive a restart. */
export function throwIfNotPersisted(outcome: ChangeOutcome): void {
  const err = notPersistedError(outcome);
  if (err) throw err;
}

/**
 * Waits for what a change needs before its answer. Fleet mode, a change toward new: the store's
 * confirmation (a refusal, 503 fleet_unavailable or 409 conflict, is thrown with nothing applied); a change
 * toward legacy, already in effect here: a short wait for the store. A change in effect but not on disk
 * throws 503 state_not_persisted. Answers whether the fleet has it (undefined outside fleet mode).
 */
export async function settleChange(ctx: AdminContext, outcome: ChangeOutcome): Promise<FleetAck | undefined> {
  const throughStore = 'confirmed' in outcome;
  throwIfNotPersisted(await settledOutcome(outcome));
  if (!ctx.fleet) return undefined;
  return throughStore ? 'confirmed' : ctx.fleet.settle();
}

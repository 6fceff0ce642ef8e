// What every scenario receives from the dispatcher, and the shape of a scenario module.

import type { ScenarioResult } from './results.js';

export interface ScenarioContext {
  /** Small counts and short rounds: for development and the CI smoke test, not for the targets. */
  quick: boolean;
  /** A progress line on stderr. */
  log: (message: string) => void;
}

export type Scenario = (ctx: ScenarioContext) => Promise<ScenarioResult>;

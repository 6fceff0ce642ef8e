// How the CLI reports problems on stderr.

import type { ConfigError } from '../config/load.js';

export function printConfigError(err: ConfigError): void {
  process.stderr.write(`veer: invalid config ${err.sourcePath ?? ''}\n`);
  for (const p of err.problems) process.stderr.write(`  ${p}\n`);
}

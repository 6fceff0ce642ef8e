#!/usr/bin/env node
// The `veer` command: `veer run`, `veer check-config`, `veer demo`, and the operator subcommands.

import { parseArgs } from 'node:util';
import { isOperatorCommand, OPERATOR_USAGE, runOperator } from './operator.js';
import { printConfigError } from './output.js';

const USAGE = `usage: veer <command> [options]

commands:
  run [--config PATH]        run the proxy (config: --config, VEER_CONFIG, or config/veer.yaml)
  check-config [PATH]        validate a config file and exit (0 valid, 2 invalid)
  demo [--config PATH]       run veer with two bundled mock upstreams and show the split
${OPERATOR_USAGE}`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (isOperatorCommand(command)) return runOperator(command, rest);
  // Loaded on demand (the config schema, the proxy), so operator commands start fast.
  const { ConfigError, loadConfigFile, resolveConfigPath } = await import('../config/load.js');
  switch (command) {
    case 'run': {
      const { values } = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' } } });
      const { runProxy } = await import('./run.js');
      return runProxy(resolveConfigPath(values.config));
    }
    case 'check-config': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { config: { type: 'string', short: 'c' } },
      });
      const path = resolveConfigPath(positionals[0] ?? values.config);
      try {
        const config = await loadConfigFile(path);
        process.stdout.write(
          `${path}: ok (rollout ${config.rollout.id}, initial weight ${config.rollout.weightBp / 100}%, ${config.slo.rules.length} SLO rules)\n`,
        );
        return 0;
      } catch (err) {
        if (err instanceof ConfigError) {
          printConfigError(err);
          return 2;
        }
        throw err;
      }
    }
    case 'demo': {
      const { values } = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' } } });
      const { runDemo } = await import('./demo.js');
      return runDemo(resolveConfigPath(values.config));
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`veer: unknown command "${command}"\n${USAGE}`);
      return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== -1) process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`veer: ${err.stack ?? err.message}\n`);
    process.exitCode = 1;
  },
);

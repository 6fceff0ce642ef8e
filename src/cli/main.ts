#!/usr/bin/env node
// The `veer` command: `veer run`, `veer check-config`, `veer demo`, and the operator subcommands.

import { parseArgs } from 'node:util';
import { isOperatorCommand, OPERATOR_USAGE, runOperator } from './operator.js';
import { printConfigError } from './output.js';

const USAGE = `usage: veer <command> [options]

commands:
  run [--config PATH]        run the proxy (config: --config, VEER_CONFIG, or config/veer.yaml)
  check-config [PATH] [--probe]  validate a config file (0 valid, 2 invalid); --probe runs each query rule once
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
      const { checkConfig } = await import('./check-config.js');
      return checkConfig(rest);
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

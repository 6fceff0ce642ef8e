#!/usr/bin/env node
// The `veer` command: `veer run`, `veer check-config`, `veer demo`, help and version, and the operator subcommands.

import { type ParseArgsConfig, parseArgs } from 'node:util';
import { VERSION } from '../version.js';
import { isOperatorCommand, OPERATOR_USAGE, operatorHelp, runOperator } from './operator.js';

/** Exit code of a usage error (unknown command or option, missing argument): nothing was done. */
const EXIT_USAGE = 2;

/** The commands that run something here, with their synopsis and what they do (`veer help COMMAND`). */
const LOCAL_COMMANDS: Record<string, { synopsis: string; summary: string; details?: string }> = {
  run: {
    synopsis: 'run [--config PATH]',
    summary: 'run the proxy (config: --config, VEER_CONFIG, or config/veer.yaml)',
    details: 'SIGTERM/SIGINT drain in-flight streams and exit 0; SIGHUP re-reads the config file.',
  },
  'check-config': {
    synopsis: 'check-config [PATH] [--probe]',
    summary: 'validate a config file (0 valid, 2 invalid); --probe runs each query rule once',
  },
  demo: {
    synopsis: 'demo [--config PATH] [--state-dir DIR]',
    summary: 'run veer with two bundled mock upstreams and show the split',
    details:
      'State and audit files go to a new temporary directory each run (removed on exit),\n' +
      'or to --state-dir DIR, kept across runs.',
  },
  help: { synopsis: 'help [COMMAND]', summary: 'this text, or one command in detail' },
  version: { synopsis: 'version, --version', summary: "print veer's version" },
};

const USAGE = `usage: veer <command> [options]

commands:
${Object.values(LOCAL_COMMANDS)
  .map((c) => `  ${c.synopsis.padEnd(40)} ${c.summary}`)
  .join('\n')}
${OPERATOR_USAGE}`;

class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose synopsis to show; the whole usage when absent. */
    readonly command?: string,
  ) {
    super(message);
  }
}

/** parseArgs that turns its errors (unknown option, missing value) into a usage error (exit 2). */
function parseOrUsage<T extends ParseArgsConfig>(command: string, config: T) {
  try {
    return parseArgs(config);
  } catch (err) {
    throw new UsageError((err as Error).message, command);
  }
}

/** `veer help COMMAND`; undefined for a command veer does not have. */
function helpOf(command: string): string | undefined {
  if (isOperatorCommand(command)) return operatorHelp(command);
  const local = LOCAL_COMMANDS[command];
  if (!local) return undefined;
  return `usage: veer ${local.synopsis}\n\n  ${local.summary}\n${local.details ? `\n${local.details}\n` : ''}`;
}

const CONFIG_OPTION = { config: { type: 'string', short: 'c' } } as const;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (isOperatorCommand(command)) return runOperator(command, rest);
  switch (command) {
    case 'version':
    case '--version':
    case '-V':
      process.stdout.write(`veer ${VERSION}\n`);
      return 0;
    case undefined:
      process.stderr.write(USAGE);
      return EXIT_USAGE;
    case 'help':
    case '--help':
    case '-h': {
      if (rest.length === 0) {
        process.stdout.write(USAGE);
        return 0;
      }
      const help = rest.length === 1 ? helpOf(rest[0]!) : undefined;
      if (help === undefined) throw new UsageError(`no help for "${rest.join(' ')}": not a veer command`);
      process.stdout.write(help);
      return 0;
    }
  }
  if (!(command in LOCAL_COMMANDS)) throw new UsageError(`unknown command "${command}"`);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(helpOf(command)!);
    return 0;
  }
  // Loaded on demand (the config schema, the proxy), so operator commands start fast.
  const { resolveConfigPath } = await import('../config/load.js');
  switch (command) {
    case 'run': {
      const { values } = parseOrUsage(command, { args: rest, options: CONFIG_OPTION });
      const { runProxy } = await import('./run.js');
      return runProxy(resolveConfigPath(values.config));
    }
    case 'check-config': {
      const { checkConfig } = await import('./check-config.js');
      try {
        return await checkConfig(rest);
      } catch (err) {
        // parseArgs' own errors (an unknown option, a missing value) are usage errors.
        if (String((err as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS')) {
          throw new UsageError((err as Error).message, command);
        }
        throw err;
      }
    }
    case 'demo': {
      const { values } = parseOrUsage(command, {
        args: rest,
        options: { ...CONFIG_OPTION, 'state-dir': { type: 'string' } },
      });
      const { runDemo } = await import('./demo.js');
      return runDemo(resolveConfigPath(values.config), { stateDir: values['state-dir'] });
    }
  }
  return EXIT_USAGE;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== -1) process.exitCode = code;
  },
  (err: Error) => {
    if (err instanceof UsageError) {
      const local = err.command ? LOCAL_COMMANDS[err.command] : undefined;
      process.stderr.write(
        `veer: ${err.message}\n${local ? `usage: veer ${local.synopsis} (veer help ${err.command} for details)\n` : USAGE}`,
      );
      process.exitCode = EXIT_USAGE;
      return;
    }
    process.stderr.write(`veer: ${err.stack ?? err.message}\n`);
    process.exitCode = 1;
  },
);

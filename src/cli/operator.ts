// The operator subcommands of `veer`: their arguments, the one admin API call each makes, and what they print.

import { type ParseArgsConfig, parseArgs } from 'node:util';
import type { Audit, Overrides, ReloadReply, Rollout, ShadowStatus, Status } from '../admin/api-types.js';
import { AdminClient, CliFailure, EXIT_OK, EXIT_USAGE, resolveTarget } from './admin-client.js';
import { auditView, overridesView, reloadView, rolloutView, shadowView, statusView } from './admin-views.js';
import { printable, printableJson } from './printable.js';

export const OPERATOR_COMMANDS = [
  'status',
  'kill',
  'resume',
  'weight',
  'promote',
  'rollback',
  'shadow',
  'overrides',
  'audit',
  'reload',
] as const;
export type OperatorCommand = (typeof OPERATOR_COMMANDS)[number];

export function isOperatorCommand(c: string | undefined): c is OperatorCommand {
  return (OPERATOR_COMMANDS as readonly string[]).includes(c ?? '');
}

const SYNOPSIS: Record<string, string> = {
  status: 'status',
  kill: 'kill --reason R',
  resume: 'resume [--reason R]',
  weight: 'weight PERCENT --reason R',
  promote: 'promote [--reason R]',
  rollback: 'rollback --reason R',
  shadow: 'shadow on|off|PERCENT [--reason R]',
  overrides: 'overrides',
  'overrides set': 'overrides set [--new KEY...] [--legacy KEY...] --reason R',
  'overrides rm': 'overrides rm KEY... --reason R',
  audit: 'audit [--limit N]',
  reload: 'reload [--reason R]',
};

/** One line per operator command for the usage text and `veer help COMMAND`. */
const SUMMARY: Record<string, string> = {
  status: "rollout, weight, step, latch; TTFB windows; every SLO rule's result",
  kill: 'kill switch: all traffic to legacy, applied before the reply',
  resume: 'lift a kill, a rollback or the flap latch',
  weight: 'set the share of keyed traffic on new (0-100, two decimals)',
  promote: 'approve the next step (100% when no steps are configured)',
  rollback: 'weight 0, state rolled_back',
  shadow: "mirror copies of legacy's requests to new (moves no real traffic)",
  overrides: 'list the keys pinned to new and to legacy',
  'overrides set': 'pin keys to an upstream (before the hash)',
  'overrides rm': 'unpin keys',
  audit: 'audit log, newest first (default 50, at most 1000)',
  reload: 're-read the config file; an invalid one leaves the old serving',
};

const OPTIONS = `operator options:
  --admin URL        admin API address; else VEER_ADMIN, else admin.host/port of the
                     config file (--config, VEER_CONFIG, config/veer.yaml), else http://127.0.0.1:8081
  --token-file PATH  file whose first line is the bearer token; else VEER_ADMIN_TOKEN
  --json             print the API's JSON reply as is (for scripts)

exit codes: 0 done, 1 the admin API refused or failed (its code and message on stderr),
            2 usage error (nothing sent), 3 the admin API could not be reached
`;

const line = (name: string) =>
  SYNOPSIS[name]!.length < 33
    ? `  ${SYNOPSIS[name]!.padEnd(32)} ${SUMMARY[name]}`
    : `  ${SYNOPSIS[name]}\n  ${''.padEnd(32)} ${SUMMARY[name]}`;

export const OPERATOR_USAGE = `
operator commands (they call a running veer's admin API):
${Object.keys(SYNOPSIS).map(line).join('\n')}

${OPTIONS}`;

/** `veer help COMMAND` (and `veer COMMAND --help`) for an operator command: its synopses, what it does, the options. */
export function operatorHelp(command: OperatorCommand): string {
  const names = Object.keys(SYNOPSIS).filter((name) => name === command || name.startsWith(`${command} `));
  const usage = names.map((name) => `usage: veer ${SYNOPSIS[name]} [--admin URL] [--token-file PATH] [--json]`);
  return `${usage.join('\n')}\n\n${names.map(line).join('\n')}\n\n${OPTIONS}`;
}

const COMMON = {
  admin: { type: 'string' },
  'token-file': { type: 'string' },
  config: { type: 'string', short: 'c' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;
const REASON = { reason: { type: 'string', short: 'r' } } as const;

interface Call {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  body?: unknown;
  view: (body: unknown) => string;
}

interface Plan {
  synopsis: string;
  common: { admin?: string; tokenFile?: string; config?: string; json: boolean; help: boolean };
  call: Call;
}

class UsageError extends CliFailure {
  constructor(
    message: string,
    readonly synopsis: string,
  ) {
    super(EXIT_USAGE, message);
  }
}

type Token =
  | { kind: 'option'; name: string; value: string | undefined }
  | { kind: 'positional'; value: string }
  | { kind: 'option-terminator' };

interface Parsed {
  values: Record<string, unknown>;
  positionals: string[];
  tokens: Token[];
}

function parse(
  synopsis: string,
  args: string[],
  extra: NonNullable<ParseArgsConfig['options']>,
  allowPositionals: boolean,
): Parsed {
  try {
    const r = parseArgs({ args, options: { ...COMMON, ...extra }, allowPositionals, strict: true, tokens: true });
    return { values: r.values, positionals: r.positionals, tokens: r.tokens as Token[] };
  } catch (err) {
    throw new UsageError((err as Error).message, synopsis);
  }
}

function commonOf(values: Record<string, unknown>): Plan['common'] {
  return {
    admin: values.admin as string | undefined,
    tokenFile: values['token-file'] as string | undefined,
    config: values.config as string | undefined,
    json: values.json === true,
    help: values.help === true,
  };
}

/** The reason as typed; a required one must be non-blank (the audit log keeps it). */
function reasonOf(values: Record<string, unknown>, required: boolean, synopsis: string): string | undefined {
  const r = values.reason as string | undefined;
  if (required && (r === undefined || r.trim() === ''))
    throw new UsageError('--reason is required (a short text for the audit log)', synopsis);
  return r === undefined || r.trim() === '' ? undefined : r;
}

const rollout = (body: unknown) => {
  const reply = body as { rollout: Rollout; fleet?: string };
  // Fleet mode: a change toward legacy applies here at once; `pending` says the other sidecars have not got it yet.
  const fleet = reply.fleet
    ? `fleet         ${reply.fleet === 'confirmed' ? 'confirmed (in the fleet store)' : 'PENDING: applied here, not yet in the fleet store (Redis unreachable); it goes out when Redis answers'}\n`
    : '';
  return rolloutView(reply.rollout) + fleet;
};

/** A command that changes the rollout and answers with it. */
function rolloutCommand(
  command: string,
  args: string[],
  method: 'POST' | 'PUT',
  path: string,
  reasonRequired: boolean,
): Plan {
  const synopsis = SYNOPSIS[command]!;
  const { values, positionals } = parse(synopsis, args, REASON, command === 'weight');
  const common = commonOf(values);
  if (common.help) return { synopsis, common, call: { method, path, view: rollout } };
  const reason = reasonOf(values, reasonRequired, synopsis);
  const body: Record<string, unknown> = reason === undefined ? {} : { reason };
  if (command === 'weight') {
    if (positionals.length !== 1)
      throw new UsageError(
        `expected one PERCENT, got ${positionals.length === 0 ? 'none' : positionals.join(' ')}`,
        synopsis,
      );
    const text = positionals[0]!.replace(/%$/, '');
    const percent = Number(text);
    if (text.trim() === '' || !Number.isFinite(percent))
      throw new UsageError(`PERCENT must be a number such as 25 or 2.5, got "${positionals[0]}"`, synopsis);
    body.percent = percent;
  }
  return { synopsis, common, call: { method, path, body, view: rollout } };
}

/** `veer shadow on|off|PERCENT`: PUT /api/shadow. */
function shadowPlan(args: string[]): Plan {
  const synopsis = SYNOPSIS.shadow!;
  const { values, positionals } = parse(synopsis, args, REASON, true);
  const common = commonOf(values);
  const view = (b: unknown) => {
    const reply = b as { rollout: Rollout; shadow: ShadowStatus };
    return rolloutView(reply.rollout) + shadowView(reply.shadow);
  };
  const call: Call = { method: 'PUT', path: '/api/shadow', view };
  if (common.help) return { synopsis, common, call };
  if (positionals.length !== 1)
    throw new UsageError(
      `expected on, off or a PERCENT, got ${positionals.length === 0 ? 'none' : positionals.join(' ')}`,
      synopsis,
    );
  const word = positionals[0]!;
  const reason = reasonOf(values, false, synopsis);
  const body: Record<string, unknown> = reason === undefined ? {} : { reason };
  if (word === 'on' || word === 'off') body.on = word === 'on';
  else {
    const text = word.replace(/%$/, '');
    const percent = Number(text);
    if (text.trim() === '' || !Number.isFinite(percent))
      throw new UsageError(`expected on, off or a PERCENT such as 5 or 0.5, got "${word}"`, synopsis);
    body.percent = percent;
  }
  return { synopsis, common, call: { ...call, body } };
}

function overridesPlan(args: string[]): Plan {
  const sub = args[0] !== undefined && !args[0].startsWith('-') ? args[0] : undefined;
  if (sub === undefined) {
    const synopsis = SYNOPSIS.overrides!;
    const { values } = parse(synopsis, args, {}, false);
    return {
      synopsis,
      common: commonOf(values),
      call: { method: 'GET', path: '/api/overrides', view: (b) => overridesView(b as Overrides) },
    };
  }
  const rest = args.slice(1);
  if (sub === 'set') {
    const synopsis = SYNOPSIS['overrides set']!;
    const { values, tokens } = parse(
      synopsis,
      rest,
      { ...REASON, new: { type: 'string', multiple: true }, legacy: { type: 'string', multiple: true } },
      true,
    );
    const common = commonOf(values);
    const call: Call = { method: 'PUT', path: '/api/overrides', view: (b) => overridesView(b as Overrides) };
    if (common.help) return { synopsis, common, call };
    // `--new a b c`: bare words after --new or --legacy belong to it, until the next option.
    const keys: Record<string, 'new' | 'legacy'> = {};
    let side: 'new' | 'legacy' | undefined;
    const pin = (key: string, to: 'new' | 'legacy') => {
      if (key === '') throw new UsageError(`--${to}: a key must not be empty`, synopsis);
      if (keys[key] !== undefined && keys[key] !== to)
        throw new UsageError(`key "${key}" is given with both --new and --legacy`, synopsis);
      keys[key] = to;
    };
    for (const t of tokens) {
      if (t.kind === 'option') {
        side = t.name === 'new' || t.name === 'legacy' ? t.name : undefined;
        if (side && t.value !== undefined) pin(t.value, side);
      } else if (t.kind === 'positional') {
        if (!side) throw new UsageError(`"${t.value}": put keys after --new or --legacy`, synopsis);
        pin(t.value, side);
      } else {
        side = undefined;
      }
    }
    if (Object.keys(keys).length === 0) throw new UsageError('name at least one key with --new or --legacy', synopsis);
    call.body = { keys, reason: reasonOf(values, true, synopsis) };
    return { synopsis, common, call };
  }
  if (sub === 'rm' || sub === 'remove') {
    const synopsis = SYNOPSIS['overrides rm']!;
    const { values, positionals } = parse(synopsis, rest, REASON, true);
    const common = commonOf(values);
    const call: Call = { method: 'DELETE', path: '/api/overrides', view: (b) => overridesView(b as Overrides) };
    if (common.help) return { synopsis, common, call };
    if (positionals.length === 0) throw new UsageError('name at least one KEY to unpin', synopsis);
    call.body = { keys: [...new Set(positionals)], reason: reasonOf(values, true, synopsis) };
    return { synopsis, common, call };
  }
  throw new UsageError(`unknown overrides command "${sub}" (set or rm)`, `${SYNOPSIS['overrides set']}`);
}

function plan(command: OperatorCommand, args: string[]): Plan {
  switch (command) {
    case 'status': {
      const { values } = parse(SYNOPSIS.status!, args, {}, false);
      return {
        synopsis: SYNOPSIS.status!,
        common: commonOf(values),
        call: { method: 'GET', path: '/api/status', view: (b) => statusView(b as Status) },
      };
    }
    case 'kill':
      return rolloutCommand(command, args, 'POST', '/api/kill', true);
    case 'resume':
      return rolloutCommand(command, args, 'POST', '/api/resume', false);
    case 'weight':
      return rolloutCommand(command, args, 'PUT', '/api/weight', true);
    case 'promote':
      return rolloutCommand(command, args, 'POST', '/api/promote', false);
    case 'rollback':
      return rolloutCommand(command, args, 'POST', '/api/rollback', true);
    case 'shadow':
      return shadowPlan(args);
    case 'overrides':
      return overridesPlan(args);
    case 'audit': {
      const synopsis = SYNOPSIS.audit!;
      const { values } = parse(synopsis, args, { limit: { type: 'string', short: 'n' } }, false);
      const limit = values.limit as string | undefined;
      if (limit !== undefined && !/^\d+$/.test(limit))
        throw new UsageError(`--limit must be a whole number, got "${limit}"`, synopsis);
      return {
        synopsis,
        common: commonOf(values),
        call: {
          method: 'GET',
          path: limit === undefined ? '/api/audit' : `/api/audit?limit=${limit}`,
          view: (b) => auditView(b as Audit),
        },
      };
    }
    case 'reload': {
      const synopsis = SYNOPSIS.reload!;
      const { values } = parse(synopsis, args, REASON, false);
      const reason = reasonOf(values, false, synopsis);
      return {
        synopsis,
        common: commonOf(values),
        call: {
          method: 'POST',
          path: '/api/reload',
          body: reason === undefined ? {} : { reason },
          view: (b) => reloadView(b as ReloadReply),
        },
      };
    }
  }
}

/** Runs one operator subcommand; resolves with the process exit code. */
export async function runOperator(command: OperatorCommand, args: string[]): Promise<number> {
  let client: AdminClient | undefined;
  try {
    const p = plan(command, args);
    if (p.common.help) {
      process.stdout.write(operatorHelp(command));
      return EXIT_OK;
    }
    client = new AdminClient(resolveTarget(p.common));
    const reply = await client.call(p.call.method, p.call.path, p.call.body);
    process.stdout.write(p.common.json ? `${printableJson(reply.text)}\n` : p.call.view(reply.body));
    return EXIT_OK;
  } catch (err) {
    if (!(err instanceof CliFailure)) throw err;
    // API messages can quote what a request carried (a key, a reason).
    process.stderr.write(`veer: ${printable(err.message)}\n`);
    for (const d of err.details) process.stderr.write(`  ${printable(d)}\n`);
    if (err instanceof UsageError) process.stderr.write(`usage: veer ${err.synopsis} (veer help for all options)\n`);
    return err.exitCode;
  } finally {
    await client?.close();
  }
}

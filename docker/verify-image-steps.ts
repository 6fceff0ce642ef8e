// Replays docker/Dockerfile outside Docker (no engine here): builds the image's file tree and runs it as the container would.
//
//   node --import tsx docker/verify-image-steps.ts [--keep]
//
// Each stage gets a fake root directory under the OS temp dir. COPY copies from the build context
// (filtered by .dockerignore) or from an earlier stage's root; RUN runs the command with `sh` in the
// stage's WORKDIR, absolute paths moved under the fake root (`chown` is a no-op: it needs root and the
// image's users); ENV, USER, EXPOSE, STOPSIGNAL, HEALTHCHECK, ENTRYPOINT and CMD are recorded as the
// image config. Then it runs the image: the compose example config (docker/veer.yaml) is written to
// the VEER_CONFIG path (the documented mount point), the image's file list is checked against what
// `veer run` needs, the two mock upstreams start from the image's dist/src/demo, ENTRYPOINT starts veer, the HEALTHCHECK command probes it, requests are proxied to both
// upstreams, and SIGTERM must drain an open stream to its end and exit 0.
// The npm cache mount of the Dockerfile is the user's npm cache here (npm_config_prefer_offline=true).

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, posix, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';

export const REPO = fileURLToPath(new URL('../', import.meta.url));
export const DOCKERFILE = join(REPO, 'docker', 'Dockerfile');

export interface Instruction {
  cmd: string;
  args: string;
  line: number;
}

export interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

export interface ParsedDockerfile {
  /** ARGs declared before the first FROM, with their defaults. */
  globalArgs: Record<string, string>;
  stages: Stage[];
}

/** Splits a Dockerfile into stages of instructions (continuations joined, comments dropped). */
export function parseDockerfile(text: string): ParsedDockerfile {
  const instructions: Instruction[] = [];
  let pending = '';
  let startLine = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    if (/^\s*#/.test(line)) return;
    if (pending === '' && line.trim() === '') return;
    if (pending === '') startLine = i + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\S+)\s*(.*)$/s.exec(full);
    if (m) instructions.push({ cmd: m[1]!.toUpperCase(), args: m[2]!.trim(), line: startLine });
  });
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.cmd === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`Dockerfile:${ins.line}: cannot read FROM ${ins.args}`);
      const from = m[1]!.replace(/\$\{?(\w+)\}?/g, (_, name: string) => globalArgs[name] ?? '');
      stages.push({ name: m[2] ?? String(stages.length), from, instructions: [] });
    } else if (stages.length === 0) {
      if (ins.cmd !== 'ARG') throw new Error(`Dockerfile:${ins.line}: ${ins.cmd} before the first FROM`);
      const [name, value = ''] = ins.args.split('=');
      globalArgs[name!.trim()] = value.trim();
    } else {
      stages[stages.length - 1]!.instructions.push(ins);
    }
  }
  return { globalArgs, stages };
}

/** The JSON (exec) form of ENTRYPOINT/CMD/HEALTHCHECK CMD; the shell form becomes `sh -c`. */
export function execForm(args: string): string[] {
  if (args.startsWith('[')) return JSON.parse(args) as string[];
  return ['/bin/sh', '-c', args];
}

/** `KEY=value KEY2="value two"` (or the legacy `KEY value`) into pairs. */
export function parseEnv(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!args.includes('=')) {
    const [k, ...rest] = args.split(/\s+/);
    out[k!] = rest.join(' ');
    return out;
  }
  for (const m of args.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
    out[m[1]!] = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!;
  }
  return out;
}

/** Leading `--flag=value` options of COPY/RUN/HEALTHCHECK, and what follows them. */
function splitFlags(args: string): { flags: Record<string, string>; rest: string } {
  const flags: Record<string, string> = {};
  let rest = args;
  for (;;) {
    const m = /^--([\w-]+)(?:=(\S+))?\s+/.exec(rest);
    if (!m) return { flags, rest };
    flags[m[1]!] = m[2] ?? 'true';
    rest = rest.slice(m[0].length);
  }
}

const GLOB: Record<string, string> = { '**/': '(?:.*/)?', '**': '.*', '*': '[^/]*', '?': '[^/]' };

/** Docker's .dockerignore rules: last match wins, `!` re-includes, a match on a parent folder counts. */
export function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = posix.normalize((negate ? l.slice(1) : l).trim()).replace(/^\/+|\/+$/g, '');
      const source = pattern.replace(/\*\*\/|\*\*|\*|\?|[.+^${}()|[\]\\]/g, (t) => GLOB[t] ?? `\\${t}`);
      return { negate, re: new RegExp(`^${source}$`) };
    });
  return (path: string) => {
    const parts = path.split('/');
    const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const rule of rules) if (prefixes.some((p) => rule.re.test(p))) excluded = !rule.negate;
    return excluded;
  };
}

/** The node image's PATH, where `veer` is linked and node lives. */
const IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const SYSTEM_PATHS = /^\/(dev|proc|sys)(\/|$)/;

export interface ImageConfig {
  env: Record<string, string>;
  workdir: string;
  user: string | undefined;
  expose: string[];
  stopSignal: string | undefined;
  healthcheck: string[] | undefined;
  entrypoint: string[];
  cmd: string[];
}

export interface BuiltImage {
  /** The fake root of every stage, by stage name. */
  roots: Record<string, string>;
  /** The last stage's root: the image's file system. */
  root: string;
  config: ImageConfig;
}

function emptyConfig(): ImageConfig {
  return {
    env: { PATH: IMAGE_PATH },
    workdir: '/',
    user: undefined,
    expose: [],
    stopSignal: undefined,
    healthcheck: undefined,
    entrypoint: [],
    cmd: [],
  };
}

/** Records an instruction that changes the image config rather than its files; false for COPY and RUN. */
function applyConfig(cfg: ImageConfig, ins: Instruction): boolean {
  switch (ins.cmd) {
    case 'WORKDIR':
      cfg.workdir = posix.resolve(cfg.workdir, ins.args);
      return true;
    case 'ENV':
      Object.assign(cfg.env, parseEnv(ins.args));
      return true;
    case 'ARG':
      return true;
    case 'USER':
      cfg.user = ins.args;
      return true;
    case 'EXPOSE':
      cfg.expose.push(...ins.args.split(/\s+/));
      return true;
    case 'STOPSIGNAL':
      cfg.stopSignal = ins.args;
      return true;
    case 'ENTRYPOINT':
      cfg.entrypoint = execForm(ins.args);
      return true;
    case 'CMD':
      cfg.cmd = execForm(ins.args);
      return true;
    case 'HEALTHCHECK': {
      const m = /^CMD\s+(.*)$/s.exec(splitFlags(ins.args).rest);
      cfg.healthcheck = m ? execForm(m[1]!) : undefined;
      return true;
    }
    default:
      return false;
  }
}

/** The final stage's image config (env, user, entrypoint, healthcheck...), without building anything. */
export function imageConfigOf(dockerfile: ParsedDockerfile): ImageConfig {
  const cfg = emptyConfig();
  for (const ins of dockerfile.stages[dockerfile.stages.length - 1]?.instructions ?? []) applyConfig(cfg, ins);
  return cfg;
}

type Log = (line: string) => void;

/** Runs every stage's file-system steps into fake roots under `workDir`. */
export async function buildImage(dockerfile: ParsedDockerfile, workDir: string, log: Log): Promise<BuiltImage> {
  const ignored = dockerignore(readFileSync(join(REPO, '.dockerignore'), 'utf8'));
  const roots: Record<string, string> = {};
  let config: ImageConfig | undefined;
  for (const stage of dockerfile.stages) {
    const root = join(workDir, stage.name);
    roots[stage.name] = root;
    for (const d of ['usr/local/bin', 'etc', 'var/lib', 'tmp', 'root']) mkdirSync(join(root, d), { recursive: true });
    const inRoot = (p: string) => (SYSTEM_PATHS.test(p) ? p : join(root, p));
    const cfg = emptyConfig();
    const abs = (p: string) => posix.resolve(cfg.workdir, p);
    for (const ins of stage.instructions) {
      const where = `Dockerfile:${ins.line} (${stage.name})`;
      if (applyConfig(cfg, ins)) {
        if (ins.cmd === 'WORKDIR') mkdirSync(inRoot(cfg.workdir), { recursive: true });
        continue;
      }
      switch (ins.cmd) {
        case 'COPY': {
          const { flags, rest } = splitFlags(ins.args);
          const parts = rest.startsWith('[') ? (JSON.parse(rest) as string[]) : rest.split(/\s+/);
          const dest = parts.pop()!;
          const destAbs = abs(dest);
          const intoDir = dest.endsWith('/') || parts.length > 1;
          for (const src of parts) {
            let from: string;
            if (flags.from) {
              const other = roots[flags.from];
              if (!other) throw new Error(`${where}: COPY --from=${flags.from}: no such stage before this one`);
              from = join(other, posix.resolve('/', src));
            } else {
              const rel = posix.normalize(src).replace(/^\.?\/+/, '');
              if (rel !== '.' && ignored(rel)) throw new Error(`${where}: COPY ${src}: excluded by .dockerignore`);
              from = join(REPO, rel);
            }
            if (!existsSync(from)) throw new Error(`${where}: COPY ${src}: not found`);
            const target = inRoot(intoDir && statSync(from).isFile() ? posix.join(destAbs, basename(from)) : destAbs);
            mkdirSync(dirname(target), { recursive: true });
            cpSync(from, target, {
              recursive: true,
              filter: (p) => {
                if (flags.from || statSync(p).isDirectory()) return true;
                return !ignored(relative(REPO, p).split(sep).join('/'));
              },
            });
          }
          log(`  ${stage.name}: COPY ${rest}`);
          break;
        }
        case 'RUN': {
          const { rest } = splitFlags(ins.args);
          // Absolute paths in the command move under the fake root.
          const command = rest.replace(/(^|[\s='"])(\/[\w.\-/]*)/g, (_m, pre: string, p: string) => pre + inRoot(p));
          log(`  ${stage.name}: RUN ${rest}`);
          const started = Date.now();
          const result = await runShell(`chown() { :; }\n${command}`, {
            cwd: inRoot(cfg.workdir),
            env: {
              ...processEnv(cfg.env, root),
              npm_config_prefer_offline: 'true',
              npm_config_update_notifier: 'false',
            },
          });
          if (result.code !== 0) throw new Error(`${where}: RUN ${rest}: exit ${result.code}\n${result.output}`);
          log(`    done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
          break;
        }
        default:
          throw new Error(`${where}: ${ins.cmd} is not replayed by docker/verify-image-steps.ts`);
      }
    }
    config = cfg;
  }
  const last = dockerfile.stages[dockerfile.stages.length - 1];
  if (!last || !config) throw new Error('Dockerfile: no stage');
  return { roots, root: roots[last.name]!, config };
}

/** The image's environment for a process on this machine: absolute paths under the root, node's PATH after. */
export function processEnv(env: Record<string, string>, root: string): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { HOME: process.env.HOME ?? tmpdir() };
  for (const [k, v] of Object.entries(env)) {
    if (k === 'PATH') out.PATH = [...v.split(':').map((p) => join(root, p)), process.env.PATH ?? ''].join(':');
    else out[k] = v.startsWith('/') ? join(root, v) : v;
  }
  return out;
}

function runShell(script: string, options: { cwd: string; env: NodeJS.ProcessEnv }) {
  return new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn('sh', ['-ec', script], { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      output += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output: output.slice(-4000) }));
  });
}

/** Finds a command as the image would: on the image's PATH (under the root), then this machine's. */
function which(command: string, env: NodeJS.ProcessEnv): string {
  if (command.includes('/')) return command;
  for (const dir of (env.PATH ?? '').split(':')) {
    const p = join(dir, command);
    if (existsSync(p)) return p;
  }
  throw new Error(`${command}: not found on the image's PATH`);
}

interface Child {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  output: () => string;
  waitFor: (match: (l: Record<string, unknown>) => boolean, timeoutMs?: number) => Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

function start(argv: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Child {
  const child = spawn(which(argv[0]!, options.env), argv.slice(1), { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let text = '';
  let partial = '';
  const listeners = new Set<() => void>();
  child.stdout!.on('data', (d: Buffer) => {
    text += d;
    partial += d;
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const p of parts) {
      try {
        lines.push(JSON.parse(p) as Record<string, unknown>);
      } catch {
        lines.push({ msg: p });
      }
    }
    for (const l of listeners) l();
  });
  child.stderr!.on('data', (d: Buffer) => {
    text += d;
  });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return {
    child,
    lines,
    output: () => text,
    exited,
    waitFor(match, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.find(match);
          if (!hit) return false;
          cleanup();
          resolve(hit);
          return true;
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no expected log line within ${timeoutMs} ms:\n${text.slice(-4000)}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(onLine);
        };
        const onLine = () => void check();
        if (check()) return;
        listeners.add(onLine);
        exited.then(() => {
          if (!check()) {
            cleanup();
            reject(new Error(`${argv[0]} exited before the expected log line:\n${text.slice(-4000)}`));
          }
        });
      });
    },
  };
}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

/** The static promises of the recipe, beyond what running it shows. */
export function checkRecipe(dockerfile: ParsedDockerfile, image: ImageConfig): void {
  const [build, runtime] = [dockerfile.stages[0], dockerfile.stages[dockerfile.stages.length - 1]];
  check(dockerfile.stages.length >= 2 && build && runtime, 'the Dockerfile must be multi-stage (build, runtime)');
  for (const s of dockerfile.stages)
    check(/^node:\d+\.\d+\.\d+-[a-z]+-slim$/.test(s.from), `stage ${s.name}: base ${s.from} is not a pinned node slim`);
  const runs = (s: Stage) => s.instructions.filter((i) => i.cmd === 'RUN').map((i) => splitFlags(i.args).rest);
  check(
    runs(build).some((r) => /\bnpm ci\b/.test(r) && !r.includes('--omit=dev')),
    'the build stage must install dev dependencies (npm ci)',
  );
  check(
    runs(build).some((r) => /\bnpm run build\b/.test(r)),
    'the build stage must run npm run build',
  );
  check(
    runs(runtime).some((r) => /\bnpm ci\b.*--omit=dev/.test(r)),
    'the runtime stage must install production dependencies only (npm ci --omit=dev)',
  );
  check(
    !runtime.instructions.some((i) => i.cmd === 'COPY' && /--from=\S+\s+\S*node_modules/.test(i.args)),
    "the runtime stage must not copy the build stage's node_modules (dev dependencies)",
  );
  const user = image.user?.split(':')[0];
  check(user !== undefined && /^\d+$/.test(user) && user !== '0', `USER must be a numeric non-root uid, got ${user}`);
  check(image.stopSignal === 'SIGTERM', 'STOPSIGNAL must be SIGTERM');
  check(image.healthcheck !== undefined, 'a HEALTHCHECK CMD is required');
  check(JSON.stringify(image.entrypoint) === JSON.stringify(['veer', 'run']), 'ENTRYPOINT must be ["veer", "run"]');
  check(image.env.VEER_CONFIG?.startsWith('/'), 'ENV VEER_CONFIG must name the absolute mount path of the config');
}

/** Every file under `dir` (relative, `/`-separated), not descending into `skip` folders. */
function filesUnder(dir: string, skip: (rel: string) => boolean, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix + entry.name;
    if (entry.isDirectory()) {
      if (!skip(rel)) out.push(...filesUnder(join(dir, entry.name), skip, `${rel}/`));
    } else out.push(rel);
  }
  return out;
}

/** What /app of the image holds: its files outside node_modules, and the packages in node_modules. */
export function imageContents(appDir: string): { files: string[]; packages: string[] } {
  const files = filesUnder(appDir, (rel) => rel === 'node_modules');
  const modules = join(appDir, 'node_modules');
  const packages: string[] = [];
  if (existsSync(modules)) {
    for (const name of readdirSync(modules)) {
      if (name.startsWith('.')) continue;
      if (name.startsWith('@')) for (const sub of readdirSync(join(modules, name))) packages.push(`${name}/${sub}`);
      else packages.push(name);
    }
  }
  return { files: files.sort(), packages: packages.sort() };
}

/**
 * The files `veer run` needs, and nothing else: package.json and its lock, the compiled modules of src/
 * (with their source maps) and the config schema, the dashboard's three built assets. No TypeScript
 * source, no bench/, no tests, no docs; node_modules holds production packages only.
 */
const IMAGE_FILES = [
  /^package(-lock)?\.json$/,
  /^dist\/src\/.+\.js(\.map)?$/,
  /^dist\/src\/admin\/dashboard\/assets\/(index\.html|app\.js|app\.css)$/,
  /^dist\/config\/veer\.schema\.json$/,
];
const IMAGE_NEEDS = [
  'package.json',
  'dist/src/cli/main.js',
  'dist/config/veer.schema.json',
  'dist/src/admin/dashboard/assets/index.html',
];

/** What in the image's /app breaks the rule above; empty when it holds. */
export function imageProblems(
  contents: { files: string[]; packages: string[] },
  pkg: { devDependencies?: Record<string, string> },
  lock: { packages: Record<string, { dev?: boolean }> },
): string[] {
  const problems: string[] = [];
  for (const f of contents.files) if (!IMAGE_FILES.some((re) => re.test(f))) problems.push(`unexpected file ${f}`);
  for (const f of IMAGE_NEEDS) if (!contents.files.includes(f)) problems.push(`missing ${f}`);
  for (const name of contents.packages) {
    const entry = lock.packages[`node_modules/${name}`];
    if (!entry) problems.push(`node_modules/${name} is not in package-lock.json`);
    else if (entry.dev) problems.push(`node_modules/${name} is a dev dependency`);
  }
  for (const name of Object.keys(pkg.devDependencies ?? {}))
    if (contents.packages.includes(name)) problems.push(`devDependency ${name} is in the image`);
  return problems;
}

async function sse(url: string, user: string): Promise<{ status: number; upstream: string | null; body: string }> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-user-id': user },
    body: JSON.stringify({ model: 'demo', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, upstream: res.headers.get('x-veer-upstream'), body: await res.text() };
}

/** Builds the image tree, runs it, and checks health, proxying and drain. Throws on the first failure. */
export async function verifyImageSteps(options: { keep?: boolean; log?: Log } = {}): Promise<{ seconds: number }> {
  const log = options.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const began = Date.now();
  const workDir = mkdtempSync(join(tmpdir(), 'veer-image-'));
  // Module resolution climbs parent folders: a node_modules above the fake root would hide a missing dependency.
  for (let d = workDir; d !== dirname(d); d = dirname(d)) {
    check(!existsSync(join(d, 'node_modules')), `${join(d, 'node_modules')} exists above the image root; remove it`);
  }
  const children: Child[] = [];
  try {
    const dockerfile = parseDockerfile(readFileSync(DOCKERFILE, 'utf8'));
    log(`build: ${dockerfile.stages.map((s) => `${s.name} (${s.from})`).join(', ')} under ${workDir}`);
    const image = await buildImage(dockerfile, workDir, log);
    checkRecipe(dockerfile, image.config);
    log('recipe: multi-stage, pinned slim base, production-only runtime, non-root, SIGTERM, healthcheck, veer run');
    const contents = imageContents(join(image.root, 'app'));
    const problems = imageProblems(
      contents,
      JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')),
      JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')),
    );
    check(problems.length === 0, `the image holds more or less than veer run needs:\n  ${problems.join('\n  ')}`);
    const count = (re: RegExp) => contents.files.filter((f) => re.test(f)).length;
    log(
      `image files: ${contents.files.length} under /app (dist/src ${count(/^dist\/src\//)}, dist/config ` +
        `${count(/^dist\/config\//)}, no bench, no .ts), ${contents.packages.length} production packages`,
    );
    const env = processEnv(image.config.env, image.root);
    const cwd = join(image.root, image.config.workdir);

    // The compose example's mock upstreams, started from the image with compose's entrypoint and command
    // (this machine's loopback and free ports instead of 0.0.0.0:9101/9102).
    const compose = parseYaml(readFileSync(join(REPO, 'docker/compose.yaml'), 'utf8')) as {
      services: Record<string, { entrypoint: string[]; command: string[] }>;
    };
    const mock = (name: 'legacy' | 'new') => {
      const service = compose.services[name];
      check(service, `docker/compose.yaml has no service ${name}`);
      const argv = [...service.entrypoint, ...service.command].map((arg, i, all) => {
        if (all[i - 1] === '--port') return '0';
        if (all[i - 1] === '--host') return '127.0.0.1';
        return arg.startsWith('/') ? join(image.root, arg) : arg;
      });
      return start(argv, { cwd, env });
    };
    const mocks = { legacy: mock('legacy'), new: mock('new') };
    children.push(mocks.legacy, mocks.new);
    const urls: Record<string, string> = {};
    for (const [name, m] of Object.entries(mocks)) {
      const line = await m.waitFor((l) => l.msg === 'mock upstream listening');
      check(line.name === name, `the ${name} mock calls itself ${line.name}`);
      urls[name] = String(line.url);
      // Compose's latencies are for watching; these streams should be quick.
      await fetch(`${urls[name]}/_mock/behavior`, {
        method: 'PUT',
        body: JSON.stringify({ ttfb: 5, tokens: 3, tokenIntervalMs: 1 }),
      });
    }

    // docker/veer.yaml at the mount path the image documents, with this machine's ports and mocks.
    const configPath = env.VEER_CONFIG!;
    type Section = Record<string, unknown>;
    const doc = parseYaml(readFileSync(join(REPO, 'docker/veer.yaml'), 'utf8')) as {
      listen: Section;
      admin: Section;
      upstreams: Record<'legacy' | 'new', Section>;
      rollout: Section;
      state: { path: string; audit_path: string };
    };
    doc.listen.port = 0;
    doc.admin.host = '127.0.0.1';
    doc.admin.port = 0;
    doc.upstreams.legacy.url = urls.legacy;
    doc.upstreams.new.url = urls.new;
    doc.rollout.weight = 50;
    doc.state.path = join(image.root, doc.state.path);
    doc.state.audit_path = join(image.root, doc.state.audit_path);
    mkdirSync(dirname(configPath), { recursive: true });
    writeFileSync(configPath, stringifyYaml(doc));
    log(`run: ${image.config.entrypoint.join(' ')} with ${image.config.env.VEER_CONFIG} (${configPath})`);

    const token = 'verify-image-steps-token-0123456789';
    const veer = start([...image.config.entrypoint, ...image.config.cmd], {
      cwd,
      env: { ...env, VEER_ADMIN_TOKEN: token },
    });
    children.push(veer);
    const started = await veer.waitFor((l) => l.msg === 'veer started');
    const port = (field: string) => Number(String(started[field]).split(':').pop());
    const proxy = `http://127.0.0.1:${port('proxy')}`;
    const admin = `http://127.0.0.1:${port('admin')}`;

    const healthcheck = (url: string) =>
      start(image.config.healthcheck!, { cwd, env: { ...env, VEER_HEALTH_URL: `${url}/healthz` } }).exited;
    check((await healthcheck(admin)) === 0, 'HEALTHCHECK failed against a running veer');
    log('healthcheck: exit 0');
    const ready = await fetch(`${admin}/readyz`);
    check(ready.status === 200, `/readyz answered ${ready.status}: ${await ready.text()}`);

    const seen: Record<string, number> = {};
    for (let i = 0; i < 20; i++) {
      const r = await sse(proxy, `user-${i}`);
      check(r.status === 200 && r.body.includes('data: [DONE]'), `proxied stream failed: ${r.status} ${r.body}`);
      seen[r.upstream ?? 'none'] = (seen[r.upstream ?? 'none'] ?? 0) + 1;
    }
    check((seen.legacy ?? 0) > 0 && (seen.new ?? 0) > 0, `20 users at 50% did not reach both: ${JSON.stringify(seen)}`);
    log(`proxy: 20 streams, legacy ${seen.legacy}, new ${seen.new}`);
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    check(/veer_requests_total\{[^}]*upstream="new"/.test(metrics), '/metrics has no veer_requests_total for new');
    // `docker exec <container> veer status`: the operator CLI from the image's PATH, with the container's env.
    const status = start(['veer', 'status', '--json'], {
      cwd,
      env: { ...env, VEER_ADMIN: admin, VEER_ADMIN_TOKEN: token },
    });
    const statusCode = await status.exited;
    check(statusCode === 0, `veer status exited ${statusCode}:\n${status.output()}`);
    const rolloutId = (JSON.parse(status.output()) as { rollout?: { id?: string } }).rollout?.id;
    check(rolloutId === doc.rollout.id, `veer status reported rollout ${rolloutId}`);
    log(`veer status: rollout ${rolloutId}`);
    // The built assets (e.g. the dashboard page) must be in the image: a 5xx means something is missing.
    const page = await fetch(`${admin}/`);
    check(page.status < 500, `GET / on the admin listener answered ${page.status}: ${await page.text()}`);

    // Drain: slow streams, SIGTERM in the middle of one; it must finish and veer must exit 0.
    for (const url of Object.values(urls)) {
      await fetch(`${url}/_mock/behavior`, {
        method: 'PUT',
        body: JSON.stringify({ tokens: 15, tokenIntervalMs: 100 }),
      });
    }
    const open = await fetch(`${proxy}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-user-id': 'user-drain' },
      body: JSON.stringify({ model: 'demo', stream: true, messages: [] }),
    });
    const reader = open.body!.getReader();
    const decoder = new TextDecoder();
    let body = decoder.decode((await reader.read()).value);
    const stopAt = Date.now();
    veer.child.kill(image.config.stopSignal as NodeJS.Signals);
    await veer.waitFor((l) => l.msg === 'draining');
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      body += decoder.decode(value, { stream: true });
    }
    check(body.includes('data: [DONE]'), `the open stream was cut by the drain: ${body.slice(-200)}`);
    const code = await veer.exited;
    check(code === 0, `veer exited ${code} after ${image.config.stopSignal}:\n${veer.output().slice(-4000)}`);
    const stopped = veer.lines.find((l) => l.msg === 'veer stopped');
    check(stopped?.forced === 0, `veer forced streams closed: ${JSON.stringify(stopped)}`);
    log(`drain: the open stream finished, exit 0 ${Date.now() - stopAt} ms after ${image.config.stopSignal}`);
    check((await healthcheck(admin)) !== 0, 'HEALTHCHECK passed with veer stopped');
    log('healthcheck: fails once veer is gone');
    const seconds = (Date.now() - began) / 1000;
    log(`image steps verified in ${seconds.toFixed(1)} s`);
    return { seconds };
  } finally {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    await Promise.all(children.map((c) => c.exited));
    if (options.keep) log(`kept ${workDir}`);
    else rmSync(workDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  verifyImageSteps({ keep: process.argv.includes('--keep') }).then(
    () => process.exit(0),
    (err: Error) => {
      process.stderr.write(`verify-image-steps: ${err.message}\n`);
      process.exit(1);
    },
  );
}

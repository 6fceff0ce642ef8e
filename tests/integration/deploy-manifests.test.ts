// The compose and Kubernetes examples under docker/: they parse, agree with each other, with veer's config and with a running veer.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { imageConfigOf, parseDockerfile } from '../../docker/verify-image-steps.js';
import { parseDuration } from '../../src/config/units.js';
import { REPO } from '../helpers/process.js';
import { mustBuild, type Stack, startStack, stateFiles, waitFor } from '../helpers/stack.js';

const DOCKER = join(REPO, 'docker');
const read = (p: string) => readFileSync(join(DOCKER, p), 'utf8');
const image = imageConfigOf(parseDockerfile(read('Dockerfile')));
const NODE_IMAGE = parseDockerfile(read('Dockerfile')).stages[0]!.from;

// biome-ignore lint/suspicious/noExplicitAny: manifests are free-form YAML, read field by field below
type Doc = any;

/** Each document of a (possibly multi-document) YAML file; a syntax error fails the test with its position. */
function yamlDocs(path: string): Doc[] {
  // merge: compose's `<<: *anchor` (YAML 1.1 merge keys, which Docker Compose applies).
  return parseAllDocuments(read(path), { merge: true }).map((d) => {
    expect(d.errors, `${path}: ${d.errors.map((e) => e.message).join('; ')}`).toEqual([]);
    return d.toJS();
  });
}

/** A config document validated by veer's own loader, with the token variables it names set. */
function buildVeerConfig(doc: Doc) {
  for (const t of doc.admin?.tokens ?? []) if (t.env) process.env[t.env] ??= 'a-test-token-of-32-characters-xx';
  return mustBuild(doc);
}

const portOf = (url: string) => Number(new URL(url).port);
const sleepSeconds = (hook: Doc) => {
  const cmd: string[] | undefined = hook?.exec?.command;
  if (hook?.sleep) return Number(hook.sleep.seconds);
  return cmd?.[0] === 'sleep' ? Number(cmd[1]) : 0;
};

describe('docker/compose.yaml', () => {
  const compose = yamlDocs('compose.yaml')[0];
  const services = compose.services;
  const veerDoc = parseYaml(read('veer.yaml'));
  const config = buildVeerConfig(veerDoc);

  it('runs the app, veer, both mock upstreams, Prometheus and Grafana, with images pinned', () => {
    expect(Object.keys(services).sort()).toEqual(['app', 'grafana', 'legacy', 'new', 'prometheus', 'veer']);
    for (const [name, s] of Object.entries<Doc>(services)) {
      expect(s.image, name).toMatch(/:(v?\d+\.\d+\.\d+[\w.-]*|local)$/);
    }
    expect(services.app.image).toBe(NODE_IMAGE);
    expect(services.veer.build.dockerfile).toBe('docker/Dockerfile');
    expect(posix.join('docker', services.veer.build.context)).toBe('.');
  });

  it('mounts a valid veer config at the path the image reads, and state where the config writes it', () => {
    const mounts: string[] = services.veer.volumes;
    const configMount = mounts.find((m) => m.split(':')[1] === image.env.VEER_CONFIG);
    expect(configMount, `no mount at ${image.env.VEER_CONFIG}`).toBe('./veer.yaml:/etc/veer/veer.yaml:ro');
    const stateDir = mounts.map((m) => m.split(':')[1]!).find((t) => config.state.path.startsWith(`${t}/`));
    expect(stateDir).toBe('/var/lib/veer');
    expect(config.state.auditPath.startsWith(`${stateDir}/`)).toBe(true);
    expect(services.veer.environment.VEER_ADMIN_TOKEN).toMatch(/^\$\{VEER_ADMIN_TOKEN:-.{16,}\}$/);
    expect(veerDoc.admin.tokens[0].env).toBe('VEER_ADMIN_TOKEN');
  });

  it('gives veer longer to stop than its drain, so Docker never SIGKILLs a draining veer', () => {
    expect(parseDuration(services.veer.stop_grace_period)!).toBeGreaterThan(config.drain.gracePeriodMs);
    expect(config.drain.gracePeriodMs).toBeLessThan(30_000);
  });

  it('points the app at veer over the shared loopback, and veer at the mock services by name and port', () => {
    expect(services.app.network_mode).toBe('service:veer');
    const appUrl = new URL(services.app.environment.VEER_URL);
    expect(appUrl.hostname).toBe(config.listen.host);
    expect(Number(appUrl.port)).toBe(config.listen.port);
    for (const name of ['legacy', 'new'] as const) {
      const url = new URL(config.upstreams[name].url);
      expect(url.hostname).toBe(name);
      const args: string[] = services[name].command;
      expect(Number(args[args.indexOf('--port') + 1])).toBe(portOf(url.href));
      expect(args[args.indexOf('--name') + 1]).toBe(name);
      expect(services[name].entrypoint).toEqual(['node', '/app/dist/src/demo/mock-upstream.js']);
    }
  });

  it('has Prometheus scrape the admin port the config opens beyond loopback, with the rules mounted where it loads them', () => {
    const prom = parseYaml(read('prometheus/prometheus.yml'));
    const job = prom.scrape_configs.find((j: Doc) => j.job_name === 'veer');
    expect(job.static_configs[0].targets).toEqual([`veer:${config.admin.port}`]);
    expect(config.admin.host).toBe('0.0.0.0');
    const mounts: string[] = services.prometheus.volumes;
    expect(mounts).toContain('./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro');
    const rulesMount = mounts.find((m) => m.startsWith('./prometheus/rules:'))!.split(':')[1]!;
    for (const f of prom.rule_files) expect(posix.join('/etc/prometheus', dirname(f))).toBe(rulesMount);
  });

  it('provisions Grafana with the compose Prometheus and the dashboard from where it is mounted', () => {
    const ds = yamlDocs('grafana/provisioning/datasources/prometheus.yaml')[0].datasources[0];
    expect(ds.type).toBe('prometheus');
    expect(new URL(ds.url).hostname).toBe('prometheus');
    const provider = yamlDocs('grafana/provisioning/dashboards/veer.yaml')[0].providers[0];
    const mounts: string[] = services.grafana.volumes;
    expect(mounts).toContain('./grafana/provisioning:/etc/grafana/provisioning:ro');
    const dashMount = mounts.find((m) => m.startsWith('./grafana/veer-dashboard.json:'))!.split(':')[1]!;
    expect(dirname(dashMount)).toBe(provider.options.path);
    const dashboard = JSON.parse(read('grafana/veer-dashboard.json'));
    expect(dashboard.templating.list.find((v: Doc) => v.name === 'datasource').query).toBe('prometheus');
    // Grafana's datasource variable, so the dashboard also imports into a Grafana with another Prometheus.
    const datasourceVariable = '$' + '{datasource}';
    for (const p of dashboard.panels) if (p.type !== 'row') expect(p.datasource.uid, p.title).toBe(datasourceVariable);
  });

  it('names only files that exist in its bind mounts', () => {
    for (const s of Object.values<Doc>(services)) {
      for (const m of s.volumes ?? []) {
        const source = String(m).split(':')[0]!;
        if (source.startsWith('.')) expect(() => readFileSync(join(DOCKER, source)), source).not.toThrow(/ENOENT/);
      }
    }
  });
});

describe('docker/app/stream-client.mjs', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  const runClient = async (env: Record<string, string>) => {
    const child = spawn(process.execPath, [join(DOCKER, 'app/stream-client.mjs')], {
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
    });
    const [code] = await once(child, 'exit');
    const lines = out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    return { code: code as number, lines };
  };

  it('streams completions through veer, logs each with its upstream and TTFB, and exits 0', async () => {
    const { code, lines } = await runClient({ VEER_URL: stack.url, MAX_REQUESTS: '12', RATE: '100', USERS: '40' });
    expect(code).toBe(0);
    const done = lines.filter((l) => l.msg === 'completion');
    expect(done).toHaveLength(12);
    for (const l of done) {
      expect(['new', 'legacy']).toContain(l.upstream);
      expect(l.status).toBe(200);
      expect(l.tokens).toBe(3);
      expect(typeof l.ttfb_ms).toBe('number');
    }
    expect(lines.at(-1)).toMatchObject({ msg: 'summary', requests: 12, ok: 12, failed: 0 });
    expect(stack.legacy.stats.completed + stack.next.stats.completed).toBeGreaterThanOrEqual(12);
  });

  it('exits 1 when veer cannot be reached', async () => {
    const { code, lines } = await runClient({ VEER_URL: 'http://127.0.0.1:1', MAX_REQUESTS: '2', RATE: '100' });
    expect(code).toBe(1);
    expect(lines.at(-1)).toMatchObject({ msg: 'summary', ok: 0, failed: 2 });
  });
});

describe('docker/kubernetes', () => {
  const docs = [
    'configmap.yaml',
    'secret.yaml',
    'deployment.yaml',
    'podmonitor.yaml',
    'prometheusrule.yaml',
    'pdb.yaml',
    'networkpolicy.yaml',
  ].flatMap((f) => yamlDocs(`kubernetes/${f}`));
  const byKind = (kind: string) => docs.find((d) => d.kind === kind);
  const deployment = byKind('Deployment');
  const pod = deployment.spec.template.spec;
  const veer = pod.initContainers.find((c: Doc) => c.name === 'veer');
  const app = pod.containers[0];
  const configMap = byKind('ConfigMap');
  const veerDoc = parseYaml(configMap.data['veer.yaml']);
  const config = buildVeerConfig(veerDoc);

  it('lists every manifest in the kustomization, and each has apiVersion, kind and a name', () => {
    const kustomization = yamlDocs('kubernetes/kustomization.yaml')[0];
    expect(kustomization.resources).toHaveLength(7);
    for (const d of docs) {
      expect(d.apiVersion).toBeTruthy();
      expect(d.kind).toBeTruthy();
      expect(d.metadata.name).toBeTruthy();
    }
  });

  it('runs veer as a native sidecar (restartPolicy Always init container), non-root, read-only root', () => {
    expect(veer.restartPolicy).toBe('Always');
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(String(pod.securityContext.runAsUser)).toBe(image.user!.split(':')[0]);
    expect(veer.securityContext.readOnlyRootFilesystem).toBe(true);
  });

  it('mounts a valid config where VEER_CONFIG points, and gives its state paths a writable volume', () => {
    const env = Object.fromEntries(veer.env.map((e: Doc) => [e.name, e]));
    expect(env.VEER_CONFIG.value).toBe(image.env.VEER_CONFIG);
    const configMount = veer.volumeMounts.find((m: Doc) => m.name === 'veer-config');
    expect(configMount.mountPath).toBe(dirname(image.env.VEER_CONFIG!));
    expect(pod.volumes.find((v: Doc) => v.name === 'veer-config').configMap.name).toBe(configMap.metadata.name);
    expect(Object.keys(configMap.data)).toContain(posix.basename(image.env.VEER_CONFIG!));
    const stateMount = veer.volumeMounts.find((m: Doc) => config.state.path.startsWith(`${m.mountPath}/`));
    expect(stateMount, 'state.path is on no volume (the root file system is read-only)').toBeDefined();
    expect(config.state.auditPath.startsWith(`${stateMount.mountPath}/`)).toBe(true);
    expect(pod.volumes.find((v: Doc) => v.name === stateMount.name).emptyDir).toBeDefined();
  });

  it('takes the admin token from the Secret, under the variable the config names', () => {
    const secret = byKind('Secret');
    const tokenEnv = veer.env.find((e: Doc) => e.name === veerDoc.admin.tokens[0].env);
    expect(tokenEnv.valueFrom.secretKeyRef.name).toBe(secret.metadata.name);
    expect(Object.keys(secret.stringData)).toContain(tokenEnv.valueFrom.secretKeyRef.key);
  });

  it('declares the ports the config listens on, and the app calls the proxy port over loopback', () => {
    const ports = Object.fromEntries(veer.ports.map((p: Doc) => [p.name, p.containerPort]));
    expect(ports.proxy).toBe(config.listen.port);
    expect(ports.admin).toBe(config.admin.port);
    // Kubelet probes come from outside the pod: the admin listener must not be loopback-only.
    expect(config.admin.host).toBe('0.0.0.0');
    const baseUrl = new URL(app.env.find((e: Doc) => e.name === 'OPENAI_BASE_URL').value);
    expect(baseUrl.hostname).toBe(config.listen.host);
    expect(Number(baseUrl.port)).toBe(config.listen.port);
  });

  it("pauses before stopping with the kubelet's sleep action, not a sleep binary (absent from distroless images)", () => {
    for (const c of [veer, app]) {
      expect(c.lifecycle.preStop.exec, c.name).toBeUndefined();
      expect(c.lifecycle.preStop.sleep.seconds, c.name).toBeGreaterThan(0);
    }
  });

  it('fits preStop and drain in terminationGracePeriodSeconds, and drains faster than the 30 s default', () => {
    const veerStop = sleepSeconds(veer.lifecycle?.preStop) + config.drain.gracePeriodMs / 1000;
    const appStop = sleepSeconds(app.lifecycle?.preStop);
    // A native sidecar is stopped after the app has exited: both shutdowns come out of one budget.
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(appStop + veerStop);
    expect(veerStop).toBeGreaterThan(config.drain.gracePeriodMs / 1000);
    expect(config.drain.gracePeriodMs).toBeLessThan(30_000);
  });

  it('has the PodMonitor select these pods on the sidecar admin port, and job="veer" as the rules expect', () => {
    const monitor = byKind('PodMonitor');
    expect(deployment.spec.template.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    const endpoint = monitor.spec.podMetricsEndpoints[0];
    expect(veer.ports.map((p: Doc) => p.name)).toContain(endpoint.port);
    expect(endpoint.path).toBe('/metrics');
    expect(endpoint.relabelings).toContainEqual({ targetLabel: 'job', replacement: 'veer' });
  });

  it('takes the pods down one at a time (PDB) and keeps the admin port to the monitoring namespace (NetworkPolicy)', () => {
    const labels = deployment.spec.template.metadata.labels;
    const pdb = byKind('PodDisruptionBudget');
    expect(labels).toMatchObject(pdb.spec.selector.matchLabels);
    expect(pdb.spec.maxUnavailable).toBe(1);
    const policy = byKind('NetworkPolicy');
    expect(labels).toMatchObject(policy.spec.podSelector.matchLabels);
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
    const [admin, appPort] = policy.spec.ingress;
    expect(veer.ports.map((p: Doc) => p.name)).toContain(admin.ports[0].port);
    expect(admin.ports[0].port).toBe('admin');
    expect(admin.from).toEqual([
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
    ]);
    // The app's own port stays open to its callers; veer's proxy port is on loopback and needs no rule.
    expect(app.ports.map((p: Doc) => p.name)).toContain(appPort.ports[0].port);
    expect(appPort.from).toBeUndefined();
    expect(policy.spec.ingress.some((r: Doc) => r.ports.some((p: Doc) => p.port === 'proxy'))).toBe(false);
  });

  it('carries the same alert rules as docker/prometheus (where promtool tests them)', () => {
    const rules = parseYaml(read('prometheus/rules/veer-alerts.yml'));
    expect(byKind('PrometheusRule').spec).toEqual(rules);
  });

  describe('probes against veer running the ConfigMap config', () => {
    let stack: Stack;
    beforeAll(async () => {
      const { upstreams: _ignored, ...rest } = veerDoc;
      stack = await startStack({
        config: {
          ...rest,
          listen: { ...rest.listen, port: 0 },
          admin: { ...rest.admin, host: '127.0.0.1', port: 0 },
          state: stateFiles(),
          log: { level: 'silent' },
        },
      });
    });
    afterAll(async () => {
      await stack?.close();
    });

    it('answers every probe path with 200 on the admin port, and a wrong path with 404', async () => {
      const probes = ['startupProbe', 'readinessProbe', 'livenessProbe'].map((p) => veer[p].httpGet);
      for (const probe of probes) {
        expect(probe.port).toBe('admin');
        const res = await fetch(`${stack.adminUrl}${probe.path}`);
        expect(res.status, probe.path).toBe(200);
      }
      expect(probes.map((p) => p.path)).toEqual(['/readyz', '/readyz', '/healthz']);
      expect((await fetch(`${stack.adminUrl}/ready`)).status).toBe(404);
    });

    it('stops passing readiness while draining a stream, so the pod leaves its endpoints', async () => {
      for (const mock of [stack.legacy, stack.next]) mock.set({ tokens: 10, tokenIntervalMs: 50 });
      const stream = fetch(`${stack.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-user-id': 'u1' },
        body: JSON.stringify({ stream: true }),
      }).then((r) => r.text());
      await waitFor(() => stack.legacy.stats.active + stack.next.stats.active > 0);
      const draining = stack.veer.shutdown(5000);
      const res = await fetch(`${stack.adminUrl}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ ready: false, draining: true });
      expect(await stream).toContain('data: [DONE]');
      expect(await draining).toEqual({ forced: 0 });
    });
  });
});

import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodTemplateSpec } from 'kubernetes-models/v1/PodTemplateSpec';
import { runExclusive } from '../server/src/db.js';
import { freePort, pgClientBin, pollUntil, startPostgres, type PostgresCluster } from './harness/index.js';
import { REPO_ROOT, REQUIRED_VARIABLES, SECRET_VARIABLES, documentedVariables, durationSeconds, hasVariable } from './image-deploy-helpers.js';

/**
 * The Kubernetes examples in deploy/kubernetes/: every object is validated against the Kubernetes
 * (and Prometheus Operator) JSON schemas shipped in the `kubernetes-models` packages, offline. Those
 * schemas check types, required fields and enums but accept unknown fields, so the fields that matter
 * for this service are checked one by one below.
 */

const DIR = join(REPO_ROOT, 'deploy', 'kubernetes');
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'v1/Service': Service,
  'v1/Secret': Secret,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  stringData?: Record<string, string>;
  file: string;
}

function load(): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const file of readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort()) {
    // YAML 1.1, as Kubernetes reads it (defaultMode: 0440 is octal there).
    for (const doc of parseAllDocuments(readFileSync(join(DIR, file), 'utf8'), { version: '1.1' })) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
      const value = doc.toJS() as Omit<K8sObject, 'file'> | null;
      if (value) objects.push({ ...value, file });
    }
  }
  return objects;
}

const objects = load();
const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
const workloads = objects.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');
const template = (o: K8sObject) => (o.spec as { template: IPodTemplateSpec }).template;
const backupContainer = (o: K8sObject): IContainer => {
  const c = template(o).spec?.containers.find((x) => x.image?.includes('db-backup-service'));
  if (!c) throw new Error(`${o.file}: no db-backup-service container`);
  return c;
};
const envOf = (c: IContainer) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));
const exampleSecret = byKind('Secret').find((s) => s.metadata.name === 'db-backup');

describe('deploy/kubernetes', () => {
  it('has the sidecar, the standalone Deployment, the Secret example and a ServiceMonitor', () => {
    expect(objects.map((o) => `${o.file}:${o.kind}`).sort()).toEqual(
      expect.arrayContaining([
        'deployment.yaml:Deployment',
        'deployment.yaml:Service',
        'prometheusrule.yaml:PrometheusRule',
        'secret.example.yaml:Secret',
        'servicemonitor.yaml:ServiceMonitor',
        'sidecar.yaml:Service',
        'sidecar.yaml:StatefulSet',
      ]),
    );
  });

  it.each(objects.map((o) => [`${o.file} ${o.kind}/${o.metadata.name}`, o] as const))(
    '%s validates against its schema',
    (_name, o) => {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      expect(Model, `no schema for ${o.apiVersion} ${o.kind}`).toBeDefined();
      const { file: _file, ...data } = o;
      expect(() => new (Model as NonNullable<typeof Model>)(data as never).validate()).not.toThrow();
    },
  );

  it('catches a schema error (the validator is live)', () => {
    const broken = structuredClone(workloads[0] as K8sObject);
    const { file: _file, ...data } = broken;
    (template(broken).spec?.containers[0] as { ports?: unknown }).ports = [{ containerPort: 'http' }];
    const Model = MODELS[`${broken.apiVersion}/${broken.kind}`] as NonNullable<(typeof MODELS)[string]>;
    expect(() => new Model(data as never).validate()).toThrow(/containerPort/);
  });

  describe.each(workloads.map((w) => [`${w.file} ${w.kind}`, w] as const))('%s', (_name, w) => {
    const pod = template(w);
    const c = backupContainer(w);
    const env = envOf(c);

    it('sets every required variable, only names from the README table, secrets as _FILE', () => {
      const backend = env.STORAGE_BACKEND as 'local' | 's3';
      expect(['local', 's3']).toContain(backend);
      for (const name of [...REQUIRED_VARIABLES.common, ...REQUIRED_VARIABLES[backend]]) {
        expect(hasVariable(env, name), `${name} missing`).toBe(true);
      }
      const documented = documentedVariables();
      for (const name of Object.keys(env)) expect(documented, `${name} is not in the README's configuration table`).toContain(name);
      for (const secret of SECRET_VARIABLES) expect(env[secret], `${secret} must come from a file`).toBeUndefined();
    });

    it('mounts each _FILE variable from the Secret, with keys the Secret example has', () => {
      const mounts = c.volumeMounts ?? [];
      for (const [name, value] of Object.entries(env)) {
        if (!name.endsWith('_FILE')) continue;
        const path = String(value);
        const mount = mounts.find((m) => path.startsWith(`${m.mountPath}/`));
        expect(mount, `${name}=${path} is under no volumeMount`).toBeDefined();
        const volume = pod.spec?.volumes?.find((v) => v.name === mount?.name);
        expect(volume?.secret?.secretName).toBe('db-backup');
        const item = volume?.secret?.items?.find((i) => `${mount?.mountPath}/${i.path}` === path);
        expect(item, `${path} is not an item of the secret volume`).toBeDefined();
        expect(Object.keys(exampleSecret?.stringData ?? {})).toContain(item?.key);
      }
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (ref) expect(Object.keys(exampleSecret?.stringData ?? {})).toContain(ref.key);
      }
    });

    it('probes liveness on /health/live (the process only) on the container port 8080', () => {
      const port = c.ports?.find((p) => p.containerPort === 8080);
      expect(port?.name).toBe('http');
      expect(c.livenessProbe?.httpGet?.path).toBe('/health/live');
      expect([port?.name, 8080]).toContain(c.livenessProbe?.httpGet?.port);
      expect(c.startupProbe, 'a startup probe would gate readiness too').toBeUndefined();
    });

    const sharesPodWithDatabase = (pod.spec?.containers.length ?? 0) > 1;
    it(
      sharesPodWithDatabase
        ? 'has no readiness probe on /health: storage must not take the database in its pod out of service'
        : 'probes readiness on /health (database and storage): this pod holds no database',
      () => {
        if (sharesPodWithDatabase) expect(c.readinessProbe).toBeUndefined();
        else expect(c.readinessProbe?.httpGet?.path).toBe('/health');
      },
    );

    it('gives it terminationGracePeriodSeconds above SHUTDOWN_TIMEOUT', () => {
      const shutdown = durationSeconds(env.SHUTDOWN_TIMEOUT ?? '60s');
      expect(pod.spec?.terminationGracePeriodSeconds ?? 30).toBeGreaterThan(shutdown);
    });

    it('sets memory requests and limits, and runs it as the image user 10001, non-root, read-only', () => {
      expect(c.resources?.requests?.memory).toBeDefined();
      expect(c.resources?.limits?.memory).toBeDefined();
      const runAsUser = c.securityContext?.runAsUser ?? pod.spec?.securityContext?.runAsUser;
      const runAsNonRoot = c.securityContext?.runAsNonRoot ?? pod.spec?.securityContext?.runAsNonRoot;
      expect(runAsUser).toBe(10001);
      expect(runAsNonRoot).toBe(true);
      expect(c.securityContext?.allowPrivilegeEscalation).toBe(false);
      if (c.securityContext?.readOnlyRootFilesystem) {
        const tmp = (c.volumeMounts ?? []).find((m) => m.mountPath === '/tmp');
        expect(pod.spec?.volumes?.find((v) => v.name === tmp?.name)?.emptyDir, '/tmp must be writable (db-restore downloads there)').toBeDefined();
      }
    });

    it('is selected by a Service with an "http" port, and carries the prometheus.io annotations', () => {
      const labels = pod.metadata?.labels ?? {};
      const services = byKind('Service').filter((s) => s.file === w.file);
      const svc = services.find((s) =>
        Object.entries((s.spec?.selector as Record<string, string>) ?? {}).every(([k, v]) => labels[k] === v),
      );
      expect(svc, 'no Service selects the pod').toBeDefined();
      const http = (svc?.spec?.ports as { name: string; port: number; targetPort: unknown }[]).find((p) => p.name === 'http');
      expect(http?.port).toBe(8080);
      expect(http?.targetPort).toBe('http');
      expect(pod.metadata?.annotations?.['prometheus.io/scrape']).toBe('true');
      expect(pod.metadata?.annotations?.['prometheus.io/path']).toBe('/metrics');
      expect(pod.metadata?.annotations?.['prometheus.io/port']).toBe('8080');
    });
  });

  it('the PrometheusRule is the README\'s alert rules, with one staleness threshold everywhere', () => {
    const rule = byKind('PrometheusRule')[0];
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    const block = /```yaml\n(groups:[\s\S]*?)```/.exec(readme)?.[1];
    expect(block, 'README: no ```yaml block of alert groups').toBeDefined();
    expect((rule?.spec as { groups: unknown }).groups).toEqual((parse(block!) as { groups: unknown }).groups);
    const stale = JSON.stringify(rule?.spec).match(/dbbackup_last_success_timestamp_seconds > (\d+) \* 3600/)?.[1];
    expect(stale).toBe('30');
    const k8sReadme = readFileSync(join(DIR, 'README.md'), 'utf8');
    // The drill alert has a threshold of its own (dbbackup_drill_last_success_timestamp_seconds).
    const staleness = /dbbackup_last_success_timestamp_seconds > (\d+) \* 3600/g;
    expect([...k8sReadme.matchAll(staleness)].map((m) => m[1])).toEqual([stale]);
    expect([...readme.matchAll(staleness)].map((m) => m[1])).toEqual([stale]);
  });

  it('the ServiceMonitor selects every Service of the examples on their "http" port, path /metrics', () => {
    const monitor = byKind('ServiceMonitor')[0];
    const spec = monitor?.spec as { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] };
    expect(spec.endpoints[0]).toMatchObject({ port: 'http', path: '/metrics' });
    // The job name the PrometheusRule's up{job="db-backup-service"} expects.
    expect((monitor?.spec as { jobLabel?: string }).jobLabel).toBe('app.kubernetes.io/part-of');
    for (const svc of byKind('Service')) {
      const labels = svc.metadata.labels ?? {};
      expect(Object.entries(spec.selector.matchLabels).every(([k, v]) => labels[k] === v), `${svc.file} ${svc.metadata.name}`).toBe(true);
      expect((svc.spec?.ports as { name: string }[]).map((p) => p.name)).toContain('http');
    }
  });
});

describe('sidecar.yaml: PostgreSQL waits for a running backup before it stops', () => {
  const sts = objects.find((o) => o.file === 'sidecar.yaml' && o.kind === 'StatefulSet') as K8sObject;
  const pod = template(sts);
  const database = pod.spec?.containers.find((x) => x.name === 'postgres') as IContainer;
  const script = database.lifecycle?.preStop?.exec?.command?.at(-1) ?? '';
  const bound = Number(/SECONDS \+ (\d+)/.exec(script)?.[1]);
  const shutdown = durationSeconds(envOf(backupContainer(sts)).SHUTDOWN_TIMEOUT ?? '60s');

  it('has a preStop hook bounded above SHUTDOWN_TIMEOUT and below terminationGracePeriodSeconds', () => {
    expect(database.lifecycle?.preStop?.exec?.command?.slice(0, 2)).toEqual(['bash', '-c']);
    expect(bound).toBeGreaterThan(shutdown);
    // PostgreSQL's own shutdown (a checkpoint) needs what is left of the grace period.
    expect(bound + 30).toBeLessThanOrEqual(pod.spec?.terminationGracePeriodSeconds ?? 30);
  });

  it('runs postgres:18 with its data volume at /var/lib/postgresql (the image keeps PGDATA in a versioned directory below it)', () => {
    expect(database.image).toBe('postgres:18');
    const mounts = database.volumeMounts ?? [];
    const data = mounts.find((m) => m.mountPath === '/var/lib/postgresql');
    expect(data, 'a volume mounted at /var/lib/postgresql').toBeDefined();
    const claims = ((sts.spec as { volumeClaimTemplates?: { metadata: { name: string } }[] }).volumeClaimTemplates ?? []).map((t) => t.metadata.name);
    expect(claims, 'the data volume is the StatefulSet\'s volume claim').toContain(data?.name);
    expect(mounts.some((m) => m.mountPath.startsWith('/var/lib/postgresql/'))).toBe(false);
    expect((database.env ?? []).find((e) => e.name === 'PGDATA')).toBeUndefined();
  });

    it('puts no sizeLimit on /tmp, where db-restore downloads (exceeding it evicts the database pod)', () => {
    const tmp = (backupContainer(sts).volumeMounts ?? []).find((m) => m.mountPath === '/tmp');
    const volume = pod.spec?.volumes?.find((v) => v.name === tmp?.name);
    expect(volume?.emptyDir).toBeDefined();
    expect(volume?.emptyDir?.sizeLimit).toBeUndefined();
  });

  describe('the hook, run against a real PostgreSQL', () => {
    let pg: PostgresCluster;
    let work: string;
    beforeAll(async () => {
      pg = await startPostgres();
      work = await mkdtemp(join(tmpdir(), 'prestop-'));
      // psql as the hook runs it, counting its calls (how many times the hook has looked).
      await writeFile(join(work, 'psql'), `#!/bin/bash\necho >> "${join(work, 'calls')}"\nexec "${pgClientBin('psql')}" "$@"\n`, { mode: 0o755 });
    });
    afterAll(async () => {
      await pg?.destroy();
      if (work) await rm(work, { recursive: true, force: true });
    });

    const calls = async () => (await readFile(join(work, 'calls'), 'utf8').catch(() => '')).length;
    /** Runs the hook as the kubelet would (bash -c), PostgreSQL's libpq settings in its environment. */
    const runHook = (hook: string, port = pg.port) => {
      const child = spawn('bash', ['-c', hook], {
        env: { ...pg.pgEnv(), PGPORT: String(port), PATH: `${work}:${process.env.PATH ?? ''}`, POSTGRES_USER: pg.user, POSTGRES_DB: pg.database },
        stdio: 'ignore',
      });
      return new Promise<{ code: number | null; seconds: number }>((resolve) => {
        const started = Date.now();
        child.once('close', (code) => resolve({ code, seconds: (Date.now() - started) / 1000 }));
      });
    };
    const db = () => ({ host: pg.host, port: pg.port, name: pg.database, user: pg.user, password: pg.password, tls: { mode: 'disable' as const, rootCert: null, cert: null, key: null } });

    it('returns at once when no backup runs', async () => {
      expect((await runHook(script)).code).toBe(0);
    });

    it('waits while the service holds its backup lock, and returns once it is released', async () => {
      await rm(join(work, 'calls'), { force: true });
      let hook: ReturnType<typeof runHook> | undefined;
      let exited = false;
      const held = await runExclusive(db(), async () => {
        hook = runHook(script);
        void hook.then(() => (exited = true));
        // Two looks at the lock, and still waiting: it saw the backup.
        await pollUntil(async () => ((await calls()) >= 2 ? true : undefined), { timeoutMs: 20_000, what: 'two checks by the hook' });
        expect(exited).toBe(false);
      });
      expect(held).toBe(true);
      expect((await hook!).code).toBe(0);
    });

    it('gives up at its bound, and when PostgreSQL cannot be asked', async () => {
      const unreachable = await runHook(script, await freePort());
      expect(unreachable.code).toBe(0);
      expect(unreachable.seconds).toBeLessThan(bound);
      await runExclusive(db(), async () => {
        const short = await runHook(script.replace(`SECONDS + ${bound}`, 'SECONDS + 2'));
        expect(short.code).toBe(0);
      });
    });
  });
});

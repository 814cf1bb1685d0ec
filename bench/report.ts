// Turns the measurements into the one table the bench prints and the files in bench/results/.
import { median } from './measure.js';

export interface CaseResult {
  readonly id: string;
  readonly label: string;
  readonly unit: 's' | 'MB' | 'MB/s' | 'req/s';
  readonly samples: number[];
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly extra: Record<string, unknown>;
}

export function caseOf(id: string, label: string, unit: CaseResult['unit'], samples: number[], extra: Record<string, unknown>): CaseResult {
  return { id, label, unit, samples, median: median(samples), min: Math.min(...samples), max: Math.max(...samples), extra };
}

/** A case that could not be measured: no samples, and `extra.error` says why (rendered as FAILED). */
export function failedCase(id: string, label: string, error: string, extra: Record<string, unknown> = {}): CaseResult {
  return { id, label, unit: 's', samples: [], median: Number.NaN, min: Number.NaN, max: Number.NaN, extra: { ...extra, error } };
}

/** The default backup to local storage: always run; its last backup feeds downloads and restores. */
export const DEFAULT_SERVICE_CASE = 'service-local-gzip';

const errorOf = (c: CaseResult | undefined): string | null => (c && typeof c.extra.error === 'string' ? c.extra.error : null);

export interface BenchResults {
  readonly date: string;
  readonly options: { quick: boolean; sizeMB: number; runs: number; sections: string[] };
  readonly machine: {
    cpus: number;
    cpuModel: string;
    loadBefore: [number, number, number];
    loadAfter: [number, number, number];
    loadBySection: Record<string, [number, number, number]>;
  };
  readonly versions: Record<string, string | null>;
  readonly dataset: {
    main: { plainBytes: number; gzip6Bytes: number | null; generateSeconds: number };
    rssSmall: { plainBytes: number } | null;
    rssLarge: { plainBytes: number } | null;
  };
  readonly cases: CaseResult[];
}

export interface TargetCheck {
  readonly target: string;
  readonly measured: string;
  readonly met: boolean | null;
}

const fmt = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const pct = (ratio: number): string => `${ratio >= 1 ? '+' : ''}${fmt((ratio - 1) * 100, 1)}%`;
const mb = (bytes: number): string => `${fmt(bytes / 1e6, 0)} MB`;
const numbers = (v: unknown): number[] => (Array.isArray(v) ? v.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)) : []);

function find(results: BenchResults, id: string): CaseResult | undefined {
  return results.cases.find((c) => c.id === id);
}

const isBackup = (c: CaseResult): boolean => c.extra.kind === 'baseline' || c.extra.kind === 'service';
const isRss = (c: CaseResult): boolean => c.extra.kind === 'rss';
const ok = (c: CaseResult | undefined): c is CaseResult => c !== undefined && errorOf(c) === null;

/** The columns of the backups table: one row per baseline or service case. */
const BACKUP_HEADER = ['Case', 'Wall (median)', 'Range', 'CPU s', 'PG server CPU s', 'Size', 'vs gzip -6 size', 'x limit', 'x gzip -6', 'x pigz', 'x zstd CLI', 'Peak RSS (small / large dump)', 'Notes'];

function backupRow(results: BenchResults, c: CaseResult): string[] {
  const error = errorOf(c);
  if (error !== null) return [c.label, 'FAILED', '', '', '', '', '', '', '', '', '', rssCell(results, c), error];
  const gzipBytes = results.dataset.main.gzip6Bytes;
  const size = typeof c.extra.sizeBytes === 'number' ? c.extra.sizeBytes : Number.NaN;
  const times = (id: string): string => {
    const ref = find(results, id);
    return ok(ref) && ref.id !== c.id ? `${fmt(c.median / ref.median)}x` : '';
  };
  const cpu = median(numbers(c.extra.cpuSeconds));
  const pgDumpCpu = median(numbers(c.extra.pgDumpCpuSeconds));
  const notes: string[] = [];
  if (c.extra.kind === 'service') {
    const pipeline = median(numbers(c.extra.pipelineSeconds));
    const verify = median(numbers(c.extra.verifySeconds));
    notes.push(`${String(c.extra.format)}${typeof c.extra.level === 'number' ? ` level ${c.extra.level}` : ''}${c.extra.encrypted === true ? ', age-encrypted (header checked as stored)' : ''}`);
    notes.push(`wall ${fmt(median(numbers(c.extra.wallSeconds)))} s = dump→stored ${fmt(pipeline)} s + verify ${fmt(verify)} s`);
    const emulator = median(numbers(c.extra.emulatorCpuSeconds));
    if (Number.isFinite(emulator)) notes.push(`S3 emulator CPU ${fmt(emulator, 1)} s (not in CPU s)`);
    if (typeof c.extra.instancePeakRssBytes === 'number') notes.push(`VmHWM of the long-lived instance ${mb(c.extra.instancePeakRssBytes)}`);
  } else if (c.id === 'limit') {
    notes.push(`${mb(results.dataset.main.plainBytes)} plain, ${fmt(results.dataset.main.plainBytes / 1e6 / c.median, 0)} MB/s`);
  } else if (c.id === 'gzip6') {
    notes.push(`${fmt(results.dataset.main.plainBytes / size)}x smaller than plain`);
  }
  return [
    c.label,
    `${fmt(c.median)} s`,
    `${fmt(c.min)}–${fmt(c.max)}`,
    Number.isFinite(pgDumpCpu) ? `${fmt(cpu, 1)} (pg_dump ${fmt(pgDumpCpu, 1)})` : fmt(cpu, 1),
    fmt(median(numbers(c.extra.pgServerCpuSeconds)), 1),
    Number.isFinite(size) ? mb(size) : '',
    Number.isFinite(size) && gzipBytes ? pct(size / gzipBytes) : '',
    times('limit'),
    times('gzip6'),
    times('pigz6'),
    times('zstd3'),
    rssCell(results, c),
    notes.join('; '),
  ];
}

/** The rss section's medians for a service case: "small / large MB". */
function rssCell(results: BenchResults, c: CaseResult): string {
  if (c.extra.kind !== 'service') return '';
  const of = (size: 'small' | 'large'): string => {
    const r = results.cases.find((x) => isRss(x) && x.extra.serviceCase === c.id && x.extra.size === size);
    if (!r) return '-';
    return errorOf(r) !== null ? 'FAILED' : fmt(r.median, 0);
  };
  const [small, large] = [of('small'), of('large')];
  if (small === '-' && large === '-') return '';
  return small === 'FAILED' && large === 'FAILED' ? 'FAILED' : `${small} / ${large} MB`;
}

/** Ratio and notes of the other cases (manifest, rss, downloads, restores, API). */
function describe(results: BenchResults, c: CaseResult): { ratio: string; notes: string } {
  const error = errorOf(c);
  if (error !== null) return { ratio: '', notes: `FAILED: ${error}` };
  switch (true) {
    case c.id === 'manifest-counter': {
      const svc = find(results, DEFAULT_SERVICE_CASE);
      return {
        ratio: ok(svc) ? `${fmt((c.median / svc.median) * 100, 1)}% of backup` : '',
        notes: `${fmt(Number(c.extra.plainBytes) / 1e6 / c.median, 0)} MB/s of plain dump, on the main thread during pg_dump`,
      };
    }
    case isRss(c): {
      const small = results.cases.find((x) => isRss(x) && x.extra.serviceCase === c.extra.serviceCase && x.extra.size === 'small');
      const ratio = c.extra.size === 'large' && ok(small) ? `${fmt(c.median / small.median)}x small` : '';
      return { ratio, notes: `max polled VmRSS ${fmt(Math.max(...numbers(c.extra.maxPolledRssMB)), 0)} MB` };
    }
    case c.id === 'download-http': {
      const direct = find(results, 'download-direct');
      const plainNode = find(results, 'download-plain-node');
      const curlFile = find(results, 'download-curl-file');
      return {
        ratio: curlFile ? `${fmt(c.median / curlFile.median)}x curl file://` : '',
        notes: `${mb(Number(c.extra.sizeBytes))} backup${direct ? `; ${fmt(c.median / direct.median)}x cat` : ''}${plainNode ? `; ${fmt(c.median / plainNode.median)}x bare node server` : ''}`,
      };
    }
    case c.id.startsWith('restore-cli'): {
      const stock = find(results, c.id.replace('restore-cli', 'restore-stock'));
      const codec = c.id.endsWith('-zstd') ? 'zstd decompress' : 'gunzip';
      return { ratio: ok(stock) ? `${fmt(c.median / stock.median)}x stock` : '', notes: `one pass: sha256 + ${codec} into psql, COMMIT after the checksum, then the swap` };
    }
    case c.id.startsWith('restore-drill'): {
      const stock = find(results, c.id.replace('restore-drill', 'restore-stock'));
      return { ratio: ok(stock) ? `${fmt(c.median / stock.median)}x stock` : '', notes: 'the same restore into a scratch database, then count(*) per table and the catalog counts, then DROP' };
    }
    case c.id.startsWith('api-'):
      return { ratio: '', notes: `p50 ${fmt(median(numbers(c.extra.p50Ms)), 1)} ms, p99 ${fmt(median(numbers(c.extra.p99Ms)), 1)} ms, errors ${String(c.extra.errors)}` };
    default:
      return { ratio: '', notes: '' };
  }
}

/**
 * `a` against `b` (a.median / b.median <= bound, or >= for 'at least'); a failed case is a miss
 * with its reason; nothing when `a` was not in this run.
 */
function ratioCheck(target: string, a: CaseResult | undefined, b: CaseResult | undefined, bound: number, opts: { atLeast?: boolean; info?: boolean; asChange?: boolean } = {}): TargetCheck[] {
  if (!a) return [];
  const met = (ratioValue: number): boolean | null => (opts.info ? null : opts.atLeast ? ratioValue >= bound : ratioValue <= bound);
  for (const c of [a, b]) {
    const error = errorOf(c);
    if (c && error !== null) return [{ target, measured: `not measured: ${c.label} FAILED (${error})`, met: opts.info ? null : false }];
  }
  if (!b) return [{ target, measured: 'not measured: the reference case was not in this run', met: null }];
  const r = a.median / b.median;
  const shown = opts.asChange ? pct(r) : opts.atLeast ? `${fmt(r * 100, 0)}%` : `${fmt(r)}x`;
  return [{ target, measured: `${shown} (${fmt(a.median)} vs ${fmt(b.median)} ${a.unit})`, met: met(r) }];
}

/** Output size against gzip -6's: no larger than `bound` times it. */
function sizeCheck(target: string, c: CaseResult | undefined, gzipBytes: number | null, bound: number): TargetCheck[] {
  if (!c) return [];
  const error = errorOf(c);
  if (error !== null) return [{ target, measured: `not measured: ${c.label} FAILED (${error})`, met: false }];
  if (!gzipBytes) return [{ target, measured: 'not measured: no gzip -6 baseline in this run', met: null }];
  const r = Number(c.extra.sizeBytes) / gzipBytes;
  return [{ target, measured: `${pct(r)} (${mb(Number(c.extra.sizeBytes))} vs ${mb(gzipBytes)})`, met: r <= bound }];
}

/** The issue's targets, checked against this run's medians (met null: information, no target). */
export function checkTargets(results: BenchResults): TargetCheck[] {
  const c = (id: string): CaseResult | undefined => find(results, id);
  const gzipBytes = results.dataset.main.gzip6Bytes;
  const cores = results.machine.cpus;
  const checks: TargetCheck[] = [
    ...ratioCheck(`zstd backup (local) within 1.15x of \`pg_dump | zstd -3 -T${cores}\``, c('service-local-zstd'), c('zstd3'), 1.15),
    ...ratioCheck('zstd backup (local) <= 1.5x `pg_dump > /dev/null`', c('service-local-zstd'), c('limit'), 1.5),
    ...sizeCheck("zstd backup (local) output no larger than gzip -6's", c('service-local-zstd'), gzipBytes, 1),
    ...ratioCheck(`(zstd backup to the S3 emulator against \`pg_dump | zstd -3 -T${cores}\`)`, c('service-s3-zstd'), c('zstd3'), 1.15, { info: true }),
    ...ratioCheck(`gzip backup (default level, local) <= 1.10x \`pg_dump | pigz -6 -p ${cores}\``, c(DEFAULT_SERVICE_CASE), c('pigz6'), 1.1),
    ...sizeCheck('gzip backup (default level) output <= +1% of gzip -6', c(DEFAULT_SERVICE_CASE), gzipBytes, 1.01),
    ...ratioCheck(`(gzip backup to the S3 emulator against pigz)`, c('service-s3-gzip'), c('pigz6'), 1.1, { info: true }),
    ...ratioCheck('gzip level 1 backup (local) never slower than `pg_dump -Z1 -f`', c('service-local-gzip1'), c('pgdump-z1'), 1),
    ...ratioCheck('(gzip level 1 backup to the S3 emulator against `pg_dump -Z1 -f`)', c('service-s3-gzip1'), c('pgdump-z1'), 1, { info: true }),
    ...ratioCheck('(default backup against `pg_dump -Fc -f` + cp, postgres-backup-s3 to local storage)', c(DEFAULT_SERVICE_CASE), c('pgdump-fc-cp'), 1, { info: true }),
    ...ratioCheck('(S3 backup against `pg_dump -Fc -f` + `aws s3 cp`, postgres-backup-s3)', c('service-s3-gzip'), c('pgdump-fc-s3'), 1, { info: true }),
  ];
  const svc = c(DEFAULT_SERVICE_CASE);
  const pigz = c('pigz6');
  if (ok(svc) && ok(pigz)) {
    const cpu = median(numbers(svc.extra.cpuSeconds)) / median(numbers(pigz.extra.cpuSeconds));
    checks.push({ target: '(CPU seconds of the default backup, service + pg_dump, against pg_dump + pigz)', measured: `${fmt(cpu)}x`, met: null });
  }
  const manifest = c('manifest-counter');
  if (ok(manifest) && ok(svc)) {
    const share = manifest.median / svc.median;
    checks.push({ target: "contents manifest's cost < 3% of the backup's time (default, local)", measured: `${fmt(share * 100, 1)}% (${fmt(manifest.median)} s of ${fmt(svc.median)} s)`, met: share < 0.03 });
  }
  checks.push(...encryptionChecks(results));
  // Peak RSS: every service case of the rss section, both sizes (the age cases among them).
  const serviceIds = [...new Set(results.cases.filter(isRss).map((x) => String(x.extra.serviceCase)))];
  for (const id of serviceIds) {
    const of = (size: string) => results.cases.find((x) => isRss(x) && x.extra.serviceCase === id && x.extra.size === size);
    const small = of('small');
    const large = of('large');
    const label = String(small?.extra.serviceLabel ?? large?.extra.serviceLabel ?? id);
    const failed = [small, large].find((x) => x && errorOf(x) !== null);
    if (failed) {
      checks.push({ target: `peak RSS <= 150 MB and flat (±10%): ${label}`, measured: `not measured: ${errorOf(failed)}`, met: false });
      continue;
    }
    if (!small || !large) continue;
    const peak = Math.max(...small.samples, ...large.samples);
    const r = large.median / small.median;
    checks.push({ target: `peak RSS <= 150 MB: ${label}`, measured: `${fmt(peak, 0)} MB (max of all runs, both sizes)`, met: peak <= 150 });
    checks.push({ target: `peak RSS flat (±10%) between the two dump sizes: ${label}`, measured: `${fmt(r)}x (${fmt(small.median, 0)} / ${fmt(large.median, 0)} MB)`, met: Math.abs(r - 1) <= 0.1 });
  }
  const http = c('download-http');
  checks.push(...ratioCheck('downloads >= 50% of `curl file://` of the same cached file', http, c('download-curl-file'), 0.5, { atLeast: true }));
  // Rates: "within 1.2x of GetObject's time" is at least 1 / 1.2 of its rate.
  checks.push(...ratioCheck('S3 downloads within 1.2x of a direct GetObject of the same object (>= 83% of its rate)', c('download-s3-http'), c('download-s3-direct'), 1 / 1.2, { atLeast: true }));
  checks.push(...ratioCheck('(downloads against `cat > /dev/null`)', http, c('download-direct'), 1, { info: true }));
  checks.push(...ratioCheck('(downloads against a bare node http server)', http, c('download-plain-node'), 1, { info: true }));
  for (const [id, limit, what] of [
    ['api-health', 10, '/health p99 < 10 ms'],
    ['api-list', 25, 'list of 1,000 backups p99 < 25 ms'],
  ] as const) {
    for (const mode of ['saturated', 'light'] as const) {
      const x = c(`${id}-${mode}`);
      if (!ok(x)) continue;
      const p99 = median(numbers(x.extra.p99Ms));
      const conns = Number(x.extra.connections);
      checks.push({
        target: mode === 'saturated' ? `${what} (${conns} connections, flat out)` : `(same at ${conns} connections, flat out)`,
        measured: `${fmt(p99, 1)} ms at ${fmt(x.median, 0)} req/s${mode === 'saturated' ? ` (Little's law: ${conns} / throughput = ${fmt((conns / x.median) * 1000, 1)} ms)` : ''}`,
        met: mode === 'saturated' ? p99 < limit : null,
      });
    }
  }
  return checks;
}

/**
 * Issue 15: each age case against its plain twin (`<twin>-age`), same run: wall time (the job's
 * durationMs medians) within 5%; CPU seconds and peak RSS beside it as information (the 150 MB
 * bound on the age cases' peak RSS is checked with every case's below).
 */
function encryptionChecks(results: BenchResults): TargetCheck[] {
  const checks: TargetCheck[] = [];
  for (const age of results.cases.filter((x) => x.extra.kind === 'service' && x.extra.encrypted === true)) {
    const plain = find(results, age.id.replace(/-age$/, ''));
    checks.push(...ratioCheck(`encryption costs <= 5% of backup time: ${age.label} against without age`, age, plain, 1.05, { asChange: true }));
    if (ok(age) && ok(plain)) {
      const [a, b] = [median(numbers(age.extra.cpuSeconds)), median(numbers(plain.extra.cpuSeconds))];
      checks.push({ target: `(CPU seconds with age against without: ${age.label})`, measured: `${pct(a / b)} (${fmt(a, 1)} vs ${fmt(b, 1)} s)`, met: null });
    }
    const peakOf = (id: string): number => Math.max(...results.cases.filter((x) => isRss(x) && x.extra.serviceCase === id && ok(x)).flatMap((x) => x.samples));
    const [agePeak, plainPeak] = [peakOf(age.id), peakOf(age.id.replace(/-age$/, ''))];
    if (Number.isFinite(agePeak) && Number.isFinite(plainPeak)) {
      checks.push({ target: `(peak RSS with age against without: ${age.label})`, measured: `${fmt(agePeak, 0)} vs ${fmt(plainPeak, 0)} MB (max of all runs, both sizes)`, met: null });
    }
  }
  return checks;
}

const OTHER_HEADER = ['Case', 'Median', 'Range', 'Ratio', 'Notes'];

function otherRows(results: BenchResults): string[][] {
  return results.cases
    .filter((c) => !isBackup(c))
    .map((c) => {
      const { ratio, notes } = describe(results, c);
      const digits = c.unit === 's' ? 2 : 0;
      return [c.label, errorOf(c) !== null ? 'FAILED' : `${fmt(c.median, digits)} ${c.unit}`, `${fmt(c.min, digits)}–${fmt(c.max, digits)}`, ratio, notes];
    });
}

const backupRows = (results: BenchResults): string[][] => results.cases.filter(isBackup).map((c) => backupRow(results, c));
const metCell = (t: TargetCheck): string => (t.met === null ? '(info)' : t.met ? 'met' : 'MISSED');

function textTable(header: string[], body: string[][]): string[] {
  const all = [header, ...body];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(' | ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...body.map(line)];
}

export function renderTable(results: BenchResults): string {
  const out: string[] = [];
  const backups = backupRows(results);
  if (backups.length > 0) out.push('Backups:', ...textTable(BACKUP_HEADER, backups), '');
  const others = otherRows(results);
  if (others.length > 0) out.push(...textTable(OTHER_HEADER, others), '');
  const targets = checkTargets(results);
  if (targets.length > 0) {
    out.push('Targets:');
    for (const t of targets) out.push(`  [${metCell(t).padStart(6)}] ${t.target}: ${t.measured}`);
  }
  return out.join('\n');
}

export function renderMarkdown(results: BenchResults): string {
  const m = results.machine;
  const v = results.versions;
  const d = results.dataset;
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const load = (l: [number, number, number]) => l.map((x) => x.toFixed(2)).join(' / ');
  const table = (header: string[], body: string[][]): string[] => [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...body.map((r) => `| ${r.map(esc).join(' | ')} |`)];
  const backups = backupRows(results);
  const others = otherRows(results);
  const lines = [
    `# Benchmark results (${results.options.quick ? 'quick run' : results.options.sections.length < 6 ? `sections: ${results.options.sections.join(', ')}` : 'full run'}, ${Math.round(results.options.sizeMB)} MB target)`,
    '',
    `- Date: ${results.date}`,
    `- Machine: ${m.cpus} × ${m.cpuModel}; load average (1/5/15 min) ${load(m.loadBefore)} before, ${load(m.loadAfter)} after` +
      (Object.keys(m.loadBySection).length > 0 ? `; at the start of each section: ${Object.entries(m.loadBySection).map(([k, l]) => `${k} ${l[0].toFixed(1)}`).join(', ')}` : ''),
    `- Versions: Node ${v.node}; ${v.pgDump}; server ${v.postgresServer}; ${v.gzip}; ${v.pigz ?? 'pigz not installed'}; ${v.zstd ?? 'zstd not installed'}; ${v.aws ?? 'aws CLI not installed'}; ${v.curl?.split(' ').slice(0, 2).join(' ')}; ${v.age ? `age ${v.age}` : 'age not installed'}`,
    `- Data: plain dump ${mb(d.main.plainBytes)}${d.main.gzip6Bytes ? `, gzip -6 ${mb(d.main.gzip6Bytes)} (${fmt(d.main.plainBytes / d.main.gzip6Bytes)}x compressible)` : ''}, generated in ${fmt(d.main.generateSeconds, 0)} s` +
      `${d.rssSmall && d.rssLarge ? `; memory cases at ${mb(d.rssSmall.plainBytes)} and ${mb(d.rssLarge.plainBytes)}` : ''}`,
    `- ${results.options.runs} runs per case, medians; all backup cases interleaved run by run. Service threads: ${m.cpus} (default: CPU count).`,
    '- Wall: shell pipelines from spawn to exit; the service, its job\'s durationMs (pg_dump start to verified and listed). ' +
      "CPU s: user + system of every process of the pipeline (bash `times`), or of the service (all threads) plus pg_dump (its reaped child). " +
      'PG server CPU s: the PostgreSQL cluster over the same interval (postmaster, its live and reaped children). Peak RSS: VmHWM of a fresh service per backup (rss section), medians.',
    '',
    ...(backups.length > 0 ? ['## Backups', '', ...table(BACKUP_HEADER, backups), ''] : []),
    ...(others.length > 0 ? ['## Other cases', '', ...table(OTHER_HEADER, others), ''] : []),
    '## Targets',
    '',
    '| Target | Measured | Met |',
    '|---|---|---|',
    ...checkTargets(results).map((t) => `| ${esc(t.target)} | ${esc(t.measured)} | ${metCell(t)} |`),
    '',
  ];
  return `${lines.join('\n')}\n`;
}

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

/** Ratio and notes column of one case, relative to the baselines of the same run. */
function describe(results: BenchResults, c: CaseResult): { ratio: string; notes: string } {
  const gzip = find(results, 'gzip6');
  const pigz = find(results, 'pigz6');
  const plain = results.dataset.main.plainBytes;
  const gzipBytes = results.dataset.main.gzip6Bytes;
  const cpu = median(numbers(c.extra.cpuSeconds));
  const pigzCpu = pigz ? median(numbers(pigz.extra.cpuSeconds)) : Number.NaN;
  const cpuNote = Number.isFinite(cpu) ? `CPU ${fmt(cpu, 1)} s${c.id !== 'pigz6' && Number.isFinite(pigzCpu) ? ` (${fmt(cpu / pigzCpu)}x pigz)` : ''}` : '';
  switch (true) {
    case c.id === 'limit':
      return { ratio: gzip ? `${fmt(c.median / gzip.median)}x gzip` : '', notes: `${mb(plain)} plain, ${fmt(plain / 1e6 / c.median, 0)} MB/s; ${cpuNote}` };
    case c.id === 'gzip6':
      return { ratio: '1.00x gzip', notes: `${mb(Number(c.extra.sizeBytes))}, ${fmt(plain / Number(c.extra.sizeBytes))}x smaller than plain; ${cpuNote}` };
    case c.id === 'pigz6':
      return {
        ratio: gzip ? `${fmt(c.median / gzip.median)}x gzip` : '',
        notes: `${gzipBytes ? `size ${pct(Number(c.extra.sizeBytes) / gzipBytes)} vs gzip -6; ` : ''}${cpuNote}`,
      };
    case c.id.startsWith('service-'): {
      const size = Number(c.extra.sizeBytes);
      const ratios = [gzip ? `${fmt(c.median / gzip.median)}x gzip` : '', pigz ? `${fmt(c.median / pigz.median)}x pigz` : ''].filter((s) => s !== '');
      const pipeline = median(numbers(c.extra.pipelineSeconds));
      const verify = median(numbers(c.extra.verifySeconds));
      const rss = typeof c.extra.peakRssBytes === 'number' ? `, peak RSS ${mb(c.extra.peakRssBytes)}` : '';
      return {
        ratio: ratios.join(', '),
        notes:
          `wall ${fmt(median(numbers(c.extra.wallSeconds)))} s = dump→stored ${fmt(pipeline)} s` +
          `${gzip ? ` (${fmt(pipeline / gzip.median)}x gzip)` : ''} + verify ${fmt(verify)} s; ` +
          `${mb(size)}${gzipBytes ? ` (${pct(size / gzipBytes)} vs gzip -6)` : ''}${rss}; ${cpuNote} incl. pg_dump`,
      };
    }
    case c.id === 'manifest-counter': {
      const svc = find(results, 'service-local-l6');
      return {
        ratio: svc ? `${fmt((c.median / svc.median) * 100, 1)}% of backup` : '',
        notes: `${fmt(Number(c.extra.plainBytes) / 1e6 / c.median, 0)} MB/s of plain dump, on the main thread during pg_dump`,
      };
    }
    case c.id === 'rss-large': {
      const small = find(results, 'rss-small');
      return { ratio: small ? `${fmt(c.median / small.median)}x small` : '', notes: `max polled VmRSS ${fmt(Math.max(...numbers(c.extra.maxPolledRssMB)), 0)} MB` };
    }
    case c.id === 'rss-small':
      return { ratio: '', notes: `max polled VmRSS ${fmt(Math.max(...numbers(c.extra.maxPolledRssMB)), 0)} MB` };
    case c.id === 'download-http': {
      const direct = find(results, 'download-direct');
      const plainNode = find(results, 'download-plain-node');
      const curlFile = find(results, 'download-curl-file');
      return {
        ratio: direct ? `${fmt(c.median / direct.median)}x cat` : '',
        notes: `${mb(Number(c.extra.sizeBytes))} backup${curlFile ? `; ${fmt(c.median / curlFile.median)}x curl file://` : ''}${plainNode ? `; ${fmt(c.median / plainNode.median)}x bare node server` : ''}`,
      };
    }
    case c.id === 'restore-cli': {
      const stock = find(results, 'restore-stock');
      return { ratio: stock ? `${fmt(c.median / stock.median)}x stock` : '', notes: 'one pass: sha256 + gunzip into psql, COMMIT after the checksum, then the swap' };
    }
    case c.id === 'restore-drill': {
      const stock = find(results, 'restore-stock');
      return { ratio: stock ? `${fmt(c.median / stock.median)}x stock` : '', notes: 'the same restore into a scratch database, then count(*) per table and the catalog counts, then DROP' };
    }
    case c.id.startsWith('api-'):
      return { ratio: '', notes: `p50 ${fmt(median(numbers(c.extra.p50Ms)), 1)} ms, p99 ${fmt(median(numbers(c.extra.p99Ms)), 1)} ms, errors ${String(c.extra.errors)}` };
    default:
      return { ratio: '', notes: '' };
  }
}

/** The issue's targets, checked against this run's medians (null: not measured in this run). */
export function checkTargets(results: BenchResults): TargetCheck[] {
  const gzip = find(results, 'gzip6');
  const pigz = find(results, 'pigz6');
  const svc = find(results, 'service-local-l6');
  const svcS3 = find(results, 'service-s3-l6');
  const small = find(results, 'rss-small');
  const large = find(results, 'rss-large');
  const http = find(results, 'download-http');
  const direct = find(results, 'download-direct');
  const checks: TargetCheck[] = [];
  const gzipBytes = results.dataset.main.gzip6Bytes;
  if (gzip && svc) {
    const r = svc.median / gzip.median;
    checks.push({ target: 'backup (default, local) <= 0.75x `pg_dump | gzip -6` wall time', measured: `${fmt(r)}x (job ${fmt(svc.median)} s vs ${fmt(gzip.median)} s)`, met: r <= 0.75 });
    const p = median(numbers(svc.extra.pipelineSeconds)) / gzip.median;
    checks.push({ target: '(same, dump→stored only, without the read-back verification)', measured: `${fmt(p)}x`, met: null });
  }
  if (gzip && svcS3) {
    const r = svcS3.median / gzip.median;
    checks.push({ target: 'backup (default, S3 emulator) <= 0.75x `pg_dump | gzip -6`', measured: `${fmt(r)}x`, met: r <= 0.75 });
  }
  if (gzipBytes && svc) {
    const r = Number(svc.extra.sizeBytes) / gzipBytes;
    // The point of the target is the ratio: smaller than gzip -6 is better, not a miss.
    checks.push({ target: 'output within 1% of gzip -6 size (no more than 1% larger)', measured: pct(r), met: r <= 1.01 });
  }
  if (pigz && svc) {
    const r = svc.median / pigz.median;
    checks.push({ target: `backup within 10% of \`pg_dump | pigz -6 -p ${results.machine.cpus}\` (wall time)`, measured: `${fmt(r)}x`, met: r <= 1.1 });
    const pipeline = median(numbers(svc.extra.pipelineSeconds)) / pigz.median;
    checks.push({ target: '(same, dump→stored only)', measured: `${fmt(pipeline)}x`, met: null });
    const cpu = median(numbers(svc.extra.cpuSeconds)) / median(numbers(pigz.extra.cpuSeconds));
    checks.push({ target: '(same, CPU seconds of service + pg_dump vs pg_dump + pigz)', measured: `${fmt(cpu)}x`, met: null });
  }
  const manifest = find(results, 'manifest-counter');
  if (manifest && svc) {
    const share = manifest.median / svc.median;
    checks.push({ target: "contents manifest's cost < 3% of the backup's time (default, local)", measured: `${fmt(share * 100, 1)}% (${fmt(manifest.median)} s of ${fmt(svc.median)} s)`, met: share < 0.03 });
  }
  if (small && large) {
    const peak = Math.max(...small.samples, ...large.samples);
    checks.push({ target: 'peak service RSS during backup <= 150 MB', measured: `${fmt(peak, 0)} MB (max of all runs)`, met: peak <= 150 });
    const r = large.median / small.median;
    checks.push({ target: 'peak RSS flat (±10%) between the two dump sizes', measured: `${fmt(r)}x`, met: Math.abs(r - 1) <= 0.1 });
  }
  if (http && direct) {
    const r = http.median / direct.median;
    checks.push({ target: 'downloads >= 80% of direct file read throughput (`cat > /dev/null`)', measured: `${fmt(r * 100, 0)}%`, met: r >= 0.8 });
    for (const [id, what] of [['download-curl-file', 'curl file://'], ['download-plain-node', 'a bare node http server']] as const) {
      const ref = find(results, id);
      if (ref) checks.push({ target: `(same, against ${what})`, measured: `${fmt((http.median / ref.median) * 100, 0)}%`, met: null });
    }
  }
  for (const [id, limit, what] of [
    ['api-health', 10, '/health p99 < 10 ms'],
    ['api-list', 25, 'list of 1,000 backups p99 < 25 ms'],
  ] as const) {
    for (const mode of ['saturated', 'light'] as const) {
      const c = find(results, `${id}-${mode}`);
      if (!c) continue;
      const p99 = median(numbers(c.extra.p99Ms));
      const conns = Number(c.extra.connections);
      checks.push({
        target: mode === 'saturated' ? `${what} (${conns} connections, flat out)` : `(same at ${conns} connections, flat out)`,
        measured: `${fmt(p99, 1)} ms at ${fmt(c.median, 0)} req/s${mode === 'saturated' ? ` (Little's law: ${conns} / throughput = ${fmt((conns / c.median) * 1000, 1)} ms)` : ''}`,
        met: mode === 'saturated' ? p99 < limit : null,
      });
    }
  }
  return checks;
}

function rows(results: BenchResults): string[][] {
  return results.cases.map((c) => {
    const { ratio, notes } = describe(results, c);
    const digits = c.unit === 's' ? 2 : c.unit === 'MB' ? 0 : 0;
    return [c.label, `${fmt(c.median, digits)} ${c.unit}`, `${fmt(c.min, digits)}–${fmt(c.max, digits)}`, ratio, notes];
  });
}

const HEADER = ['Case', 'Median', 'Range', 'Ratio', 'Notes'];

export function renderTable(results: BenchResults): string {
  const all = [HEADER, ...rows(results)];
  const widths = HEADER.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(' | ').trimEnd();
  const out = [line(all[0]!), widths.map((w) => '-'.repeat(w)).join('-|-'), ...all.slice(1).map(line)];
  const targets = checkTargets(results);
  if (targets.length > 0) {
    out.push('', 'Targets:');
    for (const t of targets) out.push(`  [${t.met === null ? ' info ' : t.met ? '  met ' : 'missed'}] ${t.target}: ${t.measured}`);
  }
  return out.join('\n');
}

export function renderMarkdown(results: BenchResults): string {
  const m = results.machine;
  const v = results.versions;
  const d = results.dataset;
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const load = (l: [number, number, number]) => l.map((x) => x.toFixed(2)).join(' / ');
  const lines = [
    `# Benchmark results (${results.options.quick ? 'quick run' : results.options.sections.length < 6 ? `sections: ${results.options.sections.join(', ')}` : 'full run'}, ${Math.round(results.options.sizeMB)} MB target)`,
    '',
    `- Date: ${results.date}`,
    `- Machine: ${m.cpus} × ${m.cpuModel}; load average (1/5/15 min) ${load(m.loadBefore)} before, ${load(m.loadAfter)} after` +
      (Object.keys(m.loadBySection).length > 0 ? `; at the start of each section: ${Object.entries(m.loadBySection).map(([k, l]) => `${k} ${l[0].toFixed(1)}`).join(', ')}` : ''),
    `- Versions: Node ${v.node}; ${v.pgDump}; server ${v.postgresServer}; ${v.gzip}; ${v.pigz ?? 'pigz not installed'}; ${v.curl?.split(' ').slice(0, 2).join(' ')}`,
    `- Data: plain dump ${mb(d.main.plainBytes)}${d.main.gzip6Bytes ? `, gzip -6 ${mb(d.main.gzip6Bytes)} (${fmt(d.main.plainBytes / d.main.gzip6Bytes)}x compressible)` : ''}, generated in ${fmt(d.main.generateSeconds, 0)} s` +
      `${d.rssSmall && d.rssLarge ? `; memory cases at ${mb(d.rssSmall.plainBytes)} and ${mb(d.rssLarge.plainBytes)}` : ''}`,
    `- ${results.options.runs} runs per case, medians; service and baseline runs interleaved. Service threads: ${m.cpus} (default: CPU count).`,
    '',
    `| ${HEADER.join(' | ')} |`,
    `|${HEADER.map(() => '---').join('|')}|`,
    ...rows(results).map((r) => `| ${r.map(esc).join(' | ')} |`),
    '',
    '## Targets',
    '',
    '| Target | Measured | Met |',
    '|---|---|---|',
    ...checkTargets(results).map((t) => `| ${esc(t.target)} | ${esc(t.measured)} | ${t.met === null ? '(info)' : t.met ? 'yes' : 'no'} |`),
    '',
  ];
  return `${lines.join('\n')}\n`;
}

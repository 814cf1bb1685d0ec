// Reads /proc (Linux): a process's memory and open descriptors, its children, and every process's
// command line, sampled periodically while backups and restores run (invariant 6: argv is
// world-readable, so no secret may ever be in one).
import { readdir, readFile, readlink } from 'node:fs/promises';
import { basename } from 'node:path';
import type { SecretWatch } from './secrets.js';

export interface ProcessStats {
  readonly rssKb: number;
  readonly fds: number;
}

/** VmRSS from /proc/<pid>/status and the number of entries in /proc/<pid>/fd. */
export async function processStats(pid: number): Promise<ProcessStats> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!rss?.[1]) throw new Error(`no VmRSS in /proc/${pid}/status`);
  const fds = (await readdir(`/proc/${pid}/fd`)).length;
  return { rssKb: Number(rss[1]), fds };
}

/** What each of a process's descriptors points at (socket:[..], pipe:[..], a path), for leak reports. */
export async function describeFds(pid: number): Promise<Record<string, number>> {
  const kinds: Record<string, number> = {};
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [])) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => 'gone');
    const kind = target.replace(/\[\d+\]$/, '').replace(/^\/.*\/(\.tmp-)?[^/]*$/, (_m, tmp: string | undefined) => (tmp ? 'temp file' : 'file'));
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  return kinds;
}

export interface ProcInfo {
  readonly pid: number;
  readonly ppid: number;
  /** argv[0]'s base name (the real program name, not the 15-character comm). */
  readonly name: string;
  readonly argv: string[];
}

async function readProc(pid: number): Promise<ProcInfo | null> {
  try {
    const [stat, cmdline] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8'), readFile(`/proc/${pid}/cmdline`)]);
    // "pid (comm) state ppid ...": comm may contain spaces and parentheses; split after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const argv = cmdline.toString('utf8').split('\0');
    if (argv.at(-1) === '') argv.pop();
    return { pid, ppid, name: basename(argv[0] ?? ''), argv };
  } catch {
    return null; // exited meanwhile, or a kernel thread
  }
}

/** Every process currently visible in /proc. */
export async function listProcesses(): Promise<ProcInfo[]> {
  const pids = (await readdir('/proc')).filter((d) => /^\d+$/.test(d)).map(Number);
  return (await Promise.all(pids.map(readProc))).filter((p): p is ProcInfo => p !== null);
}

/**
 * Processes whose parent is `ppid` and whose program is `name` (e.g. the service's pg_dump).
 * Reads /proc/<ppid>/task/<ppid>/children (Node spawns from its main thread), which is cheap
 * enough to poll every few ms; scans all of /proc where the kernel lacks that file.
 */
export async function childrenNamed(ppid: number, name: string): Promise<ProcInfo[]> {
  let pids: number[];
  try {
    pids = (await readFile(`/proc/${ppid}/task/${ppid}/children`, 'utf8')).split(' ').filter((p) => p !== '').map(Number);
  } catch {
    return (await listProcesses()).filter((p) => p.ppid === ppid && p.name === name);
  }
  return (await Promise.all(pids.map(readProc))).filter((p): p is ProcInfo => p !== null && p.name === name);
}

/**
 * Stats once the process is idle: sampled every second until the descriptor count has not changed
 * for `stableMs` (longer than the service's 5 s keep-alive timeout, so idle client sockets have
 * closed) and RSS moved less than 2% meanwhile; at most `maxMs`.
 */
export async function settledStats(pid: number, maxMs = 30_000, stableMs = 6_000): Promise<ProcessStats> {
  const deadline = Date.now() + maxMs;
  let since = await processStats(pid);
  let sinceAt = Date.now();
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const current = await processStats(pid);
    if (current.fds !== since.fds || Math.abs(current.rssKb - since.rssKb) > since.rssKb * 0.02) {
      since = current;
      sinceAt = Date.now();
    } else if (Date.now() - sinceAt >= stableMs) {
      return current;
    }
    if (Date.now() >= deadline) return current;
  }
}

/**
 * Samples the command line of every process on the machine every `intervalMs` and feeds it to
 * `watch`, counting how often processes named in `track` (pg_dump, psql) were caught: a scan that
 * never saw pg_dump running proves nothing, so tests assert on these counts. For tracked processes
 * it also scans /proc/<pid>/environ for `forbiddenInEnv` (secrets the child has no business with:
 * pg_dump needs the database password, never the API token or the AWS secret).
 */
export class CmdlineSampler {
  readonly seen = new Map<string, { samples: number; pids: Set<number> }>();
  #samples = 0;
  #cmdlines = 0;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  readonly #forbiddenEnvWatch: SecretWatch | null;

  constructor(
    private readonly watch: SecretWatch,
    private readonly track: readonly string[] = ['pg_dump', 'psql'],
    forbiddenInEnv: SecretWatch | null = null,
  ) {
    this.#forbiddenEnvWatch = forbiddenInEnv;
    for (const name of track) this.seen.set(name, { samples: 0, pids: new Set() });
  }

  start(intervalMs = 25): this {
    if (this.#timer) return this;
    const tick = (): void => {
      this.#running = this.sampleOnce().finally(() => {
        this.#running = null;
        if (this.#timer) this.#timer = setTimeout(tick, intervalMs);
      });
    };
    this.#timer = setTimeout(tick, 0);
    return this;
  }

  async stop(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  async sampleOnce(): Promise<void> {
    this.#samples++;
    for (const p of await listProcesses()) {
      this.#cmdlines++;
      this.watch.scan(`/proc/${p.pid}/cmdline (${p.name})`, p.argv.join(' '));
      const tracked = this.seen.get(p.name);
      if (!tracked) continue;
      tracked.samples++;
      if (!tracked.pids.has(p.pid)) {
        tracked.pids.add(p.pid);
        if (this.#forbiddenEnvWatch) {
          const environ = await readFile(`/proc/${p.pid}/environ`).catch(() => null);
          if (environ) this.#forbiddenEnvWatch.scan(`/proc/${p.pid}/environ (${p.name})`, environ.toString('utf8').split('\0').join('\n'));
        }
      }
    }
  }

  get samples(): number {
    return this.#samples;
  }

  get cmdlinesScanned(): number {
    return this.#cmdlines;
  }

  /** Distinct processes of `name` caught running. */
  distinct(name: string): number {
    return this.seen.get(name)?.pids.size ?? 0;
  }
}

/**
 * Resident anonymous memory grouped by mapping kind, in MB, for leak reports: "[heap]" (glibc's
 * main arena), "arena?" (64 MB-sized reservations: glibc's per-thread malloc arenas), "stack",
 * and "other anon" (V8's heap pages, thread stacks, everything else).
 */
export async function anonymousMemory(pid: number): Promise<Record<string, number>> {
  const smaps = await readFile(`/proc/${pid}/smaps`, 'utf8').catch(() => '');
  const out: Record<string, number> = {};
  let kind = '';
  for (const line of smaps.split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (header) {
      const size = (parseInt(header[2]!, 16) - parseInt(header[1]!, 16)) / 1024 / 1024;
      const name = header[5] ?? '';
      kind = name === '[heap]' ? '[heap]' : name.startsWith('[stack') ? 'stack' : name !== '' ? '' : size >= 63 && size <= 65 ? 'arena?' : 'other anon';
      continue;
    }
    const anon = /^Anonymous:\s+(\d+) kB/.exec(line);
    if (anon && kind) out[kind] = Math.round(((out[kind] ?? 0) + Number(anon[1]) / 1024) * 10) / 10;
  }
  return out;
}

// Small measuring tools for the benchmark: timed shell pipelines, /proc memory readings, medians.
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';

export interface ShellResult {
  readonly ms: number;
  /** CPU seconds (user + system) of every process the script ran, from bash's `times`. */
  readonly cpuSeconds: number;
  readonly stdout: string;
}

/**
 * Runs `script` with bash (pipefail: a failing pg_dump fails the pipeline) and times it from spawn
 * to exit. `args` become $1, $2, ... so paths never need quoting inside the script.
 */
export async function timeShell(script: string, opts: { env?: Record<string, string>; args?: string[] } = {}): Promise<ShellResult> {
  const started = performance.now();
  // `times` reports the CPU of the shell's finished children on fd 3, apart from the output.
  const wrapped = `${script}\n__rc=$?\ntimes >&3\nexit $__rc`;
  const child = spawn('bash', ['-o', 'pipefail', '-c', wrapped, 'bench', ...(opts.args ?? [])], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let times = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
  (child.stdio[3] as NodeJS.ReadableStream).on('data', (b: Buffer) => (times += b.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const ms = performance.now() - started;
  if (code !== 0) throw new Error(`bench: \`${script}\` exited ${code}: ${stderr.trim()}`);
  // Second line: children's user and system time, e.g. "0m5.123s 0m0.456s".
  const seconds = (times.split('\n')[1] ?? '').match(/(\d+)m([\d.]+)s/g) ?? [];
  const cpuSeconds = seconds.reduce((sum, t) => {
    const m = /(\d+)m([\d.]+)s/.exec(t)!;
    return sum + Number(m[1]) * 60 + Number(m[2]);
  }, 0);
  return { ms, cpuSeconds, stdout };
}

/** CPU seconds (user + system) of a process from /proc/<pid>/stat: its own (all threads) and its waited-for children's. */
export interface ProcCpu {
  readonly self: number;
  readonly children: number;
}

async function procStatFields(pid: number): Promise<string[]> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces); index 0 is proc(5)'s field 3 (state).
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** utime + stime (fields 14-15) and cutime + cstime (16-17) of `pid`. */
export async function procCpu(pid: number): Promise<ProcCpu> {
  const f = await procStatFields(pid);
  return { self: (Number(f[11]) + Number(f[12])) / CLOCK_TICKS, children: (Number(f[13]) + Number(f[14])) / CLOCK_TICKS };
}

/**
 * CPU seconds used so far by `pid` (all its threads) plus its waited-for children (pg_dump, once
 * reaped): user + system, from /proc/<pid>/stat.
 */
export async function procCpuSeconds(pid: number): Promise<number> {
  const { self, children } = await procCpu(pid);
  return self + children;
}

export interface ClusterCpu {
  readonly seconds: number;
  /** Live child processes of the postmaster (background processes and connected backends). */
  readonly processes: number;
}

/**
 * CPU seconds used so far by a PostgreSQL cluster: the postmaster's own and its reaped children's
 * (backends that have exited, such as pg_dump's), plus every live child's own (checkpointer,
 * backends still connected). The difference over a case is what the server spent on it, background
 * processes included. A backend exiting during the reading could be missed or counted twice: see
 * settledClusterCpu.
 */
export async function clusterCpu(dataDir: string): Promise<ClusterCpu> {
  const postmaster = Number((await readFile(`${dataDir}/postmaster.pid`, 'utf8')).split('\n')[0]);
  let seconds = 0;
  let processes = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = await procStatFields(Number(entry)).catch(() => null);
    // Field 4 (index 1) is the parent pid; a child that has exited since readdir is skipped.
    if (fields && Number(fields[1]) === postmaster) {
      seconds += (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
      processes++;
    }
  }
  const own = await procCpu(postmaster);
  return { seconds: seconds + own.self + own.children, processes };
}

/**
 * The reading after a case: once the postmaster has no more children than `before` had (the case's
 * backends have exited and been reaped, so their CPU is in the postmaster's cutime), or after 3 s
 * (a client that keeps a connection open, whose backend is then counted live).
 */
export async function settledClusterCpu(dataDir: string, before: ClusterCpu): Promise<ClusterCpu> {
  const deadline = performance.now() + 3000;
  for (;;) {
    const now = await clusterCpu(dataDir);
    if (now.processes <= before.processes || performance.now() > deadline) return now;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** USER_HZ: 100 on every Linux this runs on (sysconf(_SC_CLK_TCK) is not reachable from node). */
const CLOCK_TICKS = 100;

/** First line of `cmd --version`-like output, or null when the tool is missing. */
export async function toolVersion(script: string): Promise<string | null> {
  try {
    const { stdout } = await timeShell(`${script} 2>&1`);
    return stdout.split('\n').find((l) => l.trim() !== '')?.trim() ?? null;
  } catch {
    return null;
  }
}

export interface ProcMemory {
  /** Resident set now, bytes. */
  readonly rss: number;
  /** Peak resident set over the process's life ("high water mark"), bytes. */
  readonly hwm: number;
}

/** VmRSS and VmHWM of `pid` (threads included: worker threads share the process). */
export async function procMemory(pid: number): Promise<ProcMemory> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m?.[1]) throw new Error(`no ${field} in /proc/${pid}/status`);
    return Number(m[1]) * 1024;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Polls VmRSS every `intervalMs` until stopped; VmHWM catches peaks between two polls. */
export class RssSampler {
  readonly #pid: number;
  readonly #timer: NodeJS.Timeout;
  #max = 0;
  #samples = 0;

  constructor(pid: number, intervalMs = 100) {
    this.#pid = pid;
    this.#timer = setInterval(() => {
      procMemory(this.#pid).then(
        (m) => {
          this.#samples++;
          this.#max = Math.max(this.#max, m.rss);
        },
        () => undefined,
      );
    }, intervalMs);
  }

  /** Stops polling; returns the largest VmRSS seen and the final VmHWM. */
  async stop(): Promise<{ maxRss: number; hwm: number; samples: number }> {
    clearInterval(this.#timer);
    const { hwm } = await procMemory(this.#pid);
    return { maxRss: this.#max, hwm, samples: this.#samples };
  }
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The 1-, 5- and 15-minute load averages: other work on the machine skews every timing. */
export async function loadAverage(): Promise<[number, number, number]> {
  const [a = 0, b = 0, c = 0] = (await readFile('/proc/loadavg', 'utf8')).split(' ').map(Number);
  return [a, b, c];
}

export const MB = 1e6;
export const MiB = 1024 * 1024;

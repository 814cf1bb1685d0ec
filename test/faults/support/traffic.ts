// HTTP clients for the fault suite: every request is counted by route label and status, every
// non-download body is scanned for secrets and stack traces, and any status a route must never
// answer (above all a 5xx other than /health's documented 503) is recorded as a violation.
import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { STACK_TRACE, type SecretWatch } from './secrets.js';

/** Statuses each route label may answer under faults; anything else is a violation. */
export const ALLOWED_STATUSES: Readonly<Record<string, readonly number[]>> = {
  health: [200, 503],
  info: [200],
  metrics: [200],
  list: [200],
  latest: [200, 404],
  job: [200, 404],
  trigger: [202, 409],
  unauthenticated: [401],
  // 404: a backup deleted between listing and download; 416 is not provoked here; 503 (documented,
  // with Retry-After) only while storage is down, see Traffic's `storageDownDuring`.
  download: [200, 206, 404, 503],
};

export interface DownloadResult {
  readonly status: number | null;
  readonly bytes: number;
  /** The whole body arrived (Content-Length met). */
  readonly complete: boolean;
  /** Set when complete: the body's SHA-256 equals the ETag's. */
  readonly matchesEtag?: boolean;
}

export type DownloadMode = 'full' | 'slow' | 'abort';

/** Per-request deadline: every client call is bounded in time. */
const REQUEST_TIMEOUT_MS = 30_000;

export class Traffic {
  requests = 0;
  readonly byLabel = new Map<string, Map<string, number>>();
  readonly violations: string[] = [];
  readonly networkErrors = new Map<string, number>();
  readonly downloads = { complete: 0, verified: 0, slowComplete: 0, abortedByClient: 0, truncatedByServer: 0, bytes: 0 };

  readonly #latencies = new Map<string, number[]>();

  /**
   * `storageDownDuring(from, to)`: whether storage was (or had just been) unreachable at some time
   * between a request's start and its answer; a download may answer 503 then and only then.
   * Without it, a download's 503 is a violation.
   */
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
    private readonly watch: SecretWatch,
    private readonly opts: {
      storageDownDuring?: (from: number, to: number) => boolean;
      /**
       * When the first backup was listed (null: not yet). A 404 from `latest` or a download that
       * started after it means a listed backup went missing: a violation (nothing here deletes).
       */
      firstBackupListedAt?: () => number | null;
      allowed?: Readonly<Record<string, readonly number[]>>;
    } = {},
  ) {}

  #latency(label: string, startedAt: number): void {
    let list = this.#latencies.get(label);
    if (!list) this.#latencies.set(label, (list = []));
    list.push(Date.now() - startedAt);
  }

  /** p50/p95/max response time (to the headers) per label, in ms. */
  latencies(): string {
    return [...this.#latencies.entries()]
      .map(([label, list]) => {
        const sorted = [...list].sort((a, b) => a - b);
        const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
        return `${label} p50=${at(0.5)} p95=${at(0.95)} max=${sorted.at(-1) ?? 0}`;
      })
      .join('; ');
  }

  #count(label: string, outcome: string): void {
    let m = this.byLabel.get(label);
    if (!m) this.byLabel.set(label, (m = new Map()));
    m.set(outcome, (m.get(outcome) ?? 0) + 1);
  }

  #check(label: string, method: string, path: string, status: number, body: string | null, startedAt: number): void {
    const allowed = (this.opts.allowed ?? ALLOWED_STATUSES)[label];
    const documented503 = status === 503 && (path === '/health' || (label === 'download' && this.opts.storageDownDuring?.(startedAt, Date.now()) === true));
    if (status >= 500 && !documented503) {
      this.violations.push(`${method} ${path} -> ${status} (5xx other than /health's 503) at ${new Date(startedAt).toISOString()}: ${body?.slice(0, 300) ?? ''}`);
    } else if (allowed && !allowed.includes(status)) {
      this.violations.push(`${method} ${path} -> ${status}, expected one of ${allowed.join('/')}: ${body?.slice(0, 300) ?? ''}`);
    }
    const listedSince = this.opts.firstBackupListedAt?.() ?? null;
    if (status === 404 && (label === 'latest' || label === 'download') && listedSince !== null && startedAt > listedSince) {
      this.violations.push(`${method} ${path} -> 404 although backups were listed since ${new Date(listedSince).toISOString()}: ${body?.slice(0, 300) ?? ''}`);
    }
    if (body !== null) {
      this.watch.scan(`response body of ${method} ${path} (${status})`, body);
      if (STACK_TRACE.test(body)) this.violations.push(`${method} ${path} -> ${status}: stack trace in the body: ${body.slice(0, 300)}`);
    }
  }

  #networkError(label: string, error: unknown): void {
    const code = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name;
    const key = `${label}:${code}`;
    this.networkErrors.set(key, (this.networkErrors.get(key) ?? 0) + 1);
    this.#count(label, `error ${code}`);
  }

  headers(auth: 'token' | 'none' | 'wrong'): Headers {
    const h = new Headers();
    if (auth === 'token') h.set('Authorization', `Bearer ${this.token}`);
    if (auth === 'wrong') h.set('Authorization', `Bearer ${this.token.slice(0, -1)}${this.token.endsWith('0') ? '1' : '0'}`);
    return h;
  }

  /** A request whose body is text (JSON, problem+json, metrics): read, counted, checked, scanned. */
  async text(
    label: string,
    path: string,
    opts: { method?: string; auth?: 'token' | 'none' | 'wrong' } = {},
  ): Promise<{ status: number; body: string } | null> {
    const method = opts.method ?? 'GET';
    this.requests++;
    const startedAt = Date.now();
    try {
      const res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: this.headers(opts.auth ?? 'token'),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      this.#latency(label, startedAt);
      const body = await res.text();
      this.#count(label, String(res.status));
      this.#check(label, method, path, res.status, body, startedAt);
      return { status: res.status, body };
    } catch (error) {
      this.#networkError(label, error);
      return null;
    }
  }

  /**
   * Downloads `path`. full: read at once and check SHA-256 against the ETag. slow: the same, with
   * pauses between chunks (back-pressure all the way to storage). abort: read a random part, then
   * disconnect (the service must release the storage stream).
   */
  async download(path: string, mode: DownloadMode, opts: { pauseMs?: number; maxMs?: number } = {}): Promise<DownloadResult> {
    const label = 'download';
    this.requests++;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error('download deadline')), opts.maxMs ?? REQUEST_TIMEOUT_MS);
    let bytes = 0;
    let status: number | null = null;
    const startedAt = Date.now();
    try {
      const res = await fetch(`${this.baseUrl}${path}`, { headers: this.headers('token'), signal: controller.signal });
      this.#latency(label, startedAt);
      status = res.status;
      this.#count(label, String(res.status));
      if (res.status !== 200 && res.status !== 206) {
        const body = await res.text();
        this.#check(label, 'GET', path, res.status, body, startedAt);
        return { status, bytes: 0, complete: false };
      }
      this.#check(label, 'GET', path, res.status, null, startedAt);
      const expected = Number(res.headers.get('content-length'));
      const etag = res.headers.get('etag')?.replace(/"/g, '');
      const stopAt = mode === 'abort' ? Math.floor(Math.random() * Math.max(1, expected)) : Infinity;
      const hash = createHash('sha256');
      const reader = res.body!.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          bytes += value.length;
          hash.update(value);
          if (bytes >= stopAt) {
            controller.abort(new Error('client gave up on purpose'));
            this.downloads.abortedByClient++;
            this.downloads.bytes += bytes;
            return { status, bytes, complete: false };
          }
          if (mode === 'slow') await delay(opts.pauseMs ?? 20);
        }
      } catch (error) {
        // The service cut the body (storage failed mid-stream): a truncated transfer, never a
        // complete-looking corrupt one.
        if (controller.signal.aborted) throw error;
        this.downloads.truncatedByServer++;
        this.downloads.bytes += bytes;
        this.#count(label, 'truncated');
        return { status, bytes, complete: false };
      }
      this.downloads.bytes += bytes;
      const complete = bytes === expected;
      if (!complete) {
        this.violations.push(`GET ${path}: body ended after ${bytes} of ${expected} bytes without an error`);
        return { status, bytes, complete };
      }
      this.downloads.complete++;
      if (mode === 'slow') this.downloads.slowComplete++;
      const matchesEtag = status === 200 ? hash.digest('hex') === etag : undefined;
      if (matchesEtag === false) this.violations.push(`GET ${path}: SHA-256 of the body differs from its ETag ${etag}`);
      if (matchesEtag) this.downloads.verified++;
      return { status, bytes, complete, ...(matchesEtag === undefined ? {} : { matchesEtag }) };
    } catch (error) {
      if (controller.signal.aborted) {
        // Our own deadline (a slow reader that took too long): not the service's fault.
        this.#count(label, 'client deadline');
        return { status, bytes, complete: false };
      }
      this.#networkError(label, error);
      return { status, bytes, complete: false };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Status counts per label, e.g. "health 200:812 503:40; list 200:700". */
  describe(): string {
    return [...this.byLabel.entries()]
      .map(([label, m]) => `${label} ${[...m.entries()].map(([k, v]) => `${k}:${v}`).join(' ')}`)
      .join('; ');
  }

  /** Number of answers with this status across all labels. */
  countStatus(predicate: (status: number) => boolean): number {
    let n = 0;
    for (const m of this.byLabel.values()) for (const [k, v] of m) if (/^\d+$/.test(k) && predicate(Number(k))) n += v;
    return n;
  }
}

/**
 * Runs `body` repeatedly until `shouldStop()` or `maxIterations`: every client loop in the suite
 * is bounded in count as well as in time.
 */
export async function loop(shouldStop: () => boolean, maxIterations: number, body: (i: number) => Promise<void>): Promise<number> {
  let i = 0;
  while (!shouldStop() && i < maxIterations) await body(i++);
  return i;
}

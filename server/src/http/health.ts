import type { Health } from '@db-backup-service/contract';
import type { Logger } from '../logger.js';

export type Probe = (signal: AbortSignal) => Promise<void>;
type Component = keyof Health['components'];

/** How long a health result is reused: probes every second cost one check, not one each. */
export const HEALTH_CACHE_MS = 1_500;
const PROBE_TIMEOUT_MS = 3_000;

/**
 * /health: UP only when PostgreSQL accepts a connection with the configured credentials and
 * storage is reachable. Results are cached briefly and concurrent callers share one check.
 *
 * The answer says only UP or DOWN per component: the endpoint is unauthenticated, and a probe's
 * error names the database host, the role or the directory. That text goes to the log instead,
 * once when a component goes DOWN (a probe every 10 s would otherwise repeat it all day), and a
 * line when it is UP again.
 */
export class HealthCheck {
  readonly #probes: Record<Component, Probe>;
  readonly #logger: Logger;
  #cached: { at: number; value: Health } | null = null;
  #inFlight: Promise<Health> | null = null;
  readonly #lastStatus = new Map<Component, 'UP' | 'DOWN'>();

  constructor(probes: Record<Component, Probe>, logger: Logger) {
    this.#probes = probes;
    this.#logger = logger;
  }

  async get(): Promise<Health> {
    if (this.#cached && Date.now() - this.#cached.at < HEALTH_CACHE_MS) return this.#cached.value;
    this.#inFlight ??= this.#check().finally(() => (this.#inFlight = null));
    return this.#inFlight;
  }

  async #check(): Promise<Health> {
    const [database, storage] = await Promise.all([this.#run('database'), this.#run('storage')]);
    const value: Health = { status: database.status === 'UP' && storage.status === 'UP' ? 'UP' : 'DOWN', components: { database, storage } };
    this.#cached = { at: Date.now(), value };
    return value;
  }

  async #run(component: Component): Promise<Health['components'][Component]> {
    try {
      await this.#probes[component](AbortSignal.timeout(PROBE_TIMEOUT_MS));
      if (this.#changed(component, 'UP')) this.#logger.info(`health: ${component} UP`);
      return { status: 'UP' };
    } catch (error) {
      // Probe errors are written by our own code (pg / storage wrappers) and carry no secrets.
      if (this.#changed(component, 'DOWN')) this.#logger.warn(`health: ${component} DOWN`, { error: (error as Error).message });
      return { status: 'DOWN' };
    }
  }

  /** Records a component's status; true when it is news (a change, or DOWN from the start). */
  #changed(component: Component, status: 'UP' | 'DOWN'): boolean {
    const last = this.#lastStatus.get(component);
    this.#lastStatus.set(component, status);
    return status !== (last ?? 'UP');
  }
}

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
 * once per change (a probe every 10 s would otherwise repeat it all day).
 */
export class HealthCheck {
  readonly #probes: Record<Component, Probe>;
  readonly #logger: Logger;
  #cached: { at: number; value: Health } | null = null;
  #inFlight: Promise<Health> | null = null;
  /** The last logged state per component: 'UP', or the error of the DOWN. */
  readonly #lastState = new Map<Component, string>();

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
      this.#changed(component, 'UP', () => this.#logger.info(`health: ${component} UP`));
      return { status: 'UP' };
    } catch (error) {
      // Probe errors are written by our own code (pg / storage wrappers) and carry no secrets.
      const message = (error as Error).message;
      this.#changed(component, message, () => this.#logger.warn(`health: ${component} DOWN`, { error: message }));
      return { status: 'DOWN' };
    }
  }

  /** Logs a component's state when it differs from the last one logged; the first UP is not news. */
  #changed(component: Component, state: string, log: () => void): void {
    const last = this.#lastState.get(component);
    this.#lastState.set(component, state);
    if (state !== last && !(last === undefined && state === 'UP')) log();
  }
}

import type { Health } from '@db-backup-service/contract';

export type Probe = (signal: AbortSignal) => Promise<void>;

/** How long a health result is reused: probes every second cost one check, not one each. */
export const HEALTH_CACHE_MS = 1_500;
const PROBE_TIMEOUT_MS = 3_000;

/**
 * /health: UP only when PostgreSQL accepts a connection with the configured credentials and
 * storage is reachable. Results are cached briefly and concurrent callers share one check.
 */
export class HealthCheck {
  #cached: { at: number; value: Health } | null = null;
  #inFlight: Promise<Health> | null = null;

  constructor(private readonly probes: { database: Probe; storage: Probe }) {}

  async get(): Promise<Health> {
    if (this.#cached && Date.now() - this.#cached.at < HEALTH_CACHE_MS) return this.#cached.value;
    this.#inFlight ??= this.#check().finally(() => (this.#inFlight = null));
    return this.#inFlight;
  }

  async #check(): Promise<Health> {
    const [database, storage] = await Promise.all([run(this.probes.database), run(this.probes.storage)]);
    const value: Health = { status: database.status === 'UP' && storage.status === 'UP' ? 'UP' : 'DOWN', components: { database, storage } };
    this.#cached = { at: Date.now(), value };
    return value;
  }
}

async function run(probe: Probe): Promise<Health['components']['database']> {
  try {
    await probe(AbortSignal.timeout(PROBE_TIMEOUT_MS));
    return { status: 'UP' };
  } catch (error) {
    // Probe errors are written by our own code (pg / storage wrappers) and carry no secrets.
    return { status: 'DOWN', detail: (error as Error).message };
  }
}

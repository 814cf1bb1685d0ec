import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type Figures = Record<string, number | string | boolean>;

export interface SummaryRecord {
  readonly name: string;
  readonly line: string;
  readonly figures: Figures;
}

let sequence = 0;

/**
 * Prints one `[faults] name: key=value ...` line and hands it to the global teardown, which
 * prints every line again at the end of the run. Call it before asserting, so that a failing test
 * still reports what it measured.
 */
export function printSummary(name: string, figures: Figures): void {
  const line = `[faults] ${name}: ${Object.entries(figures)
    .map(([k, v]) => `${k}=${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(1) : String(v)}`)
    .join(' ')}`;
  console.log(line);
  const dir = process.env.FAULTS_SUMMARY_DIR;
  if (dir) {
    const file = join(dir, `${Date.now()}-${process.pid}-${sequence++}.json`);
    writeFileSync(file, JSON.stringify({ name, line, figures } satisfies SummaryRecord));
  }
}

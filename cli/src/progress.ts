import { SingleBar } from 'cli-progress';
import { formatBytes, formatDuration } from './format.js';

/** One phase of work measured in bytes (download, verify, restore). */
export interface PhaseProgress {
  update(bytes: number): void;
  /** Ends the phase; `ok: false` leaves the bar where it stopped. */
  done(ok?: boolean): void;
}

export interface Progress {
  phase(name: string, totalBytes: number | null): PhaseProgress;
}

export type ProgressMode = 'bar' | 'lines' | 'silent';

/** A bar on a terminal, plain lines when stderr is a pipe or file, nothing for --json. */
export function progressMode(opts: { json: boolean; isTTY: boolean }): ProgressMode {
  if (opts.json) return 'silent';
  return opts.isTTY ? 'bar' : 'lines';
}

const LINE_INTERVAL_MS = 5_000;

export function createProgress(mode: ProgressMode, stream: NodeJS.WriteStream = process.stderr, now: () => number = Date.now): Progress {
  return {
    phase(name, totalBytes) {
      if (mode === 'silent') return { update: () => undefined, done: () => undefined };
      return mode === 'bar' ? barPhase(name, totalBytes, stream) : linePhase(name, totalBytes, stream, now);
    },
  };
}

function rate(bytes: number, ms: number): string {
  return ms > 0 ? `${formatBytes((bytes * 1000) / ms)}/s` : '-';
}

function barPhase(name: string, totalBytes: number | null, stream: NodeJS.WriteStream): PhaseProgress {
  const started = Date.now();
  const bar = new SingleBar({
    stream,
    format: `${name.padEnd(8)} [{bar}] {percentage}% | {done} of {size} | {speed} | ETA {eta_formatted}`,
    barCompleteChar: '=',
    barIncompleteChar: ' ',
    hideCursor: true,
    etaBuffer: 50,
    fps: 5,
  });
  const size = totalBytes === null ? '?' : formatBytes(totalBytes);
  let last = 0;
  bar.start(Math.max(1, totalBytes ?? 1), 0, { done: formatBytes(0), size, speed: '-' });
  return {
    update(bytes) {
      last = bytes;
      bar.update(totalBytes === null ? 0 : bytes, { done: formatBytes(bytes), speed: rate(bytes, Date.now() - started) });
    },
    done(ok = true) {
      if (ok && totalBytes !== null) bar.update(totalBytes, { done: formatBytes(Math.max(last, totalBytes)) });
      bar.stop();
    },
  };
}

function linePhase(name: string, totalBytes: number | null, stream: NodeJS.WriteStream, now: () => number): PhaseProgress {
  const started = now();
  let lastLine = started;
  let current = 0;
  const describe = (bytes: number): string => {
    const elapsed = now() - started;
    if (totalBytes === null || totalBytes === 0) return `${name}: ${formatBytes(bytes)}, ${rate(bytes, elapsed)}`;
    const pct = Math.min(100, Math.floor((bytes / totalBytes) * 100));
    const speed = elapsed > 0 ? bytes / elapsed : 0;
    const eta = speed > 0 ? ` ETA ${formatDuration((totalBytes - bytes) / speed)}` : '';
    return `${name}: ${pct}% (${formatBytes(bytes)} of ${formatBytes(totalBytes)}, ${rate(bytes, elapsed)}${eta})`;
  };
  stream.write(`${name}: started${totalBytes === null ? '' : ` (${formatBytes(totalBytes)})`}\n`);
  return {
    update(bytes) {
      current = bytes;
      // A log line every few seconds: enough to see it move in `docker logs`, not a flood.
      if (now() - lastLine >= LINE_INTERVAL_MS) {
        lastLine = now();
        stream.write(`${describe(bytes)}\n`);
      }
    },
    done(ok = true) {
      stream.write(ok ? `${name}: done, ${formatBytes(current)} in ${formatDuration(now() - started)}\n` : `${name}: stopped at ${formatBytes(current)}\n`);
    },
  };
}

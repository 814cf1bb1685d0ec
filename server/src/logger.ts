import { AsyncLocalStorage } from 'node:async_hooks';
import winston from 'winston';

/** Fields attached to every log line written inside a backup job (jobId, backupId, ...). */
export type LogContext = Record<string, string | number | null>;

const context = new AsyncLocalStorage<LogContext>();

/** Runs `fn` with `fields` added to every log line it (and what it awaits) writes. */
export function withLogContext<T>(fields: LogContext, fn: () => T): T {
  return context.run({ ...context.getStore(), ...fields }, fn);
}

/** Adds fields to the current context (e.g. backupId once it is known). */
export function addLogContext(fields: LogContext): void {
  const store = context.getStore();
  if (store) Object.assign(store, fields);
}

/** Runs `fn` (and what it awaits) outside any job's context: work that is not the job's, such as retention. */
export function withoutLogContext<T>(fn: () => T): T {
  return context.exit(fn);
}

// The line's own fields win over the context's: a retention line names the backup it deletes, not
// the job's backup (winston has already merged the call's fields into `info` here).
const attachContext = winston.format((info) => {
  for (const [key, value] of Object.entries(context.getStore() ?? {})) {
    if (!(key in info)) info[key] = value;
  }
  return info;
});

export type Logger = winston.Logger;

/** JSON or plain lines on the console; `stream` instead (tests read what the service would log). */
export function createLogger(opts: { format: 'json' | 'plain'; level: string; stream?: NodeJS.WritableStream }): Logger {
  const base = [winston.format.timestamp(), attachContext()];
  return winston.createLogger({
    level: opts.level,
    format:
      opts.format === 'json'
        ? winston.format.combine(...base, winston.format.json())
        : winston.format.combine(
            ...base,
            winston.format.printf(({ timestamp, level, message, ...rest }) => {
              const extra = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : '';
              return `${String(timestamp)} ${level.toUpperCase().padEnd(5)} ${String(message)}${extra}`;
            }),
          ),
    transports: [opts.stream ? new winston.transports.Stream({ stream: opts.stream }) : new winston.transports.Console()],
  });
}

/** A logger that writes nothing, for unit tests. */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}

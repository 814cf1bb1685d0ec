// PostgreSQL client tools (pg_dump, psql, pg_restore) of majors other than the installed 15, for
// the version matrix. Debian ships them only for newer releases (17 in trixie, 18 in sid), whose
// binaries need their own glibc: each lives in a minimal Debian root made with debootstrap and is
// run through a two-line wrapper that chroots into it. chroot needs root, as the tests have in CI.
//
// The roots are cached under /var/tmp (about 40 s and 400 MB each to build): built into a temp dir
// next to the cache entry and renamed into place on success, under an flock(1) lock so two vitest
// workers never build the same root at once (the kernel releases the lock if a worker dies).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { systemPgBinDir } from './postgres.js';

/** Client majors pgClientsRoot() lays out. */
export type PgClientMajor = 15 | 17 | 18;
export const PG_CLIENT_MAJORS: readonly PgClientMajor[] = [15, 17, 18];

/** The Debian release each non-native client major comes from, and the version measured there. */
export const DEBIAN_PG_CLIENTS = {
  17: { suite: 'trixie', pkg: 'postgresql-client-17' },
  18: { suite: 'sid', pkg: 'postgresql-client-18' },
} as const satisfies Record<Exclude<PgClientMajor, 15>, { suite: string; pkg: string }>;

const TOOLS = ['pg_dump', 'psql', 'pg_restore'] as const;
export const PG_CLIENTS_CACHE = process.env.PG_CLIENTS_CACHE ?? '/var/tmp/db-backup-service-pg-clients';
/** Bump when the layout of the cache changes, so stale entries are rebuilt rather than trusted. */
const LAYOUT_VERSION = 'v1';
const DEBOOTSTRAP_TIMEOUT_MS = 15 * 60_000;
const LOCK_TIMEOUT_S = 20 * 60;

/**
 * The URI of the Debian archive the host's apt uses for its own release (deb822 .sources or
 * one-line .list files), e.g. http://deb.debian.org/debian. Other suites (trixie, sid) live in the
 * same archive, so this is the mirror for debootstrap too; no host name is hard-coded.
 */
export function debianMirror(): string {
  const files: string[] = [];
  if (existsSync('/etc/apt/sources.list')) files.push('/etc/apt/sources.list');
  const dir = '/etc/apt/sources.list.d';
  if (existsSync(dir)) for (const f of readdirSync(dir).sort()) if (/\.(list|sources)$/.test(f)) files.push(join(dir, f));
  const release = /^VERSION_CODENAME=(.+)$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1]?.trim() ?? 'bookworm';
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    if (file.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (name: string): string[] =>
          (new RegExp(`^${name}:\\s*(.*)$`, 'im').exec(stanza.split('\n').filter((l) => !l.startsWith('#')).join('\n'))?.[1] ?? '').split(/\s+/).filter(Boolean);
        if (field('Types').includes('deb') && field('Suites').includes(release) && field('Components').includes('main') && field('Enabled')[0] !== 'no') {
          const uri = field('URIs')[0];
          if (uri) return uri.replace(/\/+$/, '');
        }
      }
    } else {
      for (const line of text.split('\n')) {
        const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)$/.exec(line.trim());
        if (m?.[1] && m[2] === release && m[3]?.split(/\s+/).includes('main')) return m[1].replace(/\/+$/, '');
      }
    }
  }
  throw new Error(`no apt source for Debian ${release} main in ${files.join(', ') || '/etc/apt'}: cannot tell which Debian mirror to debootstrap from`);
}

/** Runs a command, its output appended to `log`; resolves with the exit code (null: killed by the deadline). */
function runLogged(file: string, args: string[], log: string, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const fd = openSync(log, 'a');
    const child = spawn(file, args, { stdio: ['ignore', fd, fd], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } });
    closeSync(fd);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/**
 * Holds an exclusive flock(1) on `lockFile` until release() is called or this process dies: the
 * lock belongs to a `flock ... cat` child reading our pipe, which ends when the pipe closes.
 */
async function acquireLock(lockFile: string): Promise<() => Promise<void>> {
  const child = spawn('flock', ['--exclusive', '--timeout', String(LOCK_TIMEOUT_S), lockFile, 'sh', '-c', 'echo locked; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const locked = await new Promise<boolean>((resolve, reject) => {
    child.once('error', reject);
    createInterface({ input: child.stdout }).once('line', (l) => resolve(l === 'locked'));
    void closed.then(() => resolve(false));
  });
  if (!locked) {
    child.stdin.end();
    throw new Error(`could not lock ${lockFile} within ${LOCK_TIMEOUT_S} s (exit ${await closed}): ${stderr.trim()}`);
  }
  return async () => {
    child.stdin.end();
    await closed;
  };
}

/** Mount points at or under `dir` (debootstrap mounts /proc and /sys in the target; a failed run can leave them). */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => m !== undefined && (m === dir || m.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
}

/** rm -rf of a (partial) Debian root, after unmounting whatever debootstrap left mounted in it. */
async function removeRoot(dir: string): Promise<void> {
  for (const m of mountsUnder(dir)) await runLogged('umount', ['-l', m], '/dev/null', 30_000);
  if (mountsUnder(dir).length > 0) throw new Error(`cannot remove ${dir}: still mounted: ${mountsUnder(dir).join(', ')}`);
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

function rootReady(root: string, major: number): boolean {
  return existsSync(join(root, 'usr', 'lib', 'postgresql', String(major), 'bin', 'pg_dump'));
}

export interface DebianRootSpec {
  /** Debian suite, e.g. trixie. */
  suite: string;
  /** Package to include, e.g. postgresql-client-17. */
  pkg: string;
  /** The root is ready once it has /usr/lib/postgresql/<major>/bin/pg_dump. */
  major: number;
  /** Default PG_CLIENTS_CACHE. */
  cacheDir?: string;
  /** Default debianMirror(). */
  mirror?: string;
}

/**
 * The cached Debian root `<cacheDir>/<suite>-<pkg>` holding `pkg`, built once with
 * `debootstrap --variant=minbase --include=<pkg> <suite> <dir> <mirror>` into a temp dir that is
 * renamed into place on success. A failed build throws with the tail of debootstrap's log and
 * leaves nothing in the cache but the lock file.
 */
export async function debianRoot(spec: DebianRootSpec): Promise<string> {
  const { suite, pkg, major } = spec;
  const cacheDir = spec.cacheDir ?? PG_CLIENTS_CACHE;
  const final = join(cacheDir, `${suite}-${pkg}`);
  if (rootReady(final, major)) return final;
  if (process.getuid?.() !== 0) throw new Error(`building the Debian ${suite} root for ${pkg} needs root (debootstrap, chroot)`);
  if (!existsSync('/usr/sbin/debootstrap')) throw new Error('debootstrap is not installed (scripts/setup.sh installs it: apt-get install debootstrap)');
  await mkdir(cacheDir, { recursive: true });
  const release = await acquireLock(join(cacheDir, `${suite}.lock`));
  try {
    if (rootReady(final, major)) return final; // another worker built it while we waited
    // Partial roots of earlier runs that died mid-build (we hold the lock: nobody else is building).
    for (const name of readdirSync(cacheDir)) {
      if (name.startsWith(`${suite}-${pkg}.tmp-`)) await removeRoot(join(cacheDir, name));
    }
    if (existsSync(final)) await removeRoot(final); // incomplete: no pg_dump in it
    const tmp = await mkdtemp(join(cacheDir, `${suite}-${pkg}.tmp-`));
    const log = `${tmp}.log`;
    const mirror = spec.mirror ?? debianMirror();
    const started = Date.now();
    await writeFile(log, `debootstrap --variant=minbase --include=${pkg} ${suite} ${tmp} ${mirror}\n`);
    try {
      const code = await runLogged('/usr/sbin/debootstrap', ['--variant=minbase', `--include=${pkg}`, suite, tmp, mirror], log, DEBOOTSTRAP_TIMEOUT_MS);
      if (code !== 0 || !rootReady(tmp, major)) {
        const tail = (await readFile(log, 'utf8')).trimEnd().split('\n').slice(-30).join('\n');
        // debootstrap writes its own detailed log inside the target.
        const innerLog = join(tmp, 'debootstrap', 'debootstrap.log');
        const inner = existsSync(innerLog)
          ? `\n--- ${suite} debootstrap/debootstrap.log (last lines) ---\n${(await readFile(innerLog, 'utf8')).trimEnd().split('\n').slice(-15).join('\n')}`
          : '';
        throw new Error(
          `debootstrap of Debian ${suite} with ${pkg} from ${mirror} failed (${code === null ? `killed after ${DEBOOTSTRAP_TIMEOUT_MS} ms` : `exit ${code}`}` +
            `${code === 0 ? `, but no /usr/lib/postgresql/${major}/bin/pg_dump in it` : ''}):\n${tail}${inner}`,
        );
      }
      await writeFile(join(tmp, '.db-backup-service-built'), `${new Date().toISOString()} in ${Date.now() - started} ms from ${mirror}\n`);
      await rename(tmp, final);
    } finally {
      if (existsSync(tmp)) await removeRoot(tmp);
      await rm(log, { force: true });
    }
    return final;
  } finally {
    await release();
  }
}

/** The cached Debian root holding `postgresql-client-<major>` from its suite (DEBIAN_PG_CLIENTS). */
export function debianClientRoot(major: Exclude<PgClientMajor, 15>): Promise<string> {
  return debianRoot({ ...DEBIAN_PG_CLIENTS[major], major });
}

/** The full version a client tool reports, e.g. "17.12": runs `<bin>/pg_dump --version`. */
export async function clientVersion(binDir: string): Promise<string> {
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(join(binDir, 'pg_dump'), ['--version'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (b: Buffer) => (text += b.toString()));
    child.stderr.on('data', (b: Buffer) => (text += b.toString()));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`${binDir}/pg_dump --version: exit ${code}: ${text}`))));
  });
  const m = /\(PostgreSQL\)\s+(\d+\.\d+)/.exec(out);
  if (!m?.[1]) throw new Error(`cannot read the version from ${JSON.stringify(out)}`);
  return m[1];
}

let rootPromise: Promise<string> | undefined;

/**
 * A directory laid out like /usr/lib/postgresql, with one `<major>/bin/{pg_dump,psql,pg_restore}`
 * per client: 15 (symlinks to the installed client), 17 (Debian trixie) and 18 (Debian sid), the
 * latter two wrappers that chroot into their cached Debian roots. Meant for PG_BIN_DIR
 * (`<root>/<major>/bin`) and PG_CLIENTS_DIR (`<root>`). Connect with host 127.0.0.1: the roots
 * have their own /etc and no unix socket of ours. Builds missing roots (in parallel) on first use.
 */
export function pgClientsRoot(): Promise<string> {
  rootPromise ??= (async () => {
    const native = systemPgBinDir();
    if (!native || !native.endsWith('/15/bin')) throw new Error(`the PostgreSQL 15 client is expected under /usr/lib/postgresql/15/bin (found ${native ?? 'none'})`);
    const [root17, root18] = await Promise.all([debianClientRoot(17), debianClientRoot(18)]);
    const layout = join(PG_CLIENTS_CACHE, `clients-${LAYOUT_VERSION}`);
    const wanted = new Map<string, string>();
    for (const tool of TOOLS) {
      wanted.set(`15/bin/${tool}`, `symlink:${join(native, tool)}`);
      for (const [major, root] of [[17, root17], [18, root18]] as const) {
        wanted.set(`${major}/bin/${tool}`, `#!/bin/sh\nexec /usr/sbin/chroot ${root} /usr/lib/postgresql/${major}/bin/${tool} "$@"\n`);
      }
    }
    const current = async (): Promise<boolean> => {
      for (const [rel, content] of wanted) {
        const p = join(layout, rel);
        if (!existsSync(p)) return false;
        if (!content.startsWith('symlink:') && (await readFile(p, 'utf8')) !== content) return false;
      }
      return true;
    };
    if (await current()) return layout;
    const release = await acquireLock(join(PG_CLIENTS_CACHE, 'clients.lock'));
    try {
      if (await current()) return layout;
      const tmp = await mkdtemp(join(PG_CLIENTS_CACHE, `clients-${LAYOUT_VERSION}.tmp-`));
      try {
        for (const [rel, content] of wanted) {
          const p = join(tmp, rel);
          await mkdir(join(p, '..'), { recursive: true });
          if (content.startsWith('symlink:')) await symlink(content.slice('symlink:'.length), p);
          else {
            await writeFile(p, content);
            await chmod(p, 0o755);
          }
        }
        await rm(layout, { recursive: true, force: true });
        await rename(tmp, layout);
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
    } finally {
      await release();
    }
    return layout;
  })();
  // A failure is not cached: a later call (after fixing the machine) tries again.
  rootPromise.catch(() => (rootPromise = undefined));
  return rootPromise;
}

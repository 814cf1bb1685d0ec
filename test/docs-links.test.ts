import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// Every Markdown file the repository ships: a link that leads nowhere, or a "see X" pointer to a
// section that does not exist, is a dead end for the operator reading it.
const ROOT = resolve(import.meta.dirname, '..');
const FILES = execFileSync('git', ['ls-files', '*.md'], { cwd: ROOT, encoding: 'utf8' })
  .split('\n')
  .filter((f) => f !== '' && !f.startsWith('bench/results/'));

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[`*_]/g, '')
    .replace(/[^\p{L}\p{N}\s-]/gu, '')
    .replace(/\s/g, '-');
}

function headingsOf(text: string): { titles: Set<string>; anchors: Set<string> } {
  const titles = new Set<string>();
  const anchors = new Set<string>();
  let fenced = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const m = !fenced && /^#{1,6}\s+(.*?)\s*#*$/.exec(line);
    if (m) {
      titles.add(m[1]!.replace(/[`*]/g, '').toLowerCase());
      anchors.add(anchorOf(m[1]!));
    }
  }
  return { titles, anchors };
}

/** Link targets outside code spans and fences. */
function linksOf(text: string): string[] {
  const prose = text.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
  return [...prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]!);
}

describe('Markdown links and section pointers', () => {
  it.each(FILES)('%s has no dead relative link or anchor', (file) => {
    const text = readFileSync(join(ROOT, file), 'utf8');
    const dead: string[] = [];
    for (const target of linksOf(text)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http(s), mailto: checked by nobody offline
      const [path, anchor] = target.split('#') as [string, string | undefined];
      const resolved = path === '' ? join(ROOT, file) : resolve(ROOT, dirname(file), decodeURIComponent(path));
      if (!existsSync(resolved)) {
        dead.push(`${target} (no such file)`);
        continue;
      }
      if (anchor !== undefined && anchor !== '' && resolved.endsWith('.md')) {
        if (!headingsOf(readFileSync(resolved, 'utf8')).anchors.has(anchor.toLowerCase())) dead.push(`${target} (no such section)`);
      }
    }
    expect(dead).toEqual([]);
  });

  it.each(FILES)('%s points only to sections that exist (see "…")', (file) => {
    const text = readFileSync(join(ROOT, file), 'utf8');
    const { titles } = headingsOf(text);
    const missing = [...text.matchAll(/\bsee "([^"]+)"/gi)]
      .map((m) => m[1]!)
      .filter((title) => ![...titles].some((t) => t === title.toLowerCase() || t.startsWith(`${title.toLowerCase()} `)));
    expect(missing).toEqual([]);
  });
});

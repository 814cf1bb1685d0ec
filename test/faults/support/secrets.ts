// Invariant 6 across the fault suite: every text a test sees (service logs, response bodies, the
// CLI's output, child processes' command lines) is scanned for each secret the test handed out.

export interface SecretHit {
  readonly secret: string;
  readonly where: string;
  /** Where in the text, with the secret itself masked, so a report never repeats it. */
  readonly excerpt: string;
}

/**
 * Collects texts and records every occurrence of a secret (raw or percent-encoded, as in a
 * connection URI) together with where it was seen. `scan` is cheap enough to call per response.
 */
export class SecretWatch {
  readonly hits: SecretHit[] = [];
  #texts = 0;
  #bytes = 0;
  readonly #needles: { name: string; needle: string }[] = [];

  readonly #maskOnly: { name: string; needle: string }[] = [];

  /**
   * `secrets`: name -> value (e.g. { DB_PASSWORD: '...' }) to search for. `maskOnly`: secrets
   * that are allowed where this watch looks (the DB password in pg_dump's environment) but must
   * still never be printed in a hit's excerpt.
   */
  constructor(readonly secrets: Readonly<Record<string, string>>, maskOnly: Readonly<Record<string, string>> = {}) {
    for (const [name, value] of Object.entries(maskOnly)) this.#maskOnly.push({ name, needle: value }, { name, needle: encodeURIComponent(value) });
    for (const [name, value] of Object.entries(secrets)) {
      if (value.length < 8) throw new Error(`SecretWatch: ${name} is too short to search for reliably`);
      this.#needles.push({ name, needle: value });
      const encoded = encodeURIComponent(value);
      if (encoded !== value) this.#needles.push({ name: `${name} (percent-encoded)`, needle: encoded });
    }
  }

  scan(where: string, text: string): void {
    this.#texts++;
    this.#bytes += text.length;
    for (const { name, needle } of this.#needles) {
      const at = text.indexOf(needle);
      if (at === -1) continue;
      const excerpt = `${text.slice(Math.max(0, at - 60), at)}<${name}>${text.slice(at + needle.length, at + needle.length + 60)}`;
      this.hits.push({ secret: name, where, excerpt: this.#mask(excerpt).replace(/\s+/g, ' ') });
    }
  }

  /** Every secret in `text` replaced by its name: a report must not print any of them. */
  #mask(text: string): string {
    let out = text;
    const all = [...this.#needles, ...this.#maskOnly];
    for (const { name, needle } of all.sort((a, b) => b.needle.length - a.needle.length)) out = out.split(needle).join(`<${name}>`);
    // A secret cut by the excerpt's edge: mask any 8+ character piece of one as well.
    for (const { name, needle } of all) {
      for (let len = needle.length - 1; len >= 8; len--) {
        const head = needle.slice(0, len);
        const tail = needle.slice(needle.length - len);
        if (out.endsWith(head)) out = `${out.slice(0, -len)}<${name} (cut)>`;
        if (out.startsWith(tail)) out = `<${name} (cut)>${out.slice(len)}`;
      }
    }
    return out;
  }

  get textsScanned(): number {
    return this.#texts;
  }

  get bytesScanned(): number {
    return this.#bytes;
  }

  /** Human-readable list of hits for an assertion message. */
  describeHits(): string {
    return this.hits.map((h) => `${h.secret} in ${h.where}: ...${h.excerpt}...`).join('\n');
  }
}

/**
 * Stack-trace text in a response body: "at fn (/path/file.js:1:2)", "at /path/file.js:1:2",
 * "at node:internal/...". A response body must never carry one (a 500 says "internal error").
 */
export const STACK_TRACE = /\bat (?:[^\s()]+ \()?(?:\/|file:\/\/|node:)[^\s()]*:\d+(?::\d+)?\)?/;

import { describe, expect, it } from 'vitest';
import { REDACTED, redact } from './redact.js';

describe('redact', () => {
  it('replaces every occurrence of every secret, and its URI-encoded form', () => {
    const text = 'pw=s3cr/t+x again s3cr/t+x url postgres://u:s3cr%2Ft%2Bx@h token tok123';
    const out = redact(text, ['s3cr/t+x', 'tok123']);
    expect(out).toBe(`pw=${REDACTED} again ${REDACTED} url postgres://u:${REDACTED}@h token ${REDACTED}`);
  });

  it('replaces the longer secret first when one contains another', () => {
    expect(redact('abcdef', ['abc', 'abcdef'])).toBe(REDACTED);
  });

  it('ignores empty and missing secrets', () => {
    expect(redact('text', ['', null, undefined])).toBe('text');
  });
});

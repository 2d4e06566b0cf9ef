/**
 * readAheadSource (openBackup's reads of a stored image): a reader going
 * forward in reads of odd sizes, with jumps elsewhere between them (a
 * fragment, a table), fetches each byte about once: a read across the end
 * of a piece takes the rest from the next piece instead of fetching it again,
 * and reads elsewhere do not push the read-ahead out.
 */
import { describe, expect, it } from 'vitest';
import { readAheadSource } from '../src/backup/read-ahead.js';
import type { RandomAccessSource } from '../src/squashfs/reader/types.js';

function counted(bytes: Uint8Array) {
  const stats = { fetched: 0, calls: 0 };
  const source: RandomAccessSource = {
    size: bytes.length,
    read: async (offset, length) => {
      stats.fetched += length;
      stats.calls++;
      return bytes.slice(offset, offset + length);
    },
  };
  return { source, stats };
}

describe('readAheadSource', () => {
  it('reads forward across piece ends and around jumps elsewhere, fetching each byte about once, returning exact bytes', async () => {
    const bytes = Uint8Array.from({ length: 40 << 20 }, (_, i) => (i * 31 + (i >> 13)) & 0xff);
    const { source, stats } = counted(bytes);
    const ahead = readAheadSource(source);
    let at = 0;
    let step = 0;
    while (at < 32 << 20) {
      const length = 50_000 + ((step * 7919) % 90_000);
      expect(Buffer.compare(Buffer.from(await ahead.read(at, length)), Buffer.from(bytes.subarray(at, at + length)))).toBe(0);
      if (step % 5 === 0) {
        const far = (36 << 20) + ((step * 4099) % (3 << 20)); // a fragment or a table, elsewhere
        expect(Buffer.compare(Buffer.from(await ahead.read(far, 3000)), Buffer.from(bytes.subarray(far, far + 3000)))).toBe(0);
      }
      at += length;
      step++;
    }
    const elsewhere = Math.ceil(step / 5) * 3000;
    // The forward reads and what was read ahead of them (at most 4 MiB past the end), plus the reads elsewhere.
    expect(stats.fetched).toBeLessThanOrEqual(at + (4 << 20) + elsewhere);
  });
});

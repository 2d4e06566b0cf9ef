import { concatBytes, encodeUtf8 } from '../squashfs/bytes.js';
import { encodeDevice } from '../squashfs/inode/inode.js';
import type { EntryStat } from '../squashfs/reader/types.js';

const TYPE_CHAR: Record<EntryStat['type'], string> = {
  directory: 'd', file: '-', symlink: 'l', 'block-device': 'b', 'char-device': 'c', fifo: 'p', socket: 's',
};

/** "drwxr-xr-x", with s/S and t/T for setuid, setgid and sticky. */
export function modeString(stat: EntryStat): string {
  const m = stat.mode;
  const triple = (shift: number, special: boolean, letter: string) => {
    const r = m & (4 << shift) ? 'r' : '-';
    const w = m & (2 << shift) ? 'w' : '-';
    const x = m & (1 << shift);
    return r + w + (special ? (x ? letter : letter.toUpperCase()) : x ? 'x' : '-');
  };
  return TYPE_CHAR[stat.type] + triple(6, (m & 0o4000) !== 0, 's') + triple(3, (m & 0o2000) !== 0, 's') + triple(0, (m & 0o1000) !== 0, 't');
}

const pad2 = (n: number) => String(n).padStart(2, '0');
const NEWLINE = encodeUtf8('\n');
const ARROW = encodeUtf8(' -> ');

/**
 * One line in the layout of `unsquashfs -lln`: mode, uid/gid, size (or
 * device numbers as unsquashfs prints them), local time, path, link target;
 * names are raw bytes, as unsquashfs prints them.
 */
export function longLine(stat: EntryStat, path: Uint8Array, target?: Uint8Array): Uint8Array {
  const owner = `${stat.uid}/${stat.gid}`;
  const width = 25 - String(stat.uid).length - String(stat.gid).length;
  let size: string;
  if (stat.rdev) {
    // unsquashfs shows the on-disk encoding split at bit 8.
    const device = encodeDevice(stat.rdev.major, stat.rdev.minor);
    size = ' '.repeat(Math.max(width - 7, 0)) + `${String(device >>> 8).padStart(3)},${String(device & 0xff).padStart(3)}`;
  } else {
    size = String(stat.size).padStart(width);
  }
  const d = new Date(stat.mtime * 1000);
  const time = `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  const head = encodeUtf8(`${modeString(stat)} ${owner} ${size} ${time} `);
  return concatBytes(target === undefined ? [head, path, NEWLINE] : [head, path, ARROW, target, NEWLINE]);
}

/**
 * Builders of source trees for the writer's tests.
 *
 * - `makeTrickyTree` builds one fixed tree with every corner case we know of
 *   (block boundaries, sparse files, hard links, odd names, every mode and
 *   file type, owners, xattrs, extreme mtimes).
 * - `randomTreeArb` + `writeTree` give fast-check generated trees.
 *
 * Everything that needs privileges (chown, mknod, trusted.* xattrs) or an
 * optional tool (setfattr) is skipped when unavailable; `treeCapabilities()`
 * says what was possible, so tests can tell what they covered.
 */
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';

const execFileP = promisify(execFile);

export const DEFAULT_BLOCK_SIZE = 131072;
/** The largest mtime SquashFS can hold (u32). */
export const MAX_MTIME = 2 ** 32 - 1;

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

/** Deterministic bytes (xorshift32), incompressible. */
export function pseudoRandomBytes(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761 + 0x9e3779b9) >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.writeUInt32LE(x, i);
  }
  for (; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Deterministic, highly compressible text of exactly `size` bytes. */
export function compressibleBytes(size: number, seed = 0): Buffer {
  const words = ['squash', 'fs', 'block', 'fragment', 'inode', 'table', 'lorem', 'ipsum', 'dolor'];
  const parts: string[] = [];
  let len = 0;
  let n = seed;
  while (len < size) {
    const line = `${n} ${words[n % words.length]} ${words[(n * 7) % words.length]} the quick brown fox\n`;
    parts.push(line);
    len += line.length;
    n++;
  }
  return Buffer.from(parts.join(''), 'latin1').subarray(0, size);
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

let setfattrAvailable: Promise<boolean> | undefined;
export function hasSetfattr(): Promise<boolean> {
  setfattrAvailable ??= execFileP('setfattr', ['--version']).then(
    () => true,
    () => false,
  );
  return setfattrAvailable;
}

async function setfattr(p: string, name: string, value: string, noDeref = false): Promise<void> {
  const args = noDeref ? ['-h', '-n', name, '-v', value, p] : ['-n', name, '-v', value, p];
  await execFileP('setfattr', args);
}

/** Creates a unix socket file that stays after the server is closed. */
export async function makeSocket(p: string): Promise<void> {
  // libuv unlinks the socket path when the server closes; listen on a
  // temporary name and rename it away first so the socket file remains.
  const tmp = path.join(path.dirname(p), `.sock-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(tmp, () => resolve());
  });
  await fsp.rename(tmp, p);
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

export async function makeFifo(p: string): Promise<void> {
  await execFileP('mkfifo', [p]);
}

export async function makeDevice(p: string, type: 'c' | 'b', major: number, minor: number): Promise<void> {
  await execFileP('mknod', [p, type, String(major), String(minor)]);
}

/** What `makeTrickyTree` could create on this machine. */
export interface TreeCapabilities {
  owners: boolean;
  devices: boolean;
  xattrs: boolean;
  trustedXattrs: boolean;
}

export async function treeCapabilities(): Promise<TreeCapabilities> {
  const root = isRoot();
  const attr = await hasSetfattr();
  return { owners: root, devices: root, xattrs: attr, trustedXattrs: attr && root };
}

// ---------------------------------------------------------------------------
// The tricky tree
// ---------------------------------------------------------------------------

export interface TrickyTreeOptions {
  /** Sizes around the block boundaries are derived from it. Default 131072. */
  blockSize?: number;
  /** Adds a 5 MB compressible file. Default false. */
  big?: boolean;
}

/** A name made of raw bytes (not valid UTF-8): 'odd-', 0x01, 0xff, '-end'. */
export const ODD_BYTES_NAME = Buffer.concat([Buffer.from('odd-'), Buffer.from([0x01, 0xff]), Buffer.from('-end')]);
/** A name with a newline, a tab and spaces. */
export const NEWLINE_NAME = 'line\nbreak\tand  spaces ';
/** Exactly 255 bytes, ASCII. */
export const LONG_ASCII_NAME = 'L'.repeat(251) + '.txt';
/** Exactly 255 bytes of UTF-8 (127 two-byte chars + 1). */
export const LONG_UTF8_NAME = 'é'.repeat(127) + 'x';
/** A symlink target of about 1000 bytes. */
export const LONG_LINK_TARGET = Array.from({ length: 100 }, (_, i) => `dir${String(i).padStart(5, '0')}`).join('/');

/** The tricky tree for a block size, built once per `cache` under `work/tree-<blockSize>-<big>`. */
export function sharedTrickyTree(cache: Map<string, Promise<string>>, work: string, blockSize: number, big: boolean): Promise<string> {
  const key = `${blockSize}-${big}`;
  let tree = cache.get(key);
  if (!tree) {
    const dir = path.join(work, `tree-${key}`);
    tree = makeTrickyTree(dir, { blockSize, big }).then(() => dir);
    cache.set(key, tree);
  }
  return tree;
}

/**
 * Builds the tricky tree under `root` (created if missing; should be empty).
 * Everything is deterministic except the mtimes that are left at "now".
 */
export async function makeTrickyTree(root: string, opts: TrickyTreeOptions = {}): Promise<void> {
  const bs = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
  const caps = await treeCapabilities();
  const j = (...p: string[]) => path.join(root, ...p);
  const mkdir = (...p: string[]) => fsp.mkdir(j(...p), { recursive: true });
  const write = (rel: string, data: Buffer | string) => fsp.writeFile(j(rel), data);

  await fsp.mkdir(root, { recursive: true });

  // --- plain text and random files ------------------------------------------------
  await mkdir('text');
  await write('text/hello.txt', 'hello, world\n');
  await write('text/lorem.txt', compressibleBytes(40_000, 1));
  await write('text/no-newline', 'x y z');
  await mkdir('random');
  await write('random/r-100k.bin', pseudoRandomBytes(100_000, 2));
  await write('random/r-3000.bin', pseudoRandomBytes(3000, 3));

  // --- small and boundary sizes ---------------------------------------------------
  await mkdir('sizes');
  await write('sizes/empty', '');
  await write('sizes/one-byte', 'A');
  await write('sizes/two-bytes', '\0\n');
  for (const [name, size] of [
    ['bs-minus-1', bs - 1],
    ['bs', bs],
    ['bs-plus-1', bs + 1],
    ['2bs-plus-1', 2 * bs + 1],
  ] as const) {
    await write(`sizes/${name}.rand`, pseudoRandomBytes(size, size));
    await write(`sizes/${name}.text`, compressibleBytes(size, size));
  }
  // All-zero blocks written for real (not holes): readers see them like holes.
  await write('sizes/zeros-2bs', Buffer.alloc(2 * bs));
  if (opts.big) {
    await mkdir('big');
    await write('big/compressible-5M', compressibleBytes(5 * 1024 * 1024, 5));
  }

  // --- duplicates -----------------------------------------------------------------
  await mkdir('dup/sub');
  await mkdir('dup2');
  const dupSmall = pseudoRandomBytes(3000, 42);
  const dupBlock = pseudoRandomBytes(bs + 1, 43);
  await write('dup/small-a', dupSmall);
  await write('dup/sub/small-b', dupSmall);
  await write('dup2/small-c', dupSmall);
  await write('dup/block-a', dupBlock);
  await write('dup2/block-b', dupBlock);
  await write('dup/empty-a', '');
  await write('dup2/empty-b', '');
  // Same size, same first block, different tail.
  const nearDup = Buffer.from(dupBlock);
  nearDup[nearDup.length - 1] ^= 0xff;
  await write('dup2/block-near', nearDup);

  // --- sparse files ---------------------------------------------------------------
  await mkdir('sparse');
  {
    const all = await fsp.open(j('sparse/all-hole'), 'w');
    await all.truncate(3 * bs + 17);
    await all.close();
    const mid = await fsp.open(j('sparse/data-between-holes'), 'w');
    await mid.write(pseudoRandomBytes(100, 7), 0, 100, 0);
    await mid.write(Buffer.from('in the middle'), 0, 13, 2 * bs + 5);
    await mid.write(pseudoRandomBytes(bs, 8), 0, bs, 5 * bs);
    await mid.write(Buffer.from('tail'), 0, 4, 8 * bs + 3);
    await mid.close();
    const tail = await fsp.open(j('sparse/hole-at-end'), 'w');
    await tail.write(compressibleBytes(bs + 10, 9), 0, bs + 10, 0);
    await tail.truncate(4 * bs + 1);
    await tail.close();
  }

  // --- hard links -----------------------------------------------------------------
  await mkdir('links/a');
  await mkdir('links/b/c');
  await write('links/a/h1', 'hard link group of three\n' + compressibleBytes(5000, 11).toString('latin1'));
  await fsp.link(j('links/a/h1'), j('links/b/h2'));
  await fsp.link(j('links/a/h1'), j('links/b/c/h3'));
  await write('links/a/empty1', '');
  await fsp.link(j('links/a/empty1'), j('links/b/empty2'));

  // --- deep and wide --------------------------------------------------------------
  {
    let rel = 'deep';
    for (let i = 1; i <= 60; i++) rel += `/d${String(i).padStart(2, '0')}`;
    await mkdir(rel);
    await write(`${rel}/leaf.txt`, 'at the bottom\n');
  }
  await mkdir('wide');
  for (let i = 0; i < 1500; i++) {
    const name = `w${String(i).padStart(4, '0')}${i % 7 === 0 ? '-a-somewhat-longer-name' : ''}`;
    await write(`wide/${name}`, i % 5 === 0 ? '' : `entry ${i}\n`);
  }

  // --- names ----------------------------------------------------------------------
  await mkdir('names');
  await write(`names/${LONG_ASCII_NAME}`, '255 bytes\n');
  await write(`names/${LONG_UTF8_NAME}`, '255 bytes utf-8\n');
  await write('names/héllo wörld ✓ 日本語 🎉', 'unicode\n');
  await write('names/Ελληνικά', 'greek\n');
  await write(`names/${NEWLINE_NAME}`, 'newline\n');
  await write('names/ leading space', '');
  await write('names/-dash', '');
  await write('names/back\\slash', '');
  await write('names/quote"\'`$', '');
  await write('names/.hidden', '');
  await write('names/...', '');
  await fsp.writeFile(Buffer.concat([Buffer.from(j('names') + '/'), ODD_BYTES_NAME]), 'odd bytes\n');
  await fsp.mkdir(Buffer.concat([Buffer.from(j('names') + '/'), Buffer.from('dir-'), Buffer.from([0xfe, 0x80])]));
  await mkdir('names/日本語ディレクトリ');
  await write('names/日本語ディレクトリ/ファイル', 'x');

  // --- modes (chown first: chown clears setuid/setgid) --------------------------------
  await mkdir('modes');
  const fileModes: [string, number][] = [
    ['m0000', 0o000],
    ['m0400', 0o400],
    ['m0644', 0o644],
    ['m0755', 0o755],
    ['m4755-setuid', 0o4755],
    ['m4644-setuid-noexec', 0o4644],
    ['m2755-setgid', 0o2755],
    ['m2644-setgid-noexec', 0o2644],
    ['m1755-sticky', 0o1755],
    ['m1644-sticky-noexec', 0o1644],
    ['m6777', 0o6777],
    ['m7000', 0o7000],
    ['m7777', 0o7777],
    ['m0777', 0o777],
    ['m0111', 0o111],
  ];
  for (const [name] of fileModes) {
    await write(`modes/${name}`, `${name}\n`);
  }
  const dirModes: [string, number][] = [
    ['d0000-empty', 0o000],
    ['d1777-sticky', 0o1777],
    ['d2755-setgid', 0o2755],
    ['d7777', 0o7777],
    ['d0500', 0o500],
    ['d7000', 0o7000],
  ];
  for (const [name] of dirModes) await mkdir(`modes/${name}`);
  await mkdir('modes/d0000-full/inner');
  await write('modes/d0000-full/inner/file', 'inside a mode 000 directory\n');
  await write('modes/d0500/file', 'in a read-only directory\n');

  // --- owners ---------------------------------------------------------------------
  await mkdir('owners/dir-1000');
  await mkdir('owners/dir-big');
  const owners: [string, number, number][] = [
    ['u1000-g1000', 1000, 1000],
    ['u65534-g65534', 65534, 65534],
    ['u0-g12345', 0, 12345],
    ['u123456-g654321', 123456, 654321],
    ['u2000000000-g3000000000', 2000000000, 3000000000],
    ['u4294967294-g1', 4294967294, 1],
  ];
  for (const [name] of owners) await write(`owners/${name}`, `${name}\n`);
  await fsp.symlink('u1000-g1000', j('owners/link-u77-g88'));
  if (caps.owners) {
    for (const [name, uid, gid] of owners) await fsp.chown(j(`owners/${name}`), uid, gid);
    await fsp.chown(j('owners/dir-1000'), 1000, 1000);
    await fsp.chown(j('owners/dir-big'), 3000000000, 2000000000);
    await fsp.lchown(j('owners/link-u77-g88'), 77, 88);
    await fsp.chown(j('modes/m4755-setuid'), 1000, 1000);
    await fsp.chown(j('modes/m2755-setgid'), 1000, 1000);
    await fsp.chown(j('modes/d2755-setgid'), 1000, 1000);
  }
  for (const [name, mode] of fileModes) await fsp.chmod(j(`modes/${name}`), mode);

  // --- symlinks -------------------------------------------------------------------
  await mkdir('symlinks');
  await fsp.symlink('../text/hello.txt', j('symlinks/relative'));
  await fsp.symlink('/etc/passwd', j('symlinks/absolute'));
  await fsp.symlink('does/not/exist', j('symlinks/dangling'));
  await fsp.symlink(LONG_LINK_TARGET, j('symlinks/long-target'));
  await fsp.symlink('../text', j('symlinks/to-dir'));
  await fsp.symlink('ünïcødé → target', j('symlinks/unicode-target'));
  await fsp.symlink('.', j('symlinks/self-dot'));
  await fsp.symlink('loop-b', j('symlinks/loop-a'));
  await fsp.symlink('loop-a', j('symlinks/loop-b'));

  // --- special files --------------------------------------------------------------
  await mkdir('special');
  await makeFifo(j('special/fifo'));
  await fsp.chmod(j('special/fifo'), 0o610);
  await makeSocket(j('special/socket'));
  if (caps.devices) {
    await makeDevice(j('special/null-like'), 'c', 1, 3);
    await makeDevice(j('special/sda1-like'), 'b', 8, 1);
    await makeDevice(j('special/big-numbers'), 'c', 300, 70000);
    await makeDevice(j('special/block-0-0'), 'b', 0, 0);
    await makeDevice(j('special/minor-255'), 'c', 4095, 255);
    await fsp.chmod(j('special/null-like'), 0o666);
  }

  // --- xattrs ---------------------------------------------------------------------
  await mkdir('xattrs/dir-with-xattrs');
  await write('xattrs/user-one', 'one user xattr\n');
  await write('xattrs/user-many', 'many user xattrs\n');
  await write('xattrs/same-set-a', 'shares its xattr set\n');
  await write('xattrs/same-set-b', 'shares its xattr set too\n');
  await write('xattrs/trusted', 'trusted xattr\n');
  await write('xattrs/none', 'no xattrs\n');
  if (caps.xattrs) {
    await setfattr(j('xattrs/user-one'), 'user.comment', 'hello');
    await setfattr(j('xattrs/user-many'), 'user.a', 'alpha');
    await setfattr(j('xattrs/user-many'), 'user.b', '0x00ff00ff');
    await setfattr(j('xattrs/user-many'), 'user.empty', '');
    await setfattr(j('xattrs/user-many'), 'user.long', 'v'.repeat(1000));
    await setfattr(j('xattrs/same-set-a'), 'user.shared', 'same');
    await setfattr(j('xattrs/same-set-b'), 'user.shared', 'same');
    await setfattr(j('xattrs/dir-with-xattrs'), 'user.dir', 'on a directory');
    await setfattr(j('links/a/h1'), 'user.on-hardlink', 'shared by the link group');
    if (caps.trustedXattrs) {
      await setfattr(j('xattrs/trusted'), 'trusted.secret', 'root only');
      await setfattr(j('xattrs/trusted'), 'user.public', 'anyone');
    }
  }

  // --- mtimes (files first, directories last, deepest first) ---------------------------
  await mkdir('times/dir-0');
  await mkdir('times/dir-max');
  await write('times/epoch', 'mtime 0\n');
  await write('times/max', 'mtime 2^32-1\n');
  await write('times/dir-0/child', '');
  await write('times/dir-max/child', '');
  await fsp.symlink('epoch', j('times/link-max'));
  await fsp.utimes(j('times/epoch'), 0, 0);
  await fsp.utimes(j('times/max'), MAX_MTIME, MAX_MTIME);
  await fsp.lutimes(j('times/link-max'), MAX_MTIME, MAX_MTIME);
  await fsp.utimes(j('special/fifo'), 1_000_000_000, 1_000_000_000);
  // Directory modes last-but-one (a mode 000 dir is still writable by root,
  // but not by anyone else), then directory mtimes.
  for (const [name, mode] of dirModes) await fsp.chmod(j(`modes/${name}`), mode);
  await fsp.chmod(j('modes/d0000-full'), 0o000);
  await fsp.utimes(j('times/dir-0'), 0, 0);
  await fsp.utimes(j('times/dir-max'), MAX_MTIME, MAX_MTIME);
  await fsp.utimes(j('times'), 1_234_567_890, 1_234_567_890);
}

// ---------------------------------------------------------------------------
// Random trees for property tests
// ---------------------------------------------------------------------------

export type ContentSpec =
  | { kind: 'random'; size: number; seed: number }
  | { kind: 'text'; size: number; seed: number }
  | { kind: 'zeros'; size: number };

export interface FileNode {
  type: 'file';
  content: ContentSpec;
  mode: number;
  mtime: number;
  uid: number;
  gid: number;
}
export interface SymlinkNode {
  type: 'symlink';
  target: string;
  mtime: number;
}
export interface DirNode {
  type: 'dir';
  entries: [string, TreeNode][];
  mode: number;
  mtime: number;
}
export type TreeNode = FileNode | SymlinkNode | DirNode;

export function contentBytes(c: ContentSpec): Buffer {
  switch (c.kind) {
    case 'random':
      return pseudoRandomBytes(c.size, c.seed);
    case 'text':
      return compressibleBytes(c.size, c.seed);
    case 'zeros':
      return Buffer.alloc(c.size);
  }
}

export function isValidName(name: string): boolean {
  if (name === '' || name === '.' || name === '..') return false;
  if (name.includes('/') || name.includes('\0')) return false;
  // Lone surrogates do not survive the round trip through UTF-8.
  if (Buffer.from(name, 'utf8').toString('utf8') !== name) return false;
  return Buffer.byteLength(name, 'utf8') <= 255;
}

export const nameArb: fc.Arbitrary<string> = fc
  .oneof(
    { weight: 4, arbitrary: fc.stringMatching(/^[a-z0-9._-]{1,12}$/) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 10 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 8 }) },
    { weight: 1, arbitrary: fc.integer({ min: 200, max: 255 }).map((n) => 'n'.repeat(n)) },
  )
  .filter(isValidName);

export interface RandomTreeOptions {
  /** Sizes cluster around multiples of it. Default 4096. */
  blockSize?: number;
  maxDepth?: number;
  /** Upper bound on entries of an ordinary directory. Default 6. */
  maxEntries?: number;
  /** Allow occasional wide directories (hundreds of entries). Default true. */
  wide?: boolean;
}

export function fileSizeArb(bs: number): fc.Arbitrary<number> {
  return fc.oneof(
    fc.constantFrom(0, 1, bs - 1, bs, bs + 1, 2 * bs - 1, 2 * bs, 2 * bs + 1, 3 * bs + 7),
    fc.integer({ min: 0, max: 300 }),
    fc.integer({ min: 0, max: 4 * bs }),
  );
}

const mtimeArb = fc.oneof(fc.constantFrom(0, 1, MAX_MTIME, 1_700_000_000), fc.integer({ min: 0, max: MAX_MTIME }));

export function randomTreeArb(opts: RandomTreeOptions = {}): fc.Arbitrary<DirNode> {
  const bs = opts.blockSize ?? 4096;
  const maxDepth = opts.maxDepth ?? 4;
  const maxEntries = opts.maxEntries ?? 6;
  const contentArb: fc.Arbitrary<ContentSpec> = fc.oneof(
    // Few seeds, so identical contents (duplicates) are common.
    fc.record({ kind: fc.constant('random' as const), size: fileSizeArb(bs), seed: fc.integer({ min: 0, max: 3 }) }),
    fc.record({ kind: fc.constant('text' as const), size: fileSizeArb(bs), seed: fc.integer({ min: 0, max: 3 }) }),
    fc.record({ kind: fc.constant('zeros' as const), size: fileSizeArb(bs) }),
  );
  const fileArb: fc.Arbitrary<FileNode> = fc.record({
    type: fc.constant('file' as const),
    content: contentArb,
    mode: fc.oneof(fc.constantFrom(0o644, 0o755, 0o600), fc.integer({ min: 0, max: 0o7777 })),
    mtime: mtimeArb,
    uid: isRoot() ? fc.constantFrom(0, 1, 1000, 65534, 4000000000) : fc.constant(-1),
    gid: isRoot() ? fc.constantFrom(0, 2, 100, 65534, 3000000000) : fc.constant(-1),
  });
  const symlinkArb: fc.Arbitrary<SymlinkNode> = fc.record({
    type: fc.constant('symlink' as const),
    target: fc.oneof(
      nameArb,
      fc.array(nameArb, { minLength: 1, maxLength: 4 }).map((p) => p.join('/')),
      fc.constant('/absolute/path'),
    ),
    mtime: mtimeArb,
  });
  const dirMode = fc.oneof(fc.constantFrom(0o755, 0o700), fc.integer({ min: 0, max: 0o7777 }));
  const wideArb: fc.Arbitrary<DirNode> = fc
    .record({ n: fc.integer({ min: 100, max: 600 }), mtime: mtimeArb, size: fc.integer({ min: 0, max: 40 }) })
    .map(({ n, mtime, size }) => ({
      type: 'dir' as const,
      mode: 0o755,
      mtime,
      entries: Array.from({ length: n }, (_, i): [string, TreeNode] => [
        `wide-entry-${i}`,
        {
          type: 'file',
          content: { kind: 'text', size: (i * 13) % (size + 1), seed: i },
          mode: 0o644,
          mtime: 1_600_000_000 + i,
          uid: -1,
          gid: -1,
        },
      ]),
    }));

  const tree = fc.letrec<{ dir: DirNode; node: TreeNode }>((tie) => ({
    node: fc.oneof(
      { depthSize: 'small', maxDepth, depthIdentifier: 'tree', withCrossShrink: true },
      { weight: 5, arbitrary: fileArb },
      { weight: 1, arbitrary: symlinkArb },
      { weight: 2, arbitrary: tie('dir') },
      ...(opts.wide === false ? [] : [{ weight: 1, arbitrary: wideArb }]),
    ) as fc.Arbitrary<TreeNode>,
    dir: fc.record({
      type: fc.constant('dir' as const),
      entries: fc.uniqueArray(fc.tuple(nameArb, tie('node') as fc.Arbitrary<TreeNode>), {
        maxLength: maxEntries,
        selector: (e) => e[0],
        depthIdentifier: 'tree',
      }),
      mode: dirMode,
      mtime: mtimeArb,
    }),
  }));
  return fc.record({
    type: fc.constant('dir' as const),
    entries: fc.uniqueArray(fc.tuple(nameArb, tree.node), {
      maxLength: maxEntries + 2,
      selector: (e) => e[0],
    }),
    mode: fc.constant(0o755),
    mtime: mtimeArb,
  }) as fc.Arbitrary<DirNode>;
}

/**
 * Writes `tree` under `root` (which is created; the root's own mode and
 * mtime are applied too). Modes, owners and mtimes are applied after the
 * contents, directories after their children.
 */
export async function writeTree(root: string, tree: DirNode): Promise<void> {
  await fsp.mkdir(root, { recursive: true });
  const owners = isRoot();
  const walk = async (dir: string, node: DirNode): Promise<void> => {
    for (const [name, child] of node.entries) {
      const p = path.join(dir, name);
      switch (child.type) {
        case 'file':
          await fsp.writeFile(p, contentBytes(child.content));
          if (owners && child.uid >= 0 && child.gid >= 0) await fsp.chown(p, child.uid, child.gid);
          await fsp.chmod(p, child.mode);
          await fsp.utimes(p, child.mtime, child.mtime);
          break;
        case 'symlink':
          await fsp.symlink(child.target, p);
          await fsp.lutimes(p, child.mtime, child.mtime);
          break;
        case 'dir':
          await fsp.mkdir(p);
          await walk(p, child);
          break;
      }
    }
    await fsp.chmod(dir, node.mode);
    await fsp.utimes(dir, node.mtime, node.mtime);
  };
  await walk(root, tree);
}

/** Counts the entries of a random tree (for bounding test cost / reporting). */
export function countTree(tree: DirNode): number {
  let n = 1;
  for (const [, c] of tree.entries) n += c.type === 'dir' ? countTree(c) : 1;
  return n;
}

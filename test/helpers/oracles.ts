/**
 * Oracles: judge a SquashFS image against the directory it was made from,
 * using independent implementations (squashfs-tools 4.5.x unsquashfs,
 * squashfs-tools-ng sqfs2tar, 7-Zip).
 *
 * All names are handled as raw bytes (Buffers, or latin1 strings, which map
 * bytes 1:1), so names that are not valid UTF-8 or contain newlines survive.
 *
 * Quirks of the tools that the helpers account for (found against images
 * made by mksquashfs 4.5.1):
 * - `unsquashfs -lln` prints raw name bytes; a name holding "\n" spans two
 *   output lines. We build the expected listing the same way and compare
 *   the multisets of lines, so both sides split identically.
 * - `unsquashfs -lln` prints device numbers as `rdev >> 8, rdev & 0xff` of
 *   the on-disk (Linux "new_encode_dev") value, so a minor >= 256 shows up
 *   in the "major" column (c 300:70000 prints as `1118508,112`). We
 *   reproduce that.
 * - Directory sizes in the listing are the on-disk directory table sizes,
 *   which do not follow from the source; they are masked.
 * - `sqfs2tar` cannot put sockets in a tar: it prints
 *   `WARNING: <path>: cannot pack socket` and `Skipping <path>` on stderr
 *   (exit 0). Exactly these lines are tolerated, for sockets only.
 * - `7z t` (p7zip 16.02 / 7-Zip 26) reports nothing on the tricky tree's
 *   mksquashfs images (fifos, sockets, devices, sparse files, hard links,
 *   odd names included), so any warning or error is a failure.
 */
import { spawn } from 'node:child_process';
import { promises as fsp, type BigIntStats } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// ---------------------------------------------------------------------------
// Running tools
// ---------------------------------------------------------------------------

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Discard stdout instead of collecting it (for large outputs). */
  discardStdout?: boolean;
  timeoutMs?: number;
}

/**
 * Runs a program without a shell and collects stdout/stderr as Buffers
 * (no maxBuffer limit, no decoding, so odd bytes survive).
 */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', opts.discardStdout ? 'ignore' : 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 120_000,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err) }),
    );
  });
}

function describeRun(cmd: string, args: string[], r: RunResult): string {
  return (
    `${cmd} ${args.join(' ')} -> exit ${r.code}${r.signal ? ` (signal ${r.signal})` : ''}\n` +
    `stderr:\n${r.stderr.toString('utf8').slice(0, 4000)}\nstdout (head):\n${r.stdout.toString('utf8').slice(0, 2000)}`
  );
}

/** Runs and fails the test unless the exit code is 0. */
export async function runOk(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(describeRun(cmd, args, r));
  return r;
}

export async function hasTool(cmd: string, args: string[] = ['--help']): Promise<boolean> {
  try {
    await run(cmd, args);
    return true;
  } catch {
    return false;
  }
}

export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  try {
    return await fn(dir);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// Byte-safe names
// ---------------------------------------------------------------------------

/** latin1 <-> bytes is a bijection: use latin1 strings as byte strings. */
const bstr = (b: Buffer): string => b.toString('latin1');

/** Human-readable rendering of a byte string (UTF-8 where valid, escapes otherwise). */
export function showBytes(s: string | Buffer): string {
  const buf = typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
  let out = '';
  let i = 0;
  while (i < buf.length) {
    const b = buf[i];
    let len = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (len > 1) {
      const chunk = buf.subarray(i, i + len);
      const dec = chunk.toString('utf8');
      if (chunk.length === len && !dec.includes('\ufffd') && Buffer.from(dec, 'utf8').equals(chunk)) {
        out += dec;
        i += len;
        continue;
      }
      len = 0;
    }
    if (len === 1 && b >= 0x20 && b < 0x7f && b !== 0x5c) out += String.fromCharCode(b);
    else if (b === 0x0a) out += '\\n';
    else if (b === 0x09) out += '\\t';
    else if (b === 0x5c) out += '\\\\';
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
    i++;
  }
  return out;
}

interface SourceEntry {
  /** Path relative to the root, as bytes ('' for the root). */
  rel: Buffer;
  abs: Buffer;
  st: BigIntStats;
}

/** Pre-order walk of a directory with Buffer names (children in byte order). */
export async function walkTree(root: string): Promise<SourceEntry[]> {
  const out: SourceEntry[] = [];
  const rootBuf = Buffer.from(root);
  const visit = async (abs: Buffer, rel: Buffer): Promise<void> => {
    const st = await fsp.lstat(abs, { bigint: true });
    out.push({ rel, abs, st });
    if (!st.isDirectory()) return;
    const names = (await fsp.readdir(abs, { encoding: 'buffer' })) as Buffer[];
    names.sort(Buffer.compare);
    for (const name of names) {
      await visit(
        Buffer.concat([abs, Buffer.from('/'), name]),
        rel.length === 0 ? name : Buffer.concat([rel, Buffer.from('/'), name]),
      );
    }
  };
  await visit(rootBuf, Buffer.alloc(0));
  return out;
}

const S_IFMT = 0o170000;
const TYPE_CHAR: Record<number, string> = {
  0o140000: 's',
  0o120000: 'l',
  0o100000: '-',
  0o060000: 'b',
  0o040000: 'd',
  0o020000: 'c',
  0o010000: 'p',
};

/** `ls -l` style mode string exactly as unsquashfs prints it (s/S/t/T). */
export function modeString(mode: number): string {
  const c = (bit: number, ch: string) => (mode & bit ? ch : '-');
  const x = (xbit: number, special: number, lower: string, upper: string) =>
    mode & special ? (mode & xbit ? lower : upper) : mode & xbit ? 'x' : '-';
  return (
    (TYPE_CHAR[mode & S_IFMT] ?? '?') +
    c(0o400, 'r') +
    c(0o200, 'w') +
    x(0o100, 0o4000, 's', 'S') +
    c(0o040, 'r') +
    c(0o020, 'w') +
    x(0o010, 0o2000, 's', 'S') +
    c(0o004, 'r') +
    c(0o002, 'w') +
    x(0o001, 0o1000, 't', 'T')
  );
}

/** glibc's major()/minor() of a dev_t. */
export function devMajorMinor(rdev: bigint): [number, number] {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return [major, minor];
}

/** What squashfs-tools stores for a device: Linux new_encode_dev (32 bits). */
export function squashfsRdev(major: number, minor: number): number {
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

function utcMinute(seconds: number): string {
  const d = new Date(seconds * 1000);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}`;
}

const seconds = (st: BigIntStats): number => Number(st.mtimeNs / 1_000_000_000n - (st.mtimeNs < 0n && st.mtimeNs % 1_000_000_000n !== 0n ? 1n : 0n));

// ---------------------------------------------------------------------------
// Listing oracle (unsquashfs -lln)
// ---------------------------------------------------------------------------

export interface ExpectOptions {
  /** The image was made with allRoot: every owner must be 0:0. */
  allRoot?: boolean;
  /** Compare owners (default: true when running as root). */
  owners?: boolean;
  /** Compare xattrs (extract oracle only; default: when getfattr is installed and root). */
  xattrs?: boolean;
  /** Relative paths (UTF-8 strings, '/'-separated) excluded from the image. */
  excluded?: string[];
}

const LISTING_ROOT = 'R';
const TOTALCHARS = 25;

/**
 * One line of `unsquashfs -lln -d R` for a source entry, as a byte string.
 * Reproduces print_filename() of squashfs-tools 4.5.1.
 */
async function listingLine(e: SourceEntry, opts: ExpectOptions): Promise<string> {
  const mode = Number(e.st.mode);
  const uid = opts.allRoot ? '0' : String(e.st.uid);
  const gid = opts.allRoot ? '0' : String(e.st.gid);
  let line = `${modeString(mode)} ${uid}/${gid} `;
  const pad = TOTALCHARS - uid.length - gid.length;
  const type = mode & S_IFMT;
  if (type === 0o020000 || type === 0o060000) {
    const [maj, min] = devMajorMinor(e.st.rdev);
    const data = squashfsRdev(maj, min) | 0; // printed as a C int
    line += ' '.padStart(Math.max(pad - 7, 0)) + `${String(data >> 8).padStart(3)},${String(data & 0xff).padStart(3)} `;
  } else {
    let size: bigint = 0n;
    if (type === 0o100000) size = e.st.size;
    else if (type === 0o120000) size = BigInt((await fsp.readlink(e.abs, { encoding: 'buffer' })).length);
    line += `${String(size).padStart(Math.max(pad, 0))} `;
  }
  line += `${utcMinute(seconds(e.st))} `;
  let out = line + LISTING_ROOT + (e.rel.length ? '/' + bstr(e.rel) : '');
  if (type === 0o120000) out += ' -> ' + bstr(await fsp.readlink(e.abs, { encoding: 'buffer' }));
  return out;
}

/** Masks the size column of directory lines (not derivable from the source). */
function maskDirSize(line: string): string {
  const m = /^(d\S{9} \d+\/\d+) +\d+ (\d{4}-\d\d-\d\d \d\d:\d\d .*)$/s.exec(line);
  return m ? `${m[1]} <dirsize> ${m[2]}` : line;
}

function isExcluded(rel: Buffer, excluded: string[] | undefined): boolean {
  if (!excluded?.length) return false;
  const r = rel.toString('utf8');
  return excluded.some((x) => r === x || r.startsWith(x + '/'));
}

/** The listing expected from `unsquashfs -lln -d R` for `srcDir`, as lines. */
export async function expectedListing(srcDir: string, opts: ExpectOptions = {}): Promise<string[]> {
  const entries = (await walkTree(srcDir)).filter((e) => !isExcluded(e.rel, opts.excluded));
  const lines: string[] = [];
  for (const e of entries) lines.push(...(await listingLine(e, opts)).split('\n'));
  return lines.map(maskDirSize);
}

export async function actualListing(image: string): Promise<string[]> {
  const args = ['-lln', '-d', LISTING_ROOT, image];
  const r = await run('unsquashfs', args, { env: { ...process.env, TZ: 'UTC' } });
  if (r.code !== 0 || r.stderr.length > 0) throw new Error(describeRun('unsquashfs', args, r));
  const text = bstr(r.stdout);
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map(maskDirSize);
}

/** Multiset difference of two line lists, rendered readably. */
export function lineDiff(expected: string[], actual: string[], limit = 60): { missing: string[]; unexpected: string[] } {
  const counts = new Map<string, number>();
  for (const l of expected) counts.set(l, (counts.get(l) ?? 0) + 1);
  const unexpected: string[] = [];
  for (const l of actual) {
    const n = counts.get(l) ?? 0;
    if (n > 0) counts.set(l, n - 1);
    else unexpected.push(l);
  }
  const missing: string[] = [];
  for (const [l, n] of counts) for (let i = 0; i < n; i++) missing.push(l);
  const fmt = (ls: string[]) => {
    const sorted = [...ls].sort();
    const shown = sorted.slice(0, limit).map(showBytes);
    if (sorted.length > limit) shown.push(`... and ${sorted.length - limit} more`);
    return shown;
  };
  return { missing: fmt(missing), unexpected: fmt(unexpected) };
}

/**
 * `unsquashfs -lln` of the image must list exactly the source tree: names,
 * types, modes, numeric owners, sizes (device numbers), mtimes (minute
 * resolution, UTC) and symlink targets.
 */
export async function expectListingMatches(image: string, srcDir: string, opts: ExpectOptions = {}): Promise<void> {
  const [expected, actual] = await Promise.all([expectedListing(srcDir, opts), actualListing(image)]);
  const diff = lineDiff(expected, actual);
  if (diff.missing.length || diff.unexpected.length) {
    throw new Error(
      `unsquashfs -lln ${image} does not match ${srcDir}\n` +
        `expected but not listed (${diff.missing.length}):\n  ${diff.missing.join('\n  ')}\n` +
        `listed but not expected (${diff.unexpected.length}):\n  ${diff.unexpected.join('\n  ')}`,
    );
  }
}

// ---------------------------------------------------------------------------
// Extraction oracle (unsquashfs -d)
// ---------------------------------------------------------------------------

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

let getfattrOk: Promise<boolean> | undefined;
export function hasGetfattr(): Promise<boolean> {
  getfattrOk ??= hasTool('getfattr', ['--version']);
  return getfattrOk;
}

/**
 * All xattrs under `dir`, keyed by getfattr's (escaped) relative file name.
 * Runs `getfattr -R -P -h -d -m - -e hex .` in `dir`, so both trees are
 * named alike; getfattr escapes odd bytes in names itself.
 */
export async function dumpXattrs(dir: string, excluded?: string[]): Promise<Map<string, string>> {
  const args = ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '.'];
  const r = await run('getfattr', args, { cwd: dir });
  // A file system without xattrs (a squashfs image made without any, an overlay of such) answers ENOTSUP: none there.
  const unsupported = (line: string) => line === '' || line.endsWith(': Operation not supported');
  if (r.code !== 0 && !r.stderr.toString('latin1').split('\n').every(unsupported)) throw new Error(describeRun('getfattr', args, r));
  const map = new Map<string, string>();
  for (const block of r.stdout.toString('latin1').split(/\n\n+/)) {
    const lines = block.split('\n').filter((l) => l !== '');
    if (!lines.length) continue;
    const head = lines[0];
    if (!head.startsWith('# file: ')) throw new Error(`unexpected getfattr output: ${showBytes(block)}`);
    const name = head.slice('# file: '.length).replace(/^\.\//, '');
    if (excluded && isExcluded(Buffer.from(name, 'latin1'), excluded)) continue;
    map.set(name, lines.slice(1).sort().join('\n'));
  }
  return map;
}

function typeName(st: BigIntStats): string {
  return TYPE_CHAR[Number(st.mode) & S_IFMT] ?? '?';
}

/** Partition of non-directory paths by inode, groups of 2+ only, canonical. */
function linkGroups(entries: SourceEntry[]): string[][] {
  const byIno = new Map<string, string[]>();
  for (const e of entries) {
    if (e.st.isDirectory()) continue;
    const key = `${e.st.dev}:${e.st.ino}`;
    const list = byIno.get(key) ?? [];
    list.push(showBytes(e.rel));
    byIno.set(key, list);
  }
  return [...byIno.values()]
    .filter((g) => g.length > 1)
    .map((g) => g.sort())
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

async function sameContent(a: Buffer, b: Buffer, size: bigint): Promise<boolean> {
  if (size <= 16n << 20n) {
    const [da, db] = await Promise.all([fsp.readFile(a), fsp.readFile(b)]);
    return da.equals(db);
  }
  const [fa, fb] = await Promise.all([fsp.open(a, 'r'), fsp.open(b, 'r')]);
  try {
    const size = 1 << 20;
    const ba = Buffer.alloc(size);
    const bb = Buffer.alloc(size);
    for (;;) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, size), fb.read(bb, 0, size)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

/**
 * Compares two trees entry by entry: same names, types, permission bits,
 * owners, mtimes (seconds), file contents (byte-identical), symlink targets,
 * device numbers, hard-link groups and xattrs. Returns readable problems.
 */
export async function compareTrees(srcDir: string, outDir: string, opts: ExpectOptions = {}): Promise<string[]> {
  const owners = opts.owners ?? isRoot();
  const xattrs = opts.xattrs ?? (isRoot() && (await hasGetfattr()));
  const src = (await walkTree(srcDir)).filter((e) => !isExcluded(e.rel, opts.excluded));
  const out = await walkTree(outDir);
  const problems: string[] = [];
  const outByRel = new Map(out.map((e) => [bstr(e.rel), e]));
  const srcByRel = new Map(src.map((e) => [bstr(e.rel), e]));
  for (const rel of outByRel.keys()) if (!srcByRel.has(rel)) problems.push(`unexpected in image: ${showBytes(rel)}`);
  for (const s of src) {
    const key = bstr(s.rel);
    const name = showBytes(s.rel) || '<root>';
    const o = outByRel.get(key);
    if (!o) {
      problems.push(`missing from image: ${name}`);
      continue;
    }
    const sm = Number(s.st.mode);
    const om = Number(o.st.mode);
    if ((sm & S_IFMT) !== (om & S_IFMT)) {
      problems.push(`${name}: type ${typeName(s.st)} became ${typeName(o.st)}`);
      continue;
    }
    if (!s.st.isSymbolicLink() && (sm & 0o7777) !== (om & 0o7777))
      problems.push(`${name}: mode ${(sm & 0o7777).toString(8)} became ${(om & 0o7777).toString(8)}`);
    if (owners) {
      const [u, g] = opts.allRoot ? [0n, 0n] : [s.st.uid, s.st.gid];
      if (o.st.uid !== u || o.st.gid !== g) problems.push(`${name}: owner ${u}:${g} became ${o.st.uid}:${o.st.gid}`);
    }
    if (seconds(s.st) !== seconds(o.st)) problems.push(`${name}: mtime ${seconds(s.st)} became ${seconds(o.st)}`);
    if (s.st.isFile()) {
      if (s.st.size !== o.st.size) problems.push(`${name}: size ${s.st.size} became ${o.st.size}`);
      else if (!(await sameContent(s.abs, o.abs, s.st.size))) problems.push(`${name}: content differs`);
    } else if (s.st.isSymbolicLink()) {
      const [ts, to] = await Promise.all([
        fsp.readlink(s.abs, { encoding: 'buffer' }),
        fsp.readlink(o.abs, { encoding: 'buffer' }),
      ]);
      if (!ts.equals(to)) problems.push(`${name}: symlink target ${showBytes(ts)} became ${showBytes(to)}`);
    } else if (s.st.isCharacterDevice() || s.st.isBlockDevice()) {
      const [a, b] = [devMajorMinor(s.st.rdev), devMajorMinor(o.st.rdev)];
      if (a[0] !== b[0] || a[1] !== b[1]) problems.push(`${name}: device ${a.join(',')} became ${b.join(',')}`);
    }
  }
  const [gs, go] = [linkGroups(src), linkGroups(out)];
  if (JSON.stringify(gs) !== JSON.stringify(go))
    problems.push(`hard-link groups differ:\n  source: ${JSON.stringify(gs)}\n  image:  ${JSON.stringify(go)}`);
  if (xattrs) {
    const [xs, xo] = await Promise.all([dumpXattrs(srcDir, opts.excluded), dumpXattrs(outDir)]);
    for (const [file, attrs] of xs) {
      const got = xo.get(file);
      if (got !== attrs) problems.push(`${showBytes(file)}: xattrs\n${attrs}\n  became\n${got ?? '<none>'}`);
    }
    for (const file of xo.keys()) if (!xs.has(file)) problems.push(`${showBytes(file)}: unexpected xattrs ${xo.get(file)}`);
  }
  return problems.slice(0, 100).concat(problems.length > 100 ? [`... and ${problems.length - 100} more`] : []);
}

/**
 * Extracts the image with `unsquashfs -d` (as root it restores owners and
 * xattrs) and compares the result with the source, see compareTrees().
 * unsquashfs must exit 0 with an empty stderr.
 */
export async function expectExtractMatches(image: string, srcDir: string, opts: ExpectOptions = {}): Promise<void> {
  await withTempDir('sqfs-extract-', async (tmp) => {
    const dest = path.join(tmp, 'x');
    const xattrs = opts.xattrs ?? (isRoot() && (await hasGetfattr()));
    const args = ['-d', dest, '-no-progress', ...(xattrs ? [] : ['-no-xattrs']), image];
    const r = await run('unsquashfs', args);
    if (r.code !== 0 || r.stderr.length > 0) throw new Error(describeRun('unsquashfs', args, r));
    const problems = await compareTrees(srcDir, dest, { ...opts, xattrs });
    if (problems.length) {
      throw new Error(`unsquashfs -d of ${image} does not match ${srcDir}:\n  ${problems.join('\n  ')}`);
    }
  });
}

// ---------------------------------------------------------------------------
// Other readers
// ---------------------------------------------------------------------------

/**
 * `sqfs2tar image > /dev/null` exits 0 and prints nothing on stderr except
 * the socket warnings tar makes unavoidable (see the file comment).
 */
export async function expectSqfs2tarAccepts(image: string): Promise<void> {
  const args = [image];
  const r = await run('sqfs2tar', args, { discardStdout: true });
  const lines = bstr(r.stderr).split('\n').filter((l) => l !== '');
  const bad: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^WARNING: (.*): cannot pack socket$/s.exec(lines[i]);
    if (m && lines[i + 1] === `Skipping ${m[1]}`) {
      i++;
      continue;
    }
    bad.push(showBytes(lines[i]));
  }
  if (r.code !== 0 || r.signal || bad.length) {
    throw new Error(`sqfs2tar ${image} -> exit ${r.code}${r.signal ? ` (${r.signal})` : ''}, stderr:\n  ${bad.join('\n  ')}`);
  }
}

/** `7z t image` exits 0, says "Everything is Ok", and prints no warning or error. */
export async function expect7zAccepts(image: string): Promise<void> {
  const args = ['t', image];
  const r = await run('7z', args);
  const text = r.stdout.toString('utf8') + r.stderr.toString('utf8');
  const bad = text.split('\n').filter((l) => /warning|error|unsupported|can ?not|unexpected/i.test(l));
  if (r.code !== 0 || !text.includes('Everything is Ok') || !/^Type = SquashFS$/m.test(text) || bad.length) {
    throw new Error(`7z t ${image} -> exit ${r.code}; complaints:\n  ${bad.join('\n  ')}\nfull output:\n${text}`);
  }
}

/** Every oracle at once. */
export async function expectImageMatches(image: string, srcDir: string, opts: ExpectOptions = {}): Promise<void> {
  await expectListingMatches(image, srcDir, opts);
  await expectExtractMatches(image, srcDir, opts);
  await expectSqfs2tarAccepts(image);
  await expect7zAccepts(image);
}

// ---------------------------------------------------------------------------
// Reference writer
// ---------------------------------------------------------------------------

/** Makes an image with squashfs-tools' mksquashfs (the reference writer). */
export async function mksquashfs(srcDir: string, image: string, extra: string[] = []): Promise<void> {
  await runOk('mksquashfs', [srcDir, image, '-comp', 'gzip', '-noappend', '-no-progress', '-quiet', ...extra]);
}

// ---------------------------------------------------------------------------
// Superblock
// ---------------------------------------------------------------------------

export interface Superblock {
  magic: number;
  inodeCount: number;
  modTime: number;
  blockSize: number;
  fragmentCount: number;
  compressionId: number;
  blockLog: number;
  flags: number;
  idCount: number;
  versionMajor: number;
  versionMinor: number;
  bytesUsed: bigint;
  xattrIdTableStart: bigint;
}

/** Reads the 96-byte SquashFS 4.0 superblock. */
export async function readSuperblock(image: string): Promise<Superblock> {
  const fh = await fsp.open(image, 'r');
  try {
    const b = Buffer.alloc(96);
    await fh.read(b, 0, 96, 0);
    return {
      magic: b.readUInt32LE(0),
      inodeCount: b.readUInt32LE(4),
      modTime: b.readUInt32LE(8),
      blockSize: b.readUInt32LE(12),
      fragmentCount: b.readUInt32LE(16),
      compressionId: b.readUInt16LE(20),
      blockLog: b.readUInt16LE(22),
      flags: b.readUInt16LE(24),
      idCount: b.readUInt16LE(26),
      versionMajor: b.readUInt16LE(28),
      versionMinor: b.readUInt16LE(30),
      bytesUsed: b.readBigUInt64LE(40),
      xattrIdTableStart: b.readBigUInt64LE(56),
    };
  } finally {
    await fh.close();
  }
}

/** Number of distinct inodes under `dir` (hard links counted once). */
export async function countInodes(dir: string): Promise<number> {
  const seen = new Set<string>();
  for (const e of await walkTree(dir)) seen.add(`${e.st.dev}:${e.st.ino}`);
  return seen.size;
}

/** Number of distinct uids and gids under `dir` (the size of the id table). */
export async function countIds(dir: string): Promise<number> {
  const ids = new Set<bigint>();
  for (const e of await walkTree(dir)) {
    ids.add(e.st.uid);
    ids.add(e.st.gid);
  }
  return ids.size;
}

export interface SuperblockExpectations {
  blockSize: number;
  /** The superblock (image) time, when fixed. */
  modTime?: number;
  allRoot?: boolean;
}

/**
 * The superblock says SquashFS 4.0, gzip, the block size asked for, one
 * inode per distinct source inode, one id per distinct uid/gid, and a
 * bytes_used within the file.
 */
export async function expectSuperblockMatches(image: string, srcDir: string, want: SuperblockExpectations): Promise<Superblock> {
  const sb = await readSuperblock(image);
  const size = (await fsp.stat(image)).size;
  const got = {
    magic: sb.magic.toString(16),
    version: `${sb.versionMajor}.${sb.versionMinor}`,
    compressionId: sb.compressionId,
    blockSize: sb.blockSize,
    blockLog: sb.blockLog,
    inodeCount: sb.inodeCount,
    idCount: sb.idCount,
    bytesUsedWithinFile: sb.bytesUsed <= BigInt(size),
    ...(want.modTime === undefined ? {} : { modTime: sb.modTime }),
  };
  const expected = {
    magic: '73717368',
    version: '4.0',
    compressionId: 1,
    blockSize: want.blockSize,
    blockLog: Math.log2(want.blockSize),
    inodeCount: await countInodes(srcDir),
    idCount: want.allRoot ? 1 : await countIds(srcDir),
    bytesUsedWithinFile: true,
    ...(want.modTime === undefined ? {} : { modTime: want.modTime }),
  };
  const bad = Object.keys(expected).filter(
    (k) => (got as Record<string, unknown>)[k] !== (expected as Record<string, unknown>)[k],
  );
  if (bad.length) {
    throw new Error(
      `superblock of ${image}:\n` +
        bad.map((k) => `  ${k}: expected ${(expected as Record<string, unknown>)[k]}, got ${(got as Record<string, unknown>)[k]}`).join('\n'),
    );
  }
  return sb;
}

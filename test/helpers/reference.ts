/**
 * Reference images for the reader's tests: images made by the reference
 * writers (squashfs-tools' mksquashfs 4.5.1, squashfs-tools-ng's gensquashfs
 * 1.2.0) and read back by the reference readers (unsquashfs, rdsquashfs).
 *
 * What each writer keeps of a source tree (checked against the tricky tree):
 * - mksquashfs: everything (contents, modes, owners, mtimes incl. the root's,
 *   hard links, devices, fifos, sockets, all xattrs).
 * - gensquashfs --pack-dir: contents, modes, owners, devices, fifos, sockets;
 *   mtimes only with -k (--keep-time); xattrs only with -x (--keep-xattr),
 *   and it drops xattrs whose value is empty (user.empty=""); it does NOT
 *   detect hard links (each name gets its own inode with the same contents);
 *   the root directory takes its mode/owner/mtime from -d (--defaults, by
 *   default 0755 0:0 mtime 0), not from the source directory, so we pass the
 *   source root's attributes there.
 *
 * Readers' quirks:
 * - unsquashfs 4.5.1 cannot read an lz4 image made by gensquashfs 1.2.0:
 *   "read_id_table: failed to read id table block". gensquashfs stores the
 *   48-byte id table compressed as 50 bytes (it does not fall back to storing
 *   a metadata block uncompressed when compression makes it larger), and
 *   unsquashfs refuses a compressed block longer than the payload it expects.
 *   The block is valid (rdsquashfs and the kernel read it), so for those
 *   images rdsquashfs is the extraction oracle.
 * - rdsquashfs -u / -p DIR unpacks the root's children into DIR but leaves
 *   DIR's own mode, owner and mtime alone; `rdsquashfsExtract` applies the
 *   root's attributes from `rdsquashfs -s /` afterwards.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, runOk, type RunResult } from './oracles.js';
import { bundleForNode } from './child.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../..');

export type ReferenceTool = 'mksquashfs' | 'gensquashfs';

export interface ReferenceImageOptions {
  tool: ReferenceTool;
  /** Compressor name as the tools spell it: gzip, lzma, lzo, xz, lz4, zstd. */
  comp: string;
  blockSize?: number;
  /** More arguments for the tool (placed before the output for gensquashfs, after it for mksquashfs). */
  extra?: string[];
}

/** What the image keeps of the source tree (for comparisons with the source). */
export interface ReferenceKeeps {
  hardLinks: boolean;
  xattrs: boolean;
  /** xattrs with an empty value survive. */
  emptyXattrValues: boolean;
  /** Every owner is 0:0 (-all-root / --all-root). */
  allRoot: boolean;
}

export interface ReferenceImage {
  image: string;
  tool: ReferenceTool;
  comp: string;
  /** The command line that made it. */
  argv: string[];
  keeps: ReferenceKeeps;
  /** Which reference reader can extract it (see the file comment). */
  extractor: 'unsquashfs' | 'rdsquashfs';
}

/**
 * Makes `out` from `srcDir` with the reference writer. mksquashfs:
 * `mksquashfs SRC OUT -comp C [-b BS] -noappend -no-progress -quiet EXTRA`.
 * gensquashfs: `gensquashfs --pack-dir SRC -c C [-b BS] -k -x -q -f
 * -d mtime=..,mode=..,uid=..,gid=.. (the source root's) EXTRA OUT`.
 */
export async function makeReferenceImage(srcDir: string, out: string, opts: ReferenceImageOptions): Promise<ReferenceImage> {
  const extra = opts.extra ?? [];
  const bs = opts.blockSize === undefined ? [] : ['-b', String(opts.blockSize)];
  let argv: string[];
  let keeps: ReferenceKeeps;
  if (opts.tool === 'mksquashfs') {
    argv = ['mksquashfs', srcDir, out, '-comp', opts.comp, ...bs, '-noappend', '-no-progress', '-quiet', ...extra];
    keeps = {
      hardLinks: true,
      xattrs: !extra.includes('-no-xattrs'),
      emptyXattrValues: true,
      allRoot: extra.includes('-all-root') || extra.includes('-root-owned'),
    };
  } else {
    const st = await fsp.stat(srcDir);
    const defaults = `mtime=${Math.floor(st.mtimeMs / 1000)},mode=0${(st.mode & 0o7777).toString(8)},uid=${st.uid},gid=${st.gid}`;
    argv = ['gensquashfs', '--pack-dir', srcDir, '-c', opts.comp, ...bs, '-k', '-x', '-q', '-f', '-d', defaults, ...extra, out];
    keeps = {
      hardLinks: false,
      xattrs: true,
      emptyXattrValues: false,
      allRoot: extra.includes('--all-root'),
    };
  }
  await runOk(argv[0]!, argv.slice(1));
  const extractor = opts.tool === 'gensquashfs' && opts.comp === 'lz4' ? 'rdsquashfs' : 'unsquashfs';
  return { image: out, tool: opts.tool, comp: opts.comp, argv, keeps, extractor };
}

// ---------------------------------------------------------------------------
// A fast scratch directory
// ---------------------------------------------------------------------------

let fastRootP: Promise<string> | undefined;

/**
 * Where to put trees that are extracted again and again: /dev/shm when it is
 * a writable tmpfs that keeps user xattrs (creating 1,700 files there takes
 * 30 ms instead of about a second on the ext4 /tmp of these machines), else
 * os.tmpdir().
 */
export function fastTempRoot(): Promise<string> {
  fastRootP ??= (async () => {
    const shm = '/dev/shm';
    try {
      const probe = await fsp.mkdtemp(path.join(shm, 'sqfs-probe-'));
      try {
        const f = path.join(probe, 'f');
        await fsp.writeFile(f, '');
        const r = await run('setfattr', ['-n', 'user.probe', '-v', '1', f]);
        if (r.code !== 0) return os.tmpdir();
        return shm;
      } finally {
        await fsp.rm(probe, { recursive: true, force: true });
      }
    } catch {
      return os.tmpdir();
    }
  })();
  return fastRootP;
}

// ---------------------------------------------------------------------------
// What the tools here can do
// ---------------------------------------------------------------------------

export interface ToolSupport {
  mksquashfs: boolean;
  unsquashfs: boolean;
  gensquashfs: boolean;
  rdsquashfs: boolean;
  /** Compressors mksquashfs was built with. */
  mksquashfsCompressors: string[];
  /** Compressors gensquashfs was built with. */
  gensquashfsCompressors: string[];
  /** mksquashfs options that exist in this version (checked: -tailends). */
  mksquashfsOptions: Set<string>;
}

let supportP: Promise<ToolSupport> | undefined;

/** Probes the installed tools once. */
export function toolSupport(): Promise<ToolSupport> {
  supportP ??= (async () => {
    const probe = async (cmd: string, args: string[]) => run(cmd, args).catch(() => undefined);
    const [mk, un, gen, rd] = await Promise.all([
      probe('mksquashfs', ['-help']),
      probe('unsquashfs', ['-help']),
      probe('gensquashfs', ['--help']),
      probe('rdsquashfs', ['--help']),
    ]);
    const mkHelp = mk ? mk.stdout.toString() + mk.stderr.toString() : '';
    const genHelp = gen ? gen.stdout.toString() + gen.stderr.toString() : '';
    // mksquashfs -help lists "Compressors available and compressor specific options:" then "\tNAME" lines.
    const mkComps = new Set<string>();
    const section = mkHelp.split('Compressors available and compressor specific options:')[1] ?? '';
    for (const m of section.matchAll(/^\t([a-z0-9]+)(?: \(default\))?$/gm)) mkComps.add(m[1]!);
    // lzma has no options, so the help lists it only when built in, as a bare line too.
    const genComps: string[] = [];
    const genSection = genHelp.split('Available SquashFS block compressors:')[1] ?? '';
    for (const m of genSection.matchAll(/^\t([a-z0-9]+)/gm)) genComps.push(m[1]!);
    const options = new Set<string>();
    for (const o of ['-tailends', '-no-tailends', '-all-root', '-no-exports', '-no-xattrs', '-always-use-fragments', '-no-fragments']) {
      if (new RegExp(`^${o}\\b`, 'm').test(mkHelp)) options.add(o);
    }
    return {
      mksquashfs: mk !== undefined,
      unsquashfs: un !== undefined,
      gensquashfs: gen !== undefined,
      rdsquashfs: rd !== undefined,
      mksquashfsCompressors: [...mkComps],
      gensquashfsCompressors: genComps,
      mksquashfsOptions: options,
    };
  })();
  return supportP;
}

/** Whether mksquashfs accepts `-comp NAME` (lzma is often built in without being listed with options). */
export async function mksquashfsHasCompressor(comp: string, scratchDir: string): Promise<boolean> {
  const src = path.join(scratchDir, `probe-src-${comp}`);
  await fsp.mkdir(src, { recursive: true });
  const r = await run('mksquashfs', [src, path.join(scratchDir, `probe-${comp}.sqfs`), '-comp', comp, '-noappend', '-quiet', '-no-progress']);
  return r.code === 0;
}

// ---------------------------------------------------------------------------
// Reference readers
// ---------------------------------------------------------------------------

/** `unsquashfs -d DEST -no-progress IMAGE` (as root it restores owners and xattrs); must exit 0 with no stderr. */
export async function unsquashfsExtract(image: string, dest: string, opts: { xattrs?: boolean } = {}): Promise<void> {
  const args = ['-d', dest, '-no-progress', ...(opts.xattrs === false ? ['-no-xattrs'] : []), image];
  const r = await run('unsquashfs', args);
  if (r.code !== 0 || r.stderr.length > 0) {
    throw new Error(`unsquashfs ${args.join(' ')} -> exit ${r.code}\n${r.stderr.toString().slice(0, 4000)}`);
  }
}

/**
 * `rdsquashfs -u / -p DEST -C -O -T -X -q IMAGE`, then the root's mode, owner
 * and mtime from `rdsquashfs -s /` (rdsquashfs leaves DEST's own alone).
 */
export async function rdsquashfsExtract(image: string, dest: string, opts: { xattrs?: boolean } = {}): Promise<void> {
  await fsp.mkdir(dest, { recursive: true });
  await runOk('rdsquashfs', ['-u', '/', '-p', dest, '-C', '-O', '-T', ...(opts.xattrs === false ? [] : ['-X']), '-q', image]);
  const stat = (await runOk('rdsquashfs', ['-s', '/', image])).stdout.toString();
  const mode = /^Access: ([0-7]+)$/m.exec(stat);
  const uid = /^UID: (\d+)/m.exec(stat);
  const gid = /^GID: (\d+)/m.exec(stat);
  const mtime = /^Last modified: .*\((\d+)\)$/m.exec(stat);
  if (!mode || !uid || !gid || !mtime) throw new Error(`cannot parse rdsquashfs -s / of ${image}:\n${stat}`);
  await fsp.chown(dest, Number(uid[1]), Number(gid[1]));
  await fsp.chmod(dest, parseInt(mode[1]!, 8));
  await fsp.utimes(dest, Number(mtime[1]), Number(mtime[1]));
}

export async function referenceExtract(ref: ReferenceImage, dest: string, opts: { xattrs?: boolean } = {}): Promise<void> {
  if (ref.extractor === 'rdsquashfs') await rdsquashfsExtract(ref.image, dest, opts);
  else await unsquashfsExtract(ref.image, dest, opts);
}

const LISTING_LINE = /^(\S{10} \d+\/\d+ +(?:\d+|-?\d+, *-?\d+) \d{4}-\d\d-\d\d \d\d:\d\d )squashfs-root(\/.*)?$/s;

/**
 * Maps `unsquashfs -lln` paths to the form `sqfs ls -lR` prints: "/" for the
 * root, "/a/b" below it (instead of "squashfs-root", "squashfs-root/a/b").
 * Lines are byte strings (latin1). A name holding "\n" continues on the next
 * line, which is left as it is.
 */
export function mapUnsquashfsPaths(lines: string[]): string[] {
  return lines.map((line) => {
    const m = LISTING_LINE.exec(line);
    return m ? `${m[1]}${m[2] ?? '/'}` : line;
  });
}

/** Splits raw output into byte-string lines (latin1), dropping the final empty one. */
export function outputLines(out: Buffer): string[] {
  const lines = out.toString('latin1').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** `TZ=UTC unsquashfs -lln IMAGE`, paths mapped to "/a/b" form, as byte-string lines. */
export async function unsquashfsListing(image: string): Promise<string[]> {
  const r = await run('unsquashfs', ['-lln', image], { env: { ...process.env, TZ: 'UTC' } });
  if (r.code !== 0 || r.stderr.length > 0) throw new Error(`unsquashfs -lln ${image} -> exit ${r.code}\n${r.stderr.toString()}`);
  return mapUnsquashfsPaths(outputLines(r.stdout));
}

/**
 * Checks that every path line comes after its parent directory's line (the
 * "parents before children" promise of `ls -R`). Returns the offenders.
 */
export function parentsFirstViolations(lines: string[]): string[] {
  const seen = new Set<string>();
  const bad: string[] = [];
  for (const line of lines) {
    const m = /^\S{10} \d+\/\d+ +(?:\d+|-?\d+, *-?\d+) \d{4}-\d\d-\d\d \d\d:\d\d (\/.*?)(?: -> .*)?$/s.exec(line);
    if (!m) continue;
    const p = m[1]!;
    if (p !== '/') {
      const parent = p.slice(0, p.lastIndexOf('/')) || '/';
      // Names with " -> " or newlines make this check ambiguous; only judge clean paths.
      if (!seen.has(parent) && !p.includes(' -> ')) bad.push(`${p} listed before its parent ${parent}`);
    }
    seen.add(p);
  }
  return bad;
}

// ---------------------------------------------------------------------------
// The sqfs CLI as a separate process (byte-exact stdout)
// ---------------------------------------------------------------------------

/**
 * Bundles src/cli/bin.ts (the current sources, not dist/) into
 * `outDir/sqfs.mjs`, so tests run the CLI as a process and see its stdout
 * as bytes, whether or not dist/ is up to date.
 */
export function bundleCli(outDir: string): Promise<string> {
  return bundleForNode(path.join(repoRoot, 'src/cli/bin.ts'), path.join(outDir, 'sqfs.mjs'));
}

/** Runs the bundled CLI with TZ=UTC. */
export function runCli(script: string, args: string[], timeoutMs = 120_000): Promise<RunResult> {
  return run(process.execPath, [script, ...args], { env: { ...process.env, TZ: 'UTC' }, timeoutMs });
}

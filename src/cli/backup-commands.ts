import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseHandle, isBackupId, type DirectoryBackup } from '../backup/handle.js';
import { chainOf } from '../backup/chain.js';
import { baseOf, chainsOf, deleteBackup, listBackups, openBackup, pruneExpiredBackups } from '../backup/manage.js';
import { BackupError } from '../errors.js';
import type { BackupProgress } from '../backup/create.js';
import { compactBackup, createBackup, defaultStoreDirectory, restoreBackup } from '../node/backup.js';
import { loadNodeCodecs } from '../node/codecs.js';
import { localStore } from '../node/local-store.js';
import type { BackupImage } from '../backup/chain-image.js';
import type { RequestPolicyOptions } from '../uploader/policy.js';
import type { ObjectStore } from '../uploader/store.js';
import { parseInteger, type CliContext } from './main.js';
import { formatBytes, ProgressBar, ProgressLine, summaryLine, writingState, type ProgressState } from './progress.js';
import { s3StoreFrom, STORE_OPTIONS, type StoreValues } from './store-options.js';


/**
 * The store a --store URL names: file:///path, s3://bucket/prefix (with
 * --endpoint or SQFS_S3_ENDPOINT; credentials from the environment, or a
 * presign service with --presign-url and SQFS_PRESIGN_TOKEN: see
 * s3StoreFrom), or by default $SQFS_STORE, else the local data directory
 * (said on first use).
 */
export function storeFrom(ctx: CliContext, values: StoreValues): ObjectStore {
  const url = values.store ?? process.env.SQFS_STORE;
  const policy = policyFrom(ctx, values);
  const s3 = s3StoreFrom(ctx, values, url, policy);
  if (s3) return s3;
  if (!url) {
    const dir = defaultStoreDirectory();
    if (!existsSync(dir)) ctx.err(`sqfs: using the local store ${dir} (set --store or SQFS_STORE to choose another)\n`);
    return localStore(dir, { policy });
  }
  if (url.startsWith('file://')) return localStore(fileURLToPath(url), { policy });
  if (isAbsolute(url)) return localStore(url, { policy });
  throw ctx.usage(`--store takes file:///path or s3://bucket/prefix, not "${url}"`);
}

/** Says on stderr what is wrong with the store itself (a local store others can read). createBackup puts it in the handle instead. */
async function auditStore(ctx: CliContext, store: ObjectStore, command?: string): Promise<void> {
  for (const warning of (await store.audit?.()) ?? []) ctx.err(`sqfs${command ? ` ${command}` : ''}: warning: ${warning}\n`);
}

/** --request-timeout SECONDS: how long a store request may make no progress before it is abandoned and tried again. */
function policyFrom(ctx: CliContext, values: StoreValues): RequestPolicyOptions | undefined {
  const text = values['request-timeout'];
  if (text === undefined) return undefined;
  const seconds = Number(text);
  if (!(seconds > 0) || !Number.isFinite(seconds)) throw ctx.usage(`--request-timeout takes a positive number of seconds, got "${text}"`);
  return { requestTimeout: seconds * 1000 };
}

/** A handle from a JSON file, or an id. */
function handleFrom(text: string): DirectoryBackup | string {
  if (isBackupId(text) && !existsSync(text)) return text;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(text, 'utf8'));
  } catch (cause) {
    throw new BackupError('INVALID_BACKUP_CONFIG', `${text} is neither a backup id nor a readable handle file: ${(cause as Error).message}`, { cause });
  }
  return parseHandle(json, text);
}

/** --ttl SECONDS: a positive number, or undefined when not given. */
function ttlFrom(ctx: CliContext, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ttl = Number(text);
  if (!(ttl > 0)) throw ctx.usage(`--ttl takes a positive number of seconds, got "${text}"`);
  return ttl;
}

/** The progress line of a backup being written (by backup, and by backups compact). */
function showWriting(progress: ProgressLine, verb: string): (p: BackupProgress) => void {
  return (p) =>
    progress.update(() =>
      p.phase === 'walk'
        ? `scanning: ${p.entries} entries`
        : `${verb}: ${formatBytes(p.bytesRead)} / ${formatBytes(p.totalBytes)} read, ${formatBytes(p.bytesUploaded)} stored`,
    );
}

/**
 * sqfs backup <dir> [--store URL] [--name N] [--ttl S] [--comp zstd|gzip|lz4|xz] [--exclude P]... [--gitignore]
 *   [--incremental | --base ID] [--max-chain N] [--compare content] [--checksums]
 */
export async function backup(ctx: CliContext): Promise<number> {
  const { values, positionals } = ctx.parse({
    ...STORE_OPTIONS,
    name: { type: 'string' },
    ttl: { type: 'string' },
    comp: { type: 'string' },
    level: { type: 'string' },
    exclude: { type: 'string', multiple: true },
    gitignore: { type: 'boolean' },
    incremental: { type: 'boolean' },
    base: { type: 'string' },
    'max-chain': { type: 'string' },
    compare: { type: 'string' },
    checksums: { type: 'boolean' },
  });
  if (positionals.length !== 1) throw ctx.usage('backup takes <dir>');
  const compare = values.compare;
  if (compare !== undefined && compare !== 'metadata' && compare !== 'content') throw ctx.usage(`--compare takes metadata or content, got "${compare}"`);
  if (values.incremental && values.base !== undefined) throw ctx.usage('--incremental and --base ID are one or the other');
  const maxChain = parseInteger(values['max-chain'], '--max-chain');
  if (maxChain !== undefined && !values.incremental && values.base === undefined) throw ctx.usage('--max-chain goes with --incremental or --base ID');
  const base = values.incremental || values.base === 'latest' ? 'latest' : values.base === undefined ? undefined : handleFrom(values.base);
  const store = storeFrom(ctx, values);
  const ttl = ttlFrom(ctx, values.ttl);
  const comp = values.comp ?? 'zstd';
  if (comp !== 'zstd' && comp !== 'gzip' && comp !== 'lz4' && comp !== 'xz') throw ctx.usage(`--comp takes zstd, gzip, lz4 or xz, got "${comp}"`);
  const progress = new ProgressBar(ctx.progress);
  const started = Date.now();
  const handle = await createBackup({
    dir: resolve(positionals[0]!),
    store,
    name: values.name,
    ttl,
    // Not given, the library's default (zstd; gzip where zstd cannot compress, said in the warnings).
    compression: values.comp === undefined && values.level === undefined
      ? undefined
      : { algorithm: comp, level: values.level === undefined ? undefined : Number(values.level) },
    excludes: values.exclude,
    gitignore: values.gitignore,
    base,
    maxChain,
    compare,
    checksums: values.checksums,
    onProgress: (p) => progress.update(writingState(p), p.phase === 'done'),
  }).finally(() => progress.done());
  for (const warning of handle.warnings) ctx.err(`sqfs backup: warning: ${warning}\n`);
  const parts = [`${handle.files} files`, ...(handle.bytes === undefined ? [] : [formatBytes(handle.bytes)]), `image ${formatBytes(handle.size)} (${handle.compression})`];
  ctx.err(summaryLine(`backup ${handle.id}${handle.base ? ` (a delta over ${handle.base})` : ''}`, parts, started));
  ctx.out(`${JSON.stringify(handle, null, 2)}\n`);
  return 0;
}

/** sqfs restore <handle.json | id> [dir] [--store URL] */
export async function restore(ctx: CliContext): Promise<number> {
  const { values, positionals } = ctx.parse({ ...STORE_OPTIONS });
  if (positionals.length < 1 || positionals.length > 2) throw ctx.usage('restore takes <handle.json | id> [dir]');
  const store = storeFrom(ctx, values);
  await auditStore(ctx, store, 'restore');
  const progress = new ProgressBar(ctx.progress);
  const started = Date.now();
  let downloaded = 0;
  let imageBytes = 0;
  let extracted = '';
  let files: { done: number; total?: number } = { done: 0 };
  const result = await restoreBackup(handleFrom(positionals[0]!), {
    store,
    dir: positionals[1] === undefined ? undefined : resolve(positionals[1]),
    onWarning: (message) => ctx.err(`sqfs restore: warning: ${message}\n`),
    onProgress: (p) => {
      imageBytes = p.total;
      if (p.phase === 'download') downloaded = p.bytes;
      else {
        extracted = `${p.entries ?? 0} entries, ${formatBytes(p.bytes)} written`;
        files = { done: p.fileBytes ?? p.bytes, total: p.fileTotal };
      }
      // Files are extracted while the image downloads: its bar first, then the files' own (their bytes, of the handles' record).
      const state: ProgressState = downloaded < p.total
        ? { phase: 'download', done: downloaded, total: p.total, detail: extracted }
        : { phase: 'extract', done: files.done, total: files.total, detail: extracted };
      progress.update(state);
    },
  }).finally(() => progress.done());
  const parts = [`${result.files} files`, formatBytes(result.bytes), `image ${formatBytes(imageBytes)}`];
  ctx.err(summaryLine(`restored ${result.dir}`, parts, started));
  return 0;
}

/** Where a backup sits in its chain (its group of chainsOf): "full", or "delta k/n over BASE", n the deltas of the longest chain through it. */
function position(group: DirectoryBackup[], backup: DirectoryBackup): string {
  const depth = chainOf(backup).length - 1;
  if (depth === 0) return 'full';
  const deltas = Math.max(...group.filter((b) => chainOf(b).includes(backup.id)).map((b) => chainOf(b).length - 1));
  const base = baseOf(backup);
  return `delta ${depth}/${deltas} over ${base}${group.some((b) => b.id === base) ? '' : ' (missing)'}`;
}

/**
 * sqfs backups list [--json] | delete <id> [--dependants] | prune | compact <id | handle.json> [--name N] [--ttl S]
 *   [--no-reuse-base] [--store URL]
 */
export async function backups(ctx: CliContext): Promise<number> {
  const { values, positionals } = ctx.parse({
    ...STORE_OPTIONS,
    json: { type: 'boolean' },
    dependants: { type: 'boolean' },
    name: { type: 'string' },
    ttl: { type: 'string' },
    'no-reuse-base': { type: 'boolean' },
  });
  const [action, id] = positionals;
  if (values.dependants && action !== 'delete') throw ctx.usage('--dependants goes with backups delete <id>');
  if ((values.name !== undefined || values.ttl !== undefined || values['no-reuse-base']) && action !== 'compact') {
    throw ctx.usage('--name, --ttl and --no-reuse-base go with backups compact <id>');
  }
  if (action === 'compact') {
    if (id === undefined || positionals.length !== 2) throw ctx.usage('backups compact takes <id | handle.json>');
    const ttl = ttlFrom(ctx, values.ttl);
    return compact(ctx, storeFrom(ctx, values), handleFrom(id), { name: values.name, ttl, ...(values['no-reuse-base'] && { reuseBase: false }) });
  }
  const store = storeFrom(ctx, values);
  await auditStore(ctx, store, 'backups');
  if (action === 'list' && positionals.length === 1) {
    const all = await listBackups({ store });
    if (values.json) ctx.out(`${JSON.stringify(all.map((b) => ({ ...b, chain: chainOf(b) })), null, 2)}\n`);
    else {
      const now = Date.now();
      for (const group of chainsOf(all)) {
        for (const b of group) {
          const state = now > Date.parse(b.expiresAt) ? 'expired' : `expires ${b.expiresAt}`;
          const indent = '  '.repeat(chainOf(b).length - 1);
          ctx.out(`${indent}${b.id}  ${b.createdAt}  ${formatBytes(b.size).padStart(10)}  ${state}  ${position(group, b)}  ${b.name}  (${b.dir})\n`);
        }
      }
    }
    return 0;
  }
  if (action === 'delete' && id !== undefined && positionals.length === 2) {
    for (const deleted of await deleteBackup(id, { store, dependants: values.dependants })) ctx.err(`deleted ${deleted}\n`);
    return 0;
  }
  if (action === 'prune' && positionals.length === 1) {
    let kept = 0;
    const gone = await pruneExpiredBackups({
      store,
      onKept: (b, reason) => {
        kept++;
        ctx.err(`kept ${b.id} (expired ${b.expiresAt}): ${reason}\n`);
      },
    });
    ctx.err(`pruned ${gone.length} expired backup${gone.length === 1 ? '' : 's'}${kept > 0 ? `, kept ${kept} that live backups need` : ''}\n`);
    return 0;
  }
  throw ctx.usage('backups takes list, delete <id> [--dependants], prune or compact <id>');
}

/**
 * sqfs backups compact <id | handle.json> [--name N] [--ttl S]: one full
 * backup equal to the backup's chain, its handle printed as sqfs backup
 * prints one; the chain stays. The store's own warnings come in the handle.
 */
async function compact(ctx: CliContext, store: ObjectStore, backup: DirectoryBackup | string, options: { name?: string; ttl?: number; reuseBase?: boolean }): Promise<number> {
  const progress = new ProgressLine(ctx.progress);
  const handle = await compactBackup(backup, {
    store,
    ...options,
    onProgress: showWriting(progress, 'compacting'),
  }).finally(() => progress.done());
  for (const warning of handle.warnings) ctx.err(`sqfs backups: warning: ${warning}\n`);
  ctx.out(`${JSON.stringify(handle, null, 2)}\n`);
  return 0;
}

/** For ls and cat: a backup id (not a file) opens the stored backup by range. */
export async function openBackupById(ctx: CliContext, id: string, values: StoreValues): Promise<BackupImage> {
  const store = storeFrom(ctx, values);
  await auditStore(ctx, store);
  return openBackup(id, { store, codecs: await loadNodeCodecs() });
}

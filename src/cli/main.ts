import { inspect, parseArgs, type ParseArgsConfig } from 'node:util';
import { version } from '../../package.json';
import { BackupError, SquashfsError } from '../errors.js';
import { StoreError } from '../uploader/store.js';

export interface CliIo {
  stdout?: (text: string) => void;
  /** Raw bytes to stdout (sqfs cat); default process.stdout with backpressure. */
  stdoutBytes?: (bytes: Uint8Array) => Promise<void>;
  stderr?: (text: string) => void;
  /** Where progress goes; shown only when it is a TTY. Default process.stderr. */
  progress?: { isTTY?: boolean; write(text: string): unknown };
}

const USAGE = `usage: sqfs <command> [options]    (sqfs --version: the version)

commands:
  pack <dir> <image>   make a SquashFS image of a directory
      --comp gzip|zstd|lz4|xz  compressor (default gzip; lzma and lzo images can be read, not made)
      --level N                compression level (gzip 1-9, default 9; zstd 1-22, default 15; lz4 1-2 plain,
                               default 1, 3-12 high compression as mksquashfs -Xhc; xz preset 0-9, default 6)
      --xz-dict-size SIZE      xz dictionary: bytes, K, M or a percentage of the block size (default 100%)
      --xz-bcj F,F             xz filters to try on each block: x86,powerpc,ia64,arm,armthumb,sparc,arm64
      --block-size N           data block size, 4K..1M (default 128K; K and M suffixes)
      --no-fragments           do not pack small files and tails into fragments
      --always-use-fragments   also pack the tails of large files into fragments
      --all-root               make every owner root (0:0)
      --mtime N                image time in seconds (default SOURCE_DATE_EPOCH or now)
      --exclude PATTERN        leave out entries matching a gitignore-style pattern (repeatable)
      --no-xattrs              do not store extended attributes
      --processors N           compression threads (default: the available cores; 0: none)
      --private                make the image readable by its owner only (0600; default 0644 under the umask)
  ls <image> [path] [-l] [-R]   list a directory (-l: like unsquashfs -lln, -R: recursively)
  cat <image> <path>            write a file's contents to stdout
  unpack <image> <dir> [--force]   extract everything (into a new directory, swapped in at the end)
  info <image> [--json]         superblock, compressor and counts
  backup <dir> [--store URL] [--name N] [--ttl SECONDS] [--comp zstd|gzip|lz4|xz] [--level N] [--exclude P]... [--gitignore]
         [--incremental | --base ID] [--max-chain N] [--compare metadata|content] [--checksums]
                                back up a directory into a store; prints the handle (JSON)
      --incremental            a delta (only what changed) over the newest live backup of the directory
      --base ID                a delta over that backup (an id or a handle file; latest: as --incremental)
      --max-chain N            deltas a chain may have (default 8); one more makes a full backup instead
      --checksums              also store every file's SHA-256 beside the image (<id>.sha256, sha256sum format)
      --compare content        a delta also hashes files whose size and time match, against the chain's checksums
                                (every layer made with --checksums; --compare content records them too)
  restore <handle.json | id> [dir] [--store URL]
                                restore a backup (into its own directory by default; replaces the contents)
                                while it downloads, by parallel ranged GETs
  backups list [--json] | delete <id> [--dependants] | prune   [--store URL]
                                list (each delta indented under the backup it is over), delete, or delete the
                                expired backups of a store. A base stays while a live delta needs it: prune keeps
                                it and says why; delete refuses a base unless --dependants (deletes its deltas too)
  backups compact <id | handle.json> [--name N] [--ttl SECONDS] [--no-reuse-base] [--store URL]
                                write one full backup equal to a delta's chain (the chain stays); prints its
                                handle (JSON). Blocks are copied as stored where compressor and block size agree
      --name N, --ttl SECONDS  default: the backup's name, and the time it has left (else 3 days)
  serve [<image.sqfs>] [--store URL] [--port N] [--host 127.0.0.1]
                                a web page to browse, download (files, directories as .tar), delete, prune and
                                restore the store's backups (or browse one image); prints its URL with a token

  ls and cat also take a backup id in place of <image> (read by range from the store).
  --store: file:///path, or s3://bucket/prefix with --endpoint URL (or SQFS_S3_ENDPOINT) and
  AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or R2_*); default $SQFS_STORE, else a local folder.
  --presign-url URL (with an s3:// store): every URL comes from a presign service (the Worker
  holding the bucket keys), with the token in SQFS_PRESIGN_TOKEN; no bucket credentials needed.
  --request-timeout SECONDS (backup, restore, backups, ls, cat): a store request that makes no
  progress for this long is abandoned and tried again (default 30). Failed requests are retried
  (5xx, 429, network errors) with backoff; SQFS_DEBUG=1 prints a failure's stack.

exit codes: 0 ok, 1 bad image, not found or failure, 2 usage
`;

class UsageError extends Error {}

/** The code a failure is printed with: ours, a store's, Node's errno, or ERROR. */
function errorCode(error: unknown): string {
  if (error instanceof SquashfsError || error instanceof BackupError) return error.code;
  if (error instanceof StoreError) return 'STORE_ERROR';
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(code) ? code : 'ERROR';
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** What a command gets: its arguments, output, and a way to say it was misused. */
export interface CliContext {
  parse<T extends Options>(options: T): ReturnType<typeof parse<T>>;
  usage(message: string): Error;
  out(text: string): void;
  outBytes(bytes: Uint8Array): Promise<void>;
  err(text: string): void;
  progress: CliIo['progress'];
}

export function parseSize(text: string, option: string): number {
  const match = /^(\d+)([kKmM]?)$/.exec(text);
  if (!match) throw new UsageError(`${option} takes a number, got "${text}"`);
  const unit = match[2]!.toLowerCase();
  return Number(match[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 * 1024 : 1);
}

export function parseInteger(text: string | undefined, option: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new UsageError(`${option} takes a whole number, got "${text}"`);
  return Number(text);
}

function parse<T extends Options>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true as const });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

type Command = (ctx: CliContext) => Promise<number>;

/** Each command's code is loaded when it runs: `sqfs info` need not load the uploader, nor `unpack` the writer. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  pack: async () => (await import('./pack-command.js')).pack,
  ls: async () => (await import('./read-commands.js')).ls,
  cat: async () => (await import('./read-commands.js')).cat,
  unpack: async () => (await import('./read-commands.js')).unpack,
  info: async () => (await import('./read-commands.js')).info,
  backup: async () => (await import('./backup-commands.js')).backup,
  restore: async () => (await import('./backup-commands.js')).restore,
  backups: async () => (await import('./backup-commands.js')).backups,
  serve: async () => (await import('./serve-command.js')).serve,
};

function writeStdout(bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(bytes, (error) => (error ? reject(error) : resolve()));
  });
}

/** Runs the CLI; resolves the exit code (0 ok, 1 failure, 2 usage). */
export async function main(argv: string[], io: CliIo = {}): Promise<number> {
  const full: Required<CliIo> = {
    stdout: io.stdout ?? ((text) => void process.stdout.write(text)),
    stdoutBytes: io.stdoutBytes ?? writeStdout,
    stderr: io.stderr ?? ((text) => void process.stderr.write(text)),
    progress: io.progress ?? process.stderr,
  };
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    full.stdout(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === '-V') {
    full.stdout(`sqfs ${version}\n`);
    return 0;
  }
  const load = COMMANDS[command];
  if (!load) {
    full.stderr(`sqfs: unknown command "${command}"\n${USAGE}`);
    return 2;
  }
  const ctx: CliContext = {
    parse: (options) => parse(rest, options),
    usage: (message) => new UsageError(message),
    out: full.stdout,
    outBytes: full.stdoutBytes,
    err: full.stderr,
    progress: full.progress,
  };
  try {
    return await (await load())(ctx);
  } catch (error) {
    if (error instanceof UsageError) {
      full.stderr(`sqfs ${command}: ${error.message}\n${USAGE}`);
      return 2;
    }
    const code = errorCode(error);
    const message = (error as Error)?.message ?? String(error);
    full.stderr(`sqfs ${command}: ${message} [${code}]\n`);
    if (process.env.SQFS_DEBUG === '1' && error instanceof Error) full.stderr(`${inspect(error)}\n`);
    return code === 'INVALID_OPTION' || code === 'INVALID_BACKUP_CONFIG' ? 2 : 1;
  }
}

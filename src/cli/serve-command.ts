import { existsSync, statSync } from 'node:fs';
import { BackupError } from '../errors.js';
import { isLoopback } from '../serve/auth.js';
import { serveBackups, type BackupServer } from '../serve/server.js';
import { storeFrom } from './backup-commands.js';
import { parseInteger, type CliContext } from './main.js';
import { STORE_OPTIONS } from './store-options.js';

/** Resolves on the first SIGINT or SIGTERM. */
function interrupted(): Promise<string> {
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve(signal);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/**
 * sqfs serve [<image.sqfs>] [--store URL] [--port N] [--host H]: a web
 * page over a store's backups (or one image file) until Ctrl-C. Prints the
 * URL to open, with its token, on stdout.
 */
export async function serve(ctx: CliContext): Promise<number> {
  const { values, positionals } = ctx.parse({ ...STORE_OPTIONS, port: { type: 'string' }, host: { type: 'string' } });
  if (positionals.length > 1) throw ctx.usage('serve takes at most one <image.sqfs>');
  const port = parseInteger(values.port, '--port') ?? 0;
  if (port > 65535) throw ctx.usage(`--port takes 0..65535, got ${port}`);
  const host = values.host ?? '127.0.0.1';
  const image = positionals[0];
  let server: BackupServer;
  let what: string;
  if (image !== undefined) {
    if (values.store !== undefined || values['presign-url'] !== undefined) throw ctx.usage('serve takes an image file or --store URL, not both');
    if (!existsSync(image) || !statSync(image).isFile()) throw new BackupError('BACKUP_NOT_FOUND', `${image}: no such image file`);
    what = image;
    server = await serveBackups({ image, host, port, onError: (error, request) => ctx.err(`sqfs serve: ${request}: ${(error as Error)?.message ?? error}\n`) });
  } else {
    const store = storeFrom(ctx, values);
    what = store.location;
    server = await serveBackups({ store, host, port, onError: (error, request) => ctx.err(`sqfs serve: ${request}: ${(error as Error)?.message ?? error}\n`) });
  }
  if (!isLoopback(host)) ctx.err(`sqfs serve: warning: listening on ${host}, not this machine's loopback: anyone who can reach it and has the URL can read, delete and restore these backups\n`);
  ctx.err(`sqfs serve: serving ${what}; open this URL (it holds the access token); Ctrl-C stops\n`);
  ctx.out(`${server.url}\n`);
  await interrupted();
  await server.close();
  return 0;
}

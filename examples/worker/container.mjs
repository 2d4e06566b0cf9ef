#!/usr/bin/env node
// The container's side of the example: backs up a directory, restores one,
// or lists the sandbox's backups, straight to and from the bucket through
// URLs the Worker presigns for it. It holds a capability token and no bucket
// credentials at all: every URL comes from the Worker's POST /presign, which
// signs only keys under sandboxes/<id>/.
//
//   node container.mjs backup <dir> [name]     prints the backup's handle (JSON)
//   node container.mjs restore <id> <dir>      restores a backup into <dir> (replacing what is there)
//   node container.mjs list                    prints the sandbox's backups (JSON)
//
// Its settings come from the environment, as a container gets them (the
// Worker's POST /sandboxes/<id>/token answers all of them but SANDBOX_ID):
//
//   SANDBOX_ID           the sandbox: its backups are under sandboxes/<SANDBOX_ID>/
//   SQFS_PRESIGN_TOKEN   the token (its "token")
//   SQFS_PRESIGN_URL     the Worker's presign route (its "presignUrl"), e.g. http://localhost:8787/presign
//   SQFS_S3_ENDPOINT     the bucket's S3 endpoint (its "endpoint"), https://<account id>.r2.cloudflarestorage.com
//   SQFS_BUCKET          the bucket's name (its "bucket")
import path from 'node:path';
import { createBackup, listBackups, remotePresigner, restoreBackup, s3Store } from 'squashfs-ts';

const USAGE = 'usage: node container.mjs backup <dir> [name] | restore <id> <dir> | list';

function setting(name) {
  const value = process.env[name];
  if (!value) throw Object.assign(new Error(`${name} is not set (${USAGE})`), { code: 'USAGE' });
  return value;
}

async function main([command, ...args]) {
  const sandbox = setting('SANDBOX_ID');
  const store = s3Store({
    endpoint: setting('SQFS_S3_ENDPOINT'),
    bucket: setting('SQFS_BUCKET'),
    prefix: `sandboxes/${sandbox}`,
    // No credentials: the Worker signs each request, if the token allows it.
    presigner: remotePresigner({ url: setting('SQFS_PRESIGN_URL'), token: setting('SQFS_PRESIGN_TOKEN') }),
  });
  if (command === 'backup' && args.length >= 1 && args.length <= 2) {
    const [dir, name = `sandbox ${sandbox}`] = args;
    return createBackup({ dir: path.resolve(dir), name, store });
  }
  if (command === 'restore' && args.length === 2) {
    const [id, dir] = args;
    return restoreBackup(id, { store, dir: path.resolve(dir) });
  }
  if (command === 'list' && args.length === 0) return listBackups({ store });
  throw Object.assign(new Error(USAGE), { code: 'USAGE' });
}

try {
  process.stdout.write(`${JSON.stringify(await main(process.argv.slice(2)), null, 2)}\n`);
} catch (error) {
  // One line: the code and the message (a refusal names the Worker's answer, e.g. "403 KEY_NOT_ALLOWED").
  process.stderr.write(`container: ${error.code ? `${error.code}: ` : ''}${error.message}\n`);
  process.exitCode = error.code === 'USAGE' ? 2 : 1;
}

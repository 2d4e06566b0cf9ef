// The "container" of test/presign-workerd.test.ts: a child node process with
// no bucket credentials in its environment, only SQFS_PRESIGN_TOKEN. It backs
// a directory up through the presign Worker, restores it, lists its backups,
// tries to step out of its prefix and to sign without the Worker, and prints
// what happened as one JSON line. Plain JavaScript over the built package
// (dist/node.js), so plain `node` runs it.
import { createBackup, listBackups, remotePresigner, restoreBackup, s3Store } from '../../dist/node.js';

const { presignUrl, endpoint, bucket, prefix, dir, restoreTo } = JSON.parse(process.argv[2]);
const token = process.env.SQFS_PRESIGN_TOKEN;
const failure = (error) => ({ message: error.message, code: error.code ?? error.details?.code, status: error.status ?? error.details?.status, cause: error.cause?.details });

const result = { credentialVariables: Object.keys(process.env).filter((name) => /^(AWS|R2)_/.test(name)) };

// Without the Worker there is nothing to sign with.
try {
  s3Store({ endpoint, bucket, prefix });
  result.withoutPresigner = 'made a store';
} catch (error) {
  result.withoutPresigner = failure(error);
}

const presigner = remotePresigner({ url: presignUrl, token });
const store = s3Store({ endpoint, bucket, prefix, presigner });
const backup = await createBackup({ dir, store, name: 'from the container', ttl: 3600 });
result.backup = backup;
result.restored = await restoreBackup(backup.id, { store, dir: restoreTo });
result.listed = (await listBackups({ store })).map((b) => b.id);

// Out of its prefix: another sandbox's key, by name and through "..".
for (const [name, attempt] of [
  ['other', () => s3Store({ endpoint, bucket, prefix: 'sandboxes/other', presigner }).put('x', new Uint8Array([1]))],
  ['dotdot', () => store.put('../other/x', new Uint8Array([1]))],
  ['root-list', () => listBackups({ store: s3Store({ endpoint, bucket, presigner }) })],
]) {
  try {
    await attempt();
    result[name] = 'allowed';
  } catch (error) {
    result[name] = failure(error);
  }
}

process.stdout.write(`${JSON.stringify(result)}\n`);

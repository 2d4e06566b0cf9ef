import fs from 'node:fs';
import { rename } from 'node:fs/promises';

/**
 * What Node cannot do itself: make fifos and device nodes (mkfifo, mknod)
 * and set xattrs (setfattr). Sockets are made by listening on a path.
 */
/** A tool's complaint, named once ("mknod: ..."), whether or not it names itself. */
const complaint = (command: string, stderr: string, fallback: string) => {
  const text = stderr.trim() || fallback;
  return new Error(text.startsWith(`${command}:`) ? text : `${command}: ${text}`);
};

/** Runs a tool (node:child_process is loaded on first use: most unpacks never need one). */
export async function runTool(command: string, args: (string | Buffer)[], input?: Buffer): Promise<void> {
  const { execFile, spawn } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    if (input === undefined) {
      execFile(command, args as string[], (error, _stdout, stderr) =>
        error ? reject(complaint(command, String(stderr), error.message)) : resolve(),
      );
      return;
    }
    const child = spawn(command, args as string[], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(complaint(command, stderr, `exit ${code}`))));
    child.stdin.end(input);
  });
}

export const makeFifo = (path: Buffer) => runTool('mkfifo', [path]);

export const makeDevice = (path: Buffer, type: 'b' | 'c', major: number, minor: number) =>
  runTool('mknod', [path, type, String(major), String(minor)]);

let sockets = 0;

/**
 * A unix socket file. Socket paths are limited to about 107 bytes, so it is
 * bound through the parent directory's descriptor (/proc/self/fd/N/name),
 * renamed into place, and the listener closed (the file stays).
 */
export async function makeSocket(parent: Buffer, path: Buffer): Promise<void> {
  const fd = fs.openSync(parent, 'r');
  try {
    const temporary = `/proc/self/fd/${fd}/.s${process.pid}-${sockets++}`;
    const server = (await import('node:net')).createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(temporary, resolve);
    });
    await rename(temporary, path);
    await new Promise((resolve) => server.close(resolve));
  } finally {
    fs.closeSync(fd);
  }
}

/** getfattr/setfattr quoting of a file name: octal escapes for control bytes, "\\" and bytes >= 0x80 kept. */
export function quoteFattrName(path: Buffer): string {
  let out = '';
  for (const byte of path) {
    if (byte < 0x20 || byte === 0x7f || byte === 0x5c || byte === 0x3d) out += `\\${byte.toString(8).padStart(3, '0')}`;
    else out += String.fromCharCode(byte);
  }
  return out;
}

/** Sets many files' xattrs with one `setfattr --restore` run. */
export async function restoreXattrs(entries: { path: Buffer; xattrs: { name: string; value: Uint8Array }[] }[]): Promise<void> {
  const lines: string[] = [];
  for (const { path, xattrs } of entries) {
    lines.push(`# file: ${quoteFattrName(path)}`);
    for (const { name, value } of xattrs) lines.push(`${name}=0s${Buffer.from(value).toString('base64')}`);
    lines.push('');
  }
  await runTool('setfattr', ['--restore=-'], Buffer.from(lines.join('\n') + '\n', 'latin1'));
}

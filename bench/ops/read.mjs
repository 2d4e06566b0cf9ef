// --op read: ranged single-file reads from a large image with the built library. The harness serves
// each input image on 127.0.0.1 (lib/range-server.mjs) and, for a handful of files, starts one fresh
// `node bench/read-client.mjs` per read, which opens the image with httpSource (dist/index.js) and
// reads the whole file. Reported: HTTP requests, bytes read (vs the image size), and milliseconds
// from opening the image to having the file (measured inside the client, so Node's start-up is not
// included). The same reads also run with Node's zlib instead of the portable codecs, and through
// fileSource (dist/node.js), so transport and decompression costs can be told apart
// (`--read-sources` to choose).
import { existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveFile } from '../lib/range-server.mjs';
import { shJoin } from '../lib/shell.mjs';
import { inputImages, describeInputs, planInputs } from './inputs.mjs';
import { timedRun, failureReason, indent, median, busyNote, int, markdownTable } from '../lib/harness.mjs';

const CLIENT = fileURLToPath(new URL('../read-client.mjs', import.meta.url));
const DIST = process.env.BENCH_OURS_DIST || fileURLToPath(new URL('../../dist/', import.meta.url));
const MiB = 2 ** 20;

/** The ways a file is read: what the client gets, and the column header of its ms. */
const SOURCES = {
  http: { http: true, codecs: 'default', column: 'ms http', label: 'httpSource + default codecs (dist/index.js; fflate for gzip)' },
  'http-node': { http: true, codecs: 'node', column: 'ms http + nodeCodecs', label: 'httpSource + nodeCodecs (zlib)' },
  file: { http: false, codecs: 'node', column: 'ms file', label: 'fileSource + nodeCodecs (dist/node.js, what `sqfs cat` uses)' },
};

/**
 * The files to read: --read-files, else a small file deep in the tree, a medium one (closest to
 * 2 MiB), the largest file (the 40 MiB log in the default corpus), and in the default corpus also the
 * incompressible 20 MiB blob and the mostly-holes sparse image.
 */
export function pickFiles(ctx) {
  const files = ctx.corpusEntries.filter((e) => e.type === 'file');
  const byPath = new Map(files.map((e) => [e.path, e]));
  if (ctx.opt['read-files']) {
    return ctx.opt['read-files'].split(',').map((p) => p.trim().replace(/^\/+/, '')).filter(Boolean).map((p) => {
      if (!byPath.has(p)) throw new Error(`--read-files: ${p} is not a regular file in the corpus`);
      return { role: 'chosen', entry: byPath.get(p) };
    });
  }
  const depth = (e) => e.path.split('/').length;
  const small = files.filter((e) => e.size >= 1024 && e.size <= 16 * 1024 && !e.path.startsWith('backup/')) // backup/ holds duplicates
    .sort((a, b) => depth(b) - depth(a) || (a.path < b.path ? -1 : 1))[0];
  const medium = files.filter((e) => !e.path.startsWith('data/edge/') && e.size > 64 * 1024)
    .sort((a, b) => Math.abs(Math.log(a.size / (2 * MiB))) - Math.abs(Math.log(b.size / (2 * MiB))) || (a.path < b.path ? -1 : 1))[0];
  const large = [...files].sort((a, b) => b.size - a.size || (a.path < b.path ? -1 : 1))[0];
  const picks = [
    small && { role: `small, depth ${depth(small)}`, entry: small },
    medium && { role: 'medium', entry: medium },
    large && { role: 'largest', entry: large },
    byPath.has('data/blobs/random.bin') && { role: 'random, incompressible', entry: byPath.get('data/blobs/random.bin') },
    byPath.has('data/disk/sparse.img') && { role: 'sparse, mostly holes', entry: byPath.get('data/disk/sparse.img') },
  ].filter(Boolean);
  const seen = new Set();
  return picks.filter((p) => !seen.has(p.entry.path) && seen.add(p.entry.path));
}

export function sources(ctx) {
  const list = (ctx.opt['read-sources'] ?? 'http,http-node,file').split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of list) if (!SOURCES[s]) throw new Error(`--read-sources: unknown source ${s} (${Object.keys(SOURCES).join(', ')})`);
  if (!list.length) throw new Error('--read-sources: none given');
  return [...new Set(list)];
}

const clientArgv = (source, target, path) => [process.execPath, CLIENT, SOURCES[source].http ? '--url' : '--file', target, '--path', `/${path}`, '--codecs', SOURCES[source].codecs];

export function dryRunRead(ctx) {
  const lines = planInputs(ctx).map((p) => p.status === 'pending' ? `make image (${p.name}): ${p.commandLine}` : `image ${p.name}: ${p.reason}`);
  for (const f of pickFiles(ctx)) {
    for (const src of sources(ctx)) lines.push(`read ${f.role}, ${src}: ${shJoin(clientArgv(src, SOURCES[src].http ? 'http://127.0.0.1:PORT/image.sqfs' : '<image>', f.entry.path))}`);
  }
  return lines;
}

/** Long paths shortened for the table (the JSON and the commands have them in full). */
const shortPath = (p) => { const n = p.split('/'); return p.length > 60 && n.length > 5 ? [...n.slice(0, 2), '…', ...n.slice(-2)].join('/') : p; };
/** bytes read / file size: 0.24×, 1.00×, 70,975× (small files cost whole metadata and fragment blocks). */
const times = (x) => (Number.isFinite(x) ? `${x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(2)}×` : '—');
const pct = (x) => (Number.isFinite(x) ? `${(x * 100).toFixed(x < 0.001 ? 4 : x < 0.1 ? 3 : 1)} %` : '—');
const ms = (x) => (Number.isFinite(x) ? (x < 100 ? x.toFixed(1) : x.toFixed(0)) : '—');

export async function runRead(ctx) {
  const { runs, warmups, timeoutSec, waitIdleSec } = ctx;
  const srcs = sources(ctx);
  const picks = pickFiles(ctx);
  const missing = ['index.js', ...(srcs.some((s) => SOURCES[s].codecs === 'node' || !SOURCES[s].http) ? ['node.js'] : [])].filter((f) => !existsSync(join(DIST, f)));
  console.error(`\n== read: input images (${ctx.imageMakers.join(', ')})`);
  const images = missing.length ? [] : await inputImages(ctx);
  const goodImages = images.filter((im) => im.status === 'ok');
  const want = new Map(picks.map((p) => [p.entry.path, createHash('sha256').update(readFileSync(join(ctx.corpusDir, p.entry.path))).digest('hex')]));

  const cases = [];
  for (const im of goodImages) for (const p of picks) for (const src of srcs) {
    cases.push({ image: im, pick: p, source: src, status: 'pending', samples: [], warmup: [], name: `${src} ${im.name}:${p.entry.path}` });
  }
  const servers = new Map();
  if (srcs.some((s) => SOURCES[s].http)) {
    for (const im of goodImages) {
      const server = await serveFile(im.file);
      servers.set(im.name, server);
      ctx.cleanups.push(() => server.close());
    }
  }

  async function runOnce(c, label) {
    const http = SOURCES[c.source].http;
    const server = http ? servers.get(c.image.name) : null;
    const argv = clientArgv(c.source, http ? server.url : c.image.file, c.pick.entry.path);
    c.commandLine ??= shJoin(argv);
    const before = server && { ...server.stats };
    const { r, sample } = await timedRun({ argv }, { timeFile: join(ctx.tmpDir, 'read.time'), timeoutSec, waitIdleSec });
    const line = /^READ-RESULT (.*)$/m.exec(r.output)?.[1];
    let res = null;
    try { res = line ? JSON.parse(line) : null; } catch { /* below */ }
    if (!r.ok || !res) {
      c.status = 'failed';
      c.reason = r.ok ? 'no READ-RESULT line' : failureReason(r, timeoutSec);
      c.output = r.output;
      console.error(`  ${c.name} ${label}: FAILED (${c.reason})${r.output ? `\n${indent(r.output.slice(-3000))}` : ''}`);
      return null;
    }
    Object.assign(sample, { ms: res.ms, openMs: res.open.ms, readMs: res.readMs, requests: res.requests, bytesRead: res.bytesRead,
      openRequests: res.open.requests, openBytes: res.open.bytesRead, fileSize: res.fileSize, imageSize: res.imageSize, sha256: res.sha256 });
    if (server) sample.server = { requests: server.stats.requests - before.requests, bytesSent: server.stats.bytesSent - before.bytesSent };
    if (res.sha256 !== want.get(c.pick.entry.path)) {
      c.status = 'failed';
      c.reason = `wrong contents: sha256 ${res.sha256.slice(0, 12)}…, corpus file ${want.get(c.pick.entry.path).slice(0, 12)}…`;
      console.error(`  ${c.name} ${label}: FAILED (${c.reason})`);
      return null;
    }
    console.error(`  ${c.name.slice(0, 60).padEnd(60)} ${label.padEnd(9)} ${String(res.requests).padStart(4)} req ${res.bytesRead.toLocaleString('en-US').padStart(12)} B ${res.ms.toFixed(1).padStart(8)} ms` +
      (sample.otherCpuS > 0.5 ? `  (other processes: ${sample.otherCpuS.toFixed(1)} cpu s)` : ''));
    return sample;
  }

  const active = () => cases.filter((c) => c.status === 'pending');
  if (missing.length) console.error(`skip read: ${missing.map((f) => join(DIST, f)).join(', ')} not found - run \`npm run build\` first`);
  else {
    console.error(`\n== read (${srcs.join(', ')}): ${picks.length} files × ${goodImages.length} image(s); ${warmups} warm-up + ${runs} timed read(s) each, one fresh process per read`);
    for (let w = 1; w <= warmups; w++) for (const c of active()) { const smp = await runOnce(c, `warmup${warmups > 1 ? w : ''}`); if (smp) c.warmup.push(smp); }
    for (let i = 1; i <= runs; i++) for (const c of active()) { const smp = await runOnce(c, `run ${i}/${runs}`); if (smp) c.samples.push(smp); }
    for (const c of active()) c.status = 'ok';
  }
  for (const server of servers.values()) await server.close();

  const notes = [];
  for (const c of cases.filter((x) => x.status === 'ok')) {
    const col = (k) => c.samples.map((x) => x[k]);
    const one = (k) => { const v = new Set(col(k)); return v.size === 1 ? [...v][0] : median(col(k)); };
    c.varies = ['requests', 'bytesRead'].filter((k) => new Set(col(k)).size > 1);
    c.median = {
      ms: median(col('ms')), msMin: Math.min(...col('ms')), msMax: Math.max(...col('ms')), openMs: median(col('openMs')), readMs: median(col('readMs')),
      requests: one('requests'), bytesRead: one('bytesRead'), openRequests: one('openRequests'),
      wallS: median(col('wallS')), cpuS: median(col('cpuS')), maxRssKiB: median(col('maxRssKiB')),
    };
    const busy = busyNote(c.name, c.samples);
    if (busy) notes.push(busy);
    for (const s of c.samples.filter((x) => x.server)) {
      // The client's warm-up HEAD is one request more; httpSource's size probe (bytes=0-0) sends one
      // byte that bytesRead does not count.
      if (s.server.requests !== s.requests + 1 || s.server.bytesSent !== s.bytesRead + 1) {
        notes.push(`${c.name}: server saw ${s.server.requests} requests / ${s.server.bytesSent} bytes, client counted ${s.requests} / ${s.bytesRead}`);
        break;
      }
    }
  }

  // One row per (image, file); requests and bytes from the first source (http if it ran), one ms
  // column per source.
  const head = ['image by', 'file', 'file size', 'requests (open)', 'bytes read', 'bytes read / image size', 'bytes read / file size',
    ...srcs.map((s) => `${SOURCES[s].column} (median, min–max)`)];
  const rows = [head];
  for (const im of goodImages) {
    for (const p of picks) {
      const e = p.entry;
      const mine = cases.filter((c) => c.image === im && c.pick === p);
      const ok = mine.filter((c) => c.status === 'ok');
      const ref = ok[0];
      const row = [im.name, `\`${shortPath(e.path)}\` (${p.role})`, int(e.size)];
      if (ref) {
        const m = ref.median;
        row.push(`${int(m.requests)} (${int(m.openRequests)})${ref.varies.includes('requests') ? ' (varies)' : ''}`,
          `${int(m.bytesRead)}${ref.varies.includes('bytesRead') ? ' (varies)' : ''}`, pct(m.bytesRead / im.bytes), times(e.size ? m.bytesRead / e.size : NaN));
        for (const c of ok.slice(1)) {
          // Same blocks whatever the transport; only http has the size probe (one request more).
          const probe = (SOURCES[ref.source].http ? 1 : 0) - (SOURCES[c.source].http ? 1 : 0);
          if (c.median.bytesRead !== m.bytesRead || c.median.requests + probe !== m.requests) {
            notes.push(`${im.name}:${e.path}: ${c.source} read ${c.median.requests} requests / ${c.median.bytesRead} bytes, ${ref.source} ${m.requests} / ${m.bytesRead}`);
          }
        }
      } else row.push('', '', '', '');
      for (const c of mine) {
        if (c.status !== 'ok') { row.push(`*${c.status}*`); notes.push(`${c.name} ${c.status}: ${c.reason}`); continue; }
        row.push(`${ms(c.median.ms)} (${ms(c.median.msMin)}–${ms(c.median.msMax)})`);
      }
      rows.push(row);
    }
  }
  if (missing.length) notes.push(`read skipped: ${missing.map((f) => relative(process.cwd(), join(DIST, f))).join(', ')} not found - run \`npm run build\` first`);
  for (const im of images) if (im.status !== 'ok') notes.push(`image by ${im.name} ${im.status}: ${im.reason}`);
  if (cases.some((c) => c.status === 'ok')) {
    const http = srcs.some((s) => SOURCES[s].http);
    notes.push(`Every read returned the corpus file's exact bytes (sha256). requests and bytes read are ${SOURCES[srcs[0]].http ? 'HTTP GETs (`http`)' : 'positioned reads'}, for opening the image and reading the file; in parentheses those for opening alone (${http && SOURCES[srcs[0]].http ? 'the `bytes=0-0` size probe, ' : ''}superblock, root inode)${srcs.length > 1 ? '; the other sources read the same bytes (fileSource has no size probe: one request fewer)' : ''}.`);
    notes.push(`ms = open + read inside the client, median of ${runs} (min–max), one fresh process per read (cold library caches, warm page cache). Sources: ${srcs.map((s) => `\`${s}\` ${SOURCES[s].label}`).join('; ')}.${http ? ' Before its clock starts the HTTP client sends one uncounted HEAD request, so Node\'s lazy fetch (undici) initialisation (~100 ms) and the TCP connect are not in the ms.' : ''}`);
  }
  const imageSizes = goodImages.map((im) => `${im.name} ${im.bytes.toLocaleString('en-US')} B`).join(', ');

  return {
    op: 'read',
    title: `read · ${srcs.some((s) => SOURCES[s].http) ? 'HTTP Range on 127.0.0.1' : 'fileSource'}`,
    caption: `ranged single-file reads (${srcs.join(', ')}); image sizes: ${imageSizes}`,
    where: `image served by node:http on 127.0.0.1 from ${ctx.fsType(ctx.imageDir) ?? '?'}`,
    inputs: describeInputs(images),
    table: markdownTable(rows, ['l', 'l']),
    notes,
    tools: [`ours: ${DIST} (${srcs.map((s) => `${s}: ${SOURCES[s].label}`).join('; ')})`],
    commandsHeading: 'Commands as run (one fresh process per read, each under `/usr/bin/time`; PORT is the harness\'s server for that image):',
    commands: [
      ...srcs.map((src) => `${src}: \`${shJoin(clientArgv(src, SOURCES[src].http ? 'http://127.0.0.1:PORT/image.sqfs' : 'IMAGE', 'FILE')).replace(CLIENT, 'bench/read-client.mjs')}\``),
      `FILE: ${picks.map((p) => `\`/${p.entry.path}\``).join(', ')}; IMAGE: ${goodImages.map((im) => `\`${im.file}\``).join(', ')}`,
    ],
    failed: cases.some((c) => c.status === 'failed') || images.some((im) => im.status === 'failed'),
    results: {
      images: images.map(({ name, status, reason, file, bytes, command, fromPackOp }) => ({ name, status, reason: reason ?? null, file, bytes, command, fromPackOp })),
      files: picks.map((p) => ({ role: p.role, path: p.entry.path, size: p.entry.size, sha256: want.get(p.entry.path) })),
      sources: Object.fromEntries(srcs.map((s) => [s, SOURCES[s].label])),
      cases: cases.map((c) => ({ image: c.image.name, path: c.pick.entry.path, role: c.pick.role, source: c.source, status: c.status, reason: c.reason ?? null,
        command: c.commandLine ?? null, median: c.median ?? null, samples: c.samples, warmup: c.warmup, output: c.status === 'failed' ? c.output : undefined })),
    },
  };
}

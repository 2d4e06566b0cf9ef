// The link model of bench/link.mjs: a TCP proxy on 127.0.0.1 that paces the bytes it relays, so a
// client on this machine sees a network link instead of loopback. Protocol-agnostic (it never looks
// at HTTP): each connection's two directions are paced by token buckets:
//
//   - one bucket per direction shared by all connections (e.g. 25 MB/s up, 90 MB/s down), and
//   - one bucket per connection and direction (e.g. 16 MB/s), like a per-flow limit of a real path;
//   - optionally a fixed one-way delay (half the RTT) before a chunk may go.
//
// Up = client -> server (uploads), down = server -> client. Rates are bytes per second, 0 = no cap.
// Each bucket is GCRA ("virtual scheduling"): a chunk of n bytes may go at max(now, tat - tau), and
// then tat = max(tat, that time) + n / rate. tau (the burst tolerance, 10 ms of the rate) absorbs
// timer lateness, so a late wake-up does not lose link time, and a wait sleeps half of tau longer
// than it must, so a wake-up sends a few chunks at once. A connection first waits for its own
// bucket, then reserves the next slot of the shared one, so the shared link is handed out in the order
// connections become ready (no connection can hold shared time while its own cap holds it back).
// Chunks are at most 64 KiB, so pacing is smooth at every rate used here.
//
// Backpressure is passed on: a direction with more than HIGH_WATER bytes (plus what the delay holds) queued pauses its source
// socket, and a chunk waits for the destination socket to drain. Half-closes are relayed after the
// queue is empty. TCP handshakes are not delayed (only payload bytes are).
//
// The proxy runs in the harness's own process (the measured tools are separate processes) and keeps
// per-direction statistics for the run in progress (`mark()` starts a new one): bytes, first and last
// byte times, 100 ms bins, connections opened and the most open at once.
import net from 'node:net';
import { performance } from 'node:perf_hooks';

export const MAX_CHUNK = 64 * 1024;
const HIGH_WATER = 256 * 1024;
const MAX_WIRE = 16 * 1024 * 1024;
const TAU_MS = 10;
const BIN_MS = 100;

/** GCRA token bucket; times in ms (performance.now()), rate in bytes/s, 0 = unlimited. */
class Bucket {
  constructor(rate) {
    this.rate = rate;
    this.tat = 0;
    this.tau = rate ? Math.max(TAU_MS, (2 * MAX_CHUNK * 1000) / rate) : 0;
    // A wait lasts this much longer than needed, so that one wake-up sends several chunks: at 125 MB/s
    // a 64 KiB chunk takes 0.5 ms, less than a timer can sleep. The rate stays exact (the bucket's
    // clock runs ahead), only bursts grow to at most tau.
    this.slack = this.tau / 2;
  }
  /** Earliest time `now` or later at which the next chunk may go. */
  ready(now) { return this.rate ? Math.max(now, this.tat - this.tau) : now; }
  /** Books n bytes going at time `at`. */
  take(n, at) { if (this.rate) this.tat = Math.max(this.tat, at) + (n * 1000) / this.rate; }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freshStats(t0) {
  const dir = () => ({ bytes: 0, firstMs: null, lastMs: null, bins: [] });
  return { t0, up: dir(), down: dir(), connections: 0, maxOpen: 0 };
}

/**
 * @param {{target: {host: string, port: number}, up: number, down: number, perConn: number, rttMs?: number}} opts
 *        rates in bytes/s (0 = no cap); rttMs is split evenly over the two directions
 * @returns {Promise<{port: number, url: string, mark(): void, stats(): object, close(): Promise<void>}>}
 */
export async function startLinkProxy({ target, up, down, perConn, rttMs = 0 }) {
  const shared = { up: new Bucket(up), down: new Bucket(down) };
  const rates = { up, down };
  const oneWayMs = rttMs / 2;
  const sockets = new Set();
  let open = 0;
  let stats = freshStats(performance.now());

  function record(dir, n, at) {
    const s = stats[dir];
    const rel = at - stats.t0;
    if (s.firstMs === null) s.firstMs = rel;
    s.lastMs = rel;
    s.bytes += n;
    const bin = Math.max(0, Math.floor(rel / BIN_MS));
    while (s.bins.length <= bin) s.bins.push(0);
    s.bins[bin] += n;
  }

  /** Relays src -> dst for one direction of one connection, paced. */
  function pipe(src, dst, dir) {
    const own = new Bucket(perConn);
    // The queue also holds the bytes "on the wire" during the one-way delay (rate x delay), so the
    // pause threshold grows with it; otherwise it would cap a connection at HIGH_WATER / delay.
    const rate = Math.min(rates[dir] || Infinity, perConn || Infinity);
    const highWater = HIGH_WATER + Math.min(MAX_WIRE, 2 * (Number.isFinite(rate) ? rate : 1e9) * oneWayMs / 1000);
    const queue = []; // {buf, at}: chunks in arrival order
    let queued = 0;
    let ended = false;
    let pumping = false;

    src.on('data', (data) => {
      const at = performance.now();
      for (let i = 0; i < data.length; i += MAX_CHUNK) queue.push({ buf: data.subarray(i, i + MAX_CHUNK), at });
      queued += data.length;
      if (queued > highWater) src.pause();
      if (!pumping) pump();
    });
    src.on('end', () => { ended = true; if (!pumping) pump(); });

    async function pump() {
      pumping = true;
      try {
        while (queue.length) {
          if (dst.destroyed) return;
          const { buf, at } = queue[0];
          let now = performance.now();
          // Own cap and the one-way delay first; the shared slot is booked only once they allow it.
          if (at + oneWayMs > now + 0.05) { await sleep(at + oneWayMs - now); continue; }
          const ownReady = own.ready(now);
          if (ownReady > now + 0.05) { await sleep(ownReady - now + own.slack); continue; }
          const slot = shared[dir].ready(now);
          shared[dir].take(buf.length, slot);
          own.take(buf.length, slot);
          if (slot > now + 0.05) { await sleep(slot - now + shared[dir].slack); now = performance.now(); }
          queue.shift();
          queued -= buf.length;
          if (queued <= highWater / 2 && src.isPaused()) src.resume();
          if (dst.destroyed) return;
          record(dir, buf.length, now);
          if (!dst.write(buf)) await new Promise((r) => { dst.once('drain', r); dst.once('close', r); });
        }
        if (ended && !dst.destroyed) dst.end();
      } finally {
        pumping = false;
      }
    }
  }

  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    const upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
    for (const s of [client, upstream]) sockets.add(s);
    open++;
    stats.connections++;
    stats.maxOpen = Math.max(stats.maxOpen, open);
    let closed = 0;
    const onClose = () => { if (++closed === 2) open--; };
    // An error or a full close on either side tears down both (a reset on one side resets the other).
    const kill = () => { client.destroy(); upstream.destroy(); };
    for (const s of [client, upstream]) {
      s.on('error', kill);
      s.on('close', () => { sockets.delete(s); onClose(); kill(); });
    }
    pipe(client, upstream, 'up');
    pipe(upstream, client, 'down');
  });
  await new Promise((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', resolve); });
  const { port } = server.address();

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    /** Starts a new statistics period (call right before a measured command starts). */
    mark() { stats = freshStats(performance.now()); },
    /**
     * The period so far: per direction bytes, first/last payload byte (s after mark), the 100 ms bins
     * (bytes), and connections.
     */
    stats() {
      const dir = (d) => ({
        bytes: d.bytes,
        firstS: d.firstMs === null ? null : +(d.firstMs / 1000).toFixed(3),
        lastS: d.lastMs === null ? null : +(d.lastMs / 1000).toFixed(3),
        bins: d.bins.slice(),
      });
      return { up: dir(stats.up), down: dir(stats.down), connections: stats.connections, maxOpen: stats.maxOpen, binMs: BIN_MS };
    },
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

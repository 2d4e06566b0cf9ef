// Seeded, dependency-free PRNG used to make the benchmark corpus reproducible.
// sfc32 (Small Fast Counter) seeded from a string via cyrb128.

/** Hash a string to four 32-bit seeds (cyrb128). */
function cyrb128(str) {
  let h1 = 1779033703, h2 = 3144134277, h3 = 1013904242, h4 = 2773480762;
  for (let i = 0; i < str.length; i++) {
    const k = str.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4; h2 ^= h1; h3 ^= h1; h4 ^= h1;
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
}

export class Rng {
  /** @param {string} seed */
  constructor(seed) {
    [this.a, this.b, this.c, this.d] = cyrb128(String(seed));
    for (let i = 0; i < 16; i++) this.u32(); // mix
  }

  /** Next uniformly distributed unsigned 32-bit integer. */
  u32() {
    let { a, b, c, d } = this;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    this.a = a; this.b = b; this.c = c; this.d = d;
    return t >>> 0;
  }

  /** Float in [0, 1). */
  next() { return this.u32() / 4294967296; }

  /** Integer in [min, max] (inclusive). */
  int(min, max) { return min + Math.floor(this.next() * (max - min + 1)); }

  /** Random element of a non-empty array. */
  pick(arr) { return arr[Math.floor(this.next() * arr.length)]; }

  /** true with probability p. */
  chance(p) { return this.next() < p; }

  /** Fisher–Yates shuffle of a copy of arr. */
  shuffled(arr) {
    const out = arr.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  /** Fill a Buffer/Uint8Array with pseudo-random bytes (incompressible). */
  fill(buf) {
    const words = Math.floor(buf.length / 4);
    const view = new Uint32Array(buf.buffer, buf.byteOffset, (buf.byteOffset % 4 === 0) ? words : 0);
    if (view.length === words) {
      for (let i = 0; i < words; i++) view[i] = this.u32();
      for (let i = words * 4; i < buf.length; i++) buf[i] = this.u32() & 0xff;
    } else {
      for (let i = 0; i < buf.length; i++) buf[i] = this.u32() & 0xff;
    }
    return buf;
  }
}

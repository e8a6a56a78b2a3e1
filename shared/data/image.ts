/**
 * Reading a picture of a digit and turning it into an MNIST input.
 *
 * Decodes binary and plain PGM (P5, P2) and PNG (8- and 16-bit grey, grey +
 * alpha, RGB, RGBA and palette; not interlaced) from scratch: PNG's image
 * data is a zlib stream, which `DecompressionStream("deflate")` inflates.
 * Then `toMnist` prepares it the way MNIST was made: grey, ink bright on a
 * dark ground, the digit scaled to fit a 20x20 box (aspect kept) and placed
 * by its centre of mass in a 28x28 frame.
 *
 * @module
 */

import { UserError } from "../io/errors.ts";

/** A grey image, one byte per pixel, row-major. */
export interface GreyImage {
  width: number;
  height: number;
  pixels: Uint8Array;
}

/** Pictures larger than this many pixels are refused before allocation. */
const MAX_PIXELS = 64 * 1024 * 1024;

function bad(name: string, what: string): never {
  throw new UserError(`${name}: ${what}`);
}

function checkSize(name: string, w: number, h: number): void {
  if (!(w > 0 && h > 0)) bad(name, `image size ${w}x${h} is empty`);
  if (w * h > MAX_PIXELS) bad(name, `image size ${w}x${h} is too large`);
}

/** Decodes PGM (P5 binary or P2 plain), 8- or 16-bit. */
export function decodePgm(bytes: Uint8Array, name: string): GreyImage {
  let at = 2;
  const magic = String.fromCharCode(bytes[0] ?? 0, bytes[1] ?? 0);
  if (magic !== "P5" && magic !== "P2") bad(name, "not a PGM file (no P5/P2 magic)");
  const token = (): number => {
    for (;;) {
      while (at < bytes.length && /\s/.test(String.fromCharCode(bytes[at]))) at++;
      if (bytes[at] === 0x23) { // '#' comment to end of line
        while (at < bytes.length && bytes[at] !== 0x0a) at++;
        continue;
      }
      break;
    }
    const start = at;
    while (at < bytes.length && bytes[at] >= 0x30 && bytes[at] <= 0x39) at++;
    if (start === at) bad(name, "PGM header is truncated or not a number");
    return Number(new TextDecoder().decode(bytes.subarray(start, at)));
  };
  const width = token(), height = token(), maxval = token();
  checkSize(name, width, height);
  if (maxval < 1 || maxval > 65535) bad(name, `PGM maxval ${maxval} is out of range`);
  const n = width * height;
  const pixels = new Uint8Array(n);
  const scale = 255 / maxval;
  if (magic === "P5") {
    at++; // the single whitespace after maxval
    const bpp = maxval > 255 ? 2 : 1;
    if (bytes.length - at < n * bpp) {
      bad(name, `PGM data is truncated (${bytes.length - at} of ${n * bpp} bytes)`);
    }
    for (let i = 0; i < n; i++) {
      const v = bpp === 1 ? bytes[at + i] : (bytes[at + 2 * i] << 8) | bytes[at + 2 * i + 1];
      pixels[i] = Math.min(255, Math.round(v * scale));
    }
  } else {
    for (let i = 0; i < n; i++) pixels[i] = Math.min(255, Math.round(token() * scale));
  }
  return { width, height, pixels };
}

async function inflate(data: Uint8Array<ArrayBuffer>, name: string): Promise<Uint8Array> {
  try {
    const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch {
    bad(name, "PNG image data is corrupt (zlib stream does not inflate)");
  }
}

/** A PNG's header fields, its palette and its image data, from its chunks. */
interface PngChunks {
  width: number;
  height: number;
  depth: number;
  colour: number;
  interlace: number;
  palette?: Uint8Array;
  /** The IDAT chunks' bodies, joined. */
  data: Uint8Array<ArrayBuffer>;
}

/** Walks a PNG's chunks to IEND: IHDR's fields, PLTE, the IDATs joined. Bad files are one line. */
function readPngChunks(bytes: Uint8Array, name: string): PngChunks {
  const sig = [137, 80, 78, 71, 13, 10, 26, 10];
  if (bytes.length < 8 || sig.some((b, i) => bytes[i] !== b)) bad(name, "not a PNG file");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 8;
  let width = 0, height = 0, depth = 0, colour = -1, interlace = 0;
  let palette: Uint8Array | undefined;
  const idat: Uint8Array[] = [];
  let idatLen = 0;
  let sawEnd = false;
  while (at + 8 <= bytes.length) {
    const len = dv.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (at + 12 + len > bytes.length) bad(name, `PNG chunk ${type} is truncated`);
    const body = bytes.subarray(at + 8, at + 8 + len);
    if (type === "IHDR") {
      if (len < 13) bad(name, "PNG header chunk is too short");
      width = dv.getUint32(at + 8);
      height = dv.getUint32(at + 12);
      depth = body[8];
      colour = body[9];
      interlace = body[12];
    } else if (type === "PLTE") palette = body;
    else if (type === "IDAT") {
      idat.push(body);
      idatLen += len;
    } else if (type === "IEND") {
      sawEnd = true;
      break;
    }
    at += 12 + len;
  }
  if (colour < 0) bad(name, "PNG has no IHDR chunk");
  if (!sawEnd || idatLen === 0) bad(name, "PNG is truncated (no image data or no IEND)");
  const data = new Uint8Array(idatLen);
  let off = 0;
  for (const c of idat) {
    data.set(c, off);
    off += c.length;
  }
  return { width, height, depth, colour, interlace, palette, data };
}

/**
 * Undoes the per-row filters (PNG spec, section 9) of `raw` (each row a
 * filter byte then `stride` bytes): the rows [height][stride].
 */
function unfilterRows(
  raw: Uint8Array,
  height: number,
  stride: number,
  bpp: number,
  name: string,
): Uint8Array {
  const rows = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const cur = rows.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? rows.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? cur[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
      let p: number;
      switch (filter) {
        case 0:
          p = 0;
          break;
        case 1:
          p = a;
          break;
        case 2:
          p = b;
          break;
        case 3:
          p = (a + b) >> 1;
          break;
        case 4: {
          const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
          p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default:
          bad(name, `PNG row ${y} has unknown filter type ${filter}`);
      }
      cur[i] = (src[i] + p) & 0xff;
    }
  }
  return rows;
}

/** Decodes a PNG to grey: the luma of RGB, transparent parts taken as white. */
export async function decodePng(bytes: Uint8Array, name: string): Promise<GreyImage> {
  const { width, height, depth, colour, interlace, palette, data } = readPngChunks(bytes, name);
  checkSize(name, width, height);
  const channels = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[colour];
  if (!channels) bad(name, `PNG colour type ${colour} is not valid`);
  const okDepth = colour === 3 ? [1, 2, 4, 8] : colour === 0 ? [1, 2, 4, 8, 16] : [8, 16];
  if (!okDepth.includes(depth)) {
    bad(name, `PNG bit depth ${depth} is not valid for colour type ${colour}`);
  }
  if (interlace !== 0) bad(name, "interlaced PNGs are not supported; save it without interlacing");
  if (colour === 3 && !palette) bad(name, "palette PNG has no PLTE chunk");
  const raw = await inflate(data, name);
  const bitsPerPixel = channels * depth;
  const stride = Math.ceil((width * bitsPerPixel) / 8);
  const bpp = Math.max(1, bitsPerPixel >> 3); // bytes per pixel for filtering
  if (raw.length < height * (stride + 1)) bad(name, "PNG image data is shorter than its size says");
  const rows = unfilterRows(raw, height, stride, bpp, name);
  // Sample i of row y, scaled to 0..255.
  const maxSample = (1 << Math.min(depth, 8)) - 1;
  const sample = (y: number, i: number): number => {
    const row = y * stride;
    if (depth === 16) return rows[row + 2 * i];
    if (depth === 8) return rows[row + i];
    const bit = i * depth;
    const v = (rows[row + (bit >> 3)] >> (8 - depth - (bit & 7))) & maxSample;
    return colour === 3 ? v : Math.round(v * 255 / maxSample);
  };
  const pixels = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let r: number, g: number, b: number, alpha = 255;
      const s = x * channels;
      if (colour === 3) {
        const idx = sample(y, x);
        if (3 * idx + 2 >= palette!.length) bad(name, `PNG palette index ${idx} is out of range`);
        [r, g, b] = [palette![3 * idx], palette![3 * idx + 1], palette![3 * idx + 2]];
      } else if (channels <= 2) {
        r = g = b = sample(y, s);
        if (channels === 2) alpha = sample(y, s + 1);
      } else {
        r = sample(y, s), g = sample(y, s + 1), b = sample(y, s + 2);
        if (channels === 4) alpha = sample(y, s + 3);
      }
      const luma = 0.299 * r + 0.587 * g + 0.114 * b;
      // Transparent pixels count as background: composite over white, the
      // usual page colour (toMnist inverts light backgrounds).
      pixels[y * width + x] = Math.round((luma * alpha + 255 * (255 - alpha)) / 255);
    }
  }
  return { width, height, pixels };
}

/** Reads a PNG or PGM file by its content. */
export async function readImage(path: string): Promise<GreyImage> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new UserError(`${path}: cannot read (${(e as Error).message.split("\n")[0]})`);
  }
  if (bytes[0] === 137 && bytes[1] === 0x50) return decodePng(bytes, path);
  if (bytes[0] === 0x50 && (bytes[1] === 0x35 || bytes[1] === 0x32)) return decodePgm(bytes, path);
  throw new UserError(`${path}: not a PNG or PGM image`);
}

/**
 * An image as MNIST prepares its digits: 28x28 bytes, ink bright (255) on
 * black. A light background (judged by the border pixels) is inverted; the
 * ink's bounding box is scaled (area-averaging) to fit 20x20, keeping its
 * aspect, and pasted so its centre of mass sits at the frame's centre.
 */
export function toMnist(img: GreyImage): Uint8Array {
  const { width: w, height: h } = img;
  let border = 0, count = 0;
  for (let x = 0; x < w; x++) {
    border += img.pixels[x] + img.pixels[(h - 1) * w + x];
    count += 2;
  }
  for (let y = 0; y < h; y++) {
    border += img.pixels[y * w] + img.pixels[y * w + w - 1];
    count += 2;
  }
  const invert = border / count > 127;
  const ink = new Float64Array(w * h);
  for (let i = 0; i < ink.length; i++) ink[i] = invert ? 255 - img.pixels[i] : img.pixels[i];
  // Bounding box of the ink (pixels brighter than a faint threshold).
  let x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (ink[y * w + x] > 30) {
        x0 = Math.min(x0, x), x1 = Math.max(x1, x), y0 = Math.min(y0, y), y1 = Math.max(y1, y);
      }
    }
  }
  const out = new Uint8Array(28 * 28);
  if (x1 < 0) return out; // blank image
  const bw = x1 - x0 + 1, bh = y1 - y0 + 1;
  const scale = 20 / Math.max(bw, bh);
  const sw = Math.max(1, Math.round(bw * scale)), sh = Math.max(1, Math.round(bh * scale));
  // Area-average resampling of the box into sw x sh.
  const small = new Float64Array(sw * sh);
  for (let sy = 0; sy < sh; sy++) {
    for (let sx = 0; sx < sw; sx++) {
      const fx0 = x0 + sx * bw / sw, fx1 = x0 + (sx + 1) * bw / sw;
      const fy0 = y0 + sy * bh / sh, fy1 = y0 + (sy + 1) * bh / sh;
      let sum = 0, area = 0;
      for (let y = Math.floor(fy0); y < Math.ceil(fy1); y++) {
        const wy = Math.min(fy1, y + 1) - Math.max(fy0, y);
        for (let x = Math.floor(fx0); x < Math.ceil(fx1); x++) {
          const wx = Math.min(fx1, x + 1) - Math.max(fx0, x);
          sum += ink[y * w + x] * wx * wy;
          area += wx * wy;
        }
      }
      small[sy * sw + sx] = area > 0 ? sum / area : 0;
    }
  }
  let mass = 0, cx = 0, cy = 0;
  for (let y = 0; y < sh; y++) {
    for (let x = 0; x < sw; x++) {
      const v = small[y * sw + x];
      mass += v, cx += v * x, cy += v * y;
    }
  }
  const ox = Math.round(14 - (mass > 0 ? cx / mass : sw / 2) - 0.5);
  const oy = Math.round(14 - (mass > 0 ? cy / mass : sh / 2) - 0.5);
  for (let y = 0; y < sh; y++) {
    for (let x = 0; x < sw; x++) {
      const tx = x + ox, ty = y + oy;
      if (tx >= 0 && tx < 28 && ty >= 0 && ty < 28) {
        out[ty * 28 + tx] = Math.min(255, Math.round(small[y * sw + x]));
      }
    }
  }
  return out;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Encodes a grey image as an 8-bit greyscale PNG (filter 0 on every row). */
export function encodePng(img: GreyImage): Promise<Uint8Array> {
  const raw = new Uint8Array(img.height * (img.width + 1));
  for (let y = 0; y < img.height; y++) {
    raw.set(img.pixels.subarray(y * img.width, (y + 1) * img.width), y * (img.width + 1) + 1);
  }
  return encodePngRaw(img.width, img.height, 0, 8, raw);
}

/**
 * A PNG from already-filtered scanlines (each row: filter byte, then data)
 * with the given colour type and bit depth; `palette` for colour type 3.
 */
export async function encodePngRaw(
  width: number,
  height: number,
  colourType: number,
  bitDepth: number,
  filteredRows: Uint8Array<ArrayBuffer>,
  palette?: Uint8Array,
): Promise<Uint8Array> {
  const stream = new Blob([filteredRows]).stream().pipeThrough(new CompressionStream("deflate"));
  const idat = new Uint8Array(await new Response(stream).arrayBuffer());
  const chunk = (type: string, body: Uint8Array): Uint8Array => {
    const out = new Uint8Array(12 + body.length);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, body.length);
    out.set(new TextEncoder().encode(type), 4);
    out.set(body, 8);
    dv.setUint32(8 + body.length, crc32(out.subarray(4, 8 + body.length)));
    return out;
  };
  const ihdr = new Uint8Array(13);
  const hv = new DataView(ihdr.buffer);
  hv.setUint32(0, width);
  hv.setUint32(4, height);
  ihdr[8] = bitDepth;
  ihdr[9] = colourType;
  const parts = [
    new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk("IHDR", ihdr),
    ...(palette ? [chunk("PLTE", palette)] : []),
    chunk("IDAT", idat),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

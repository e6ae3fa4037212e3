import assert from "node:assert/strict";
import { encode } from "fast-png";
import { zlibSync } from "fflate";
import { crc32, decodePngInput, MAX_INPUT_PIXELS, PngInputError } from "./png_input.ts";
import { concat, grayPng, ihdr, pngChunk, SIGNATURE, writePng } from "./png_testing.ts";

const near = (a: ArrayLike<number>, b: number[], eps = 1e-6) =>
  assert.ok(b.every((v, i) => Math.abs(a[i] - v) <= eps), `${Array.from(a)} ≠ ${b}`);

Deno.test("crc32 matches the standard check value", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
});

Deno.test("every colour type and bit depth decodes to RGB in [0, 1]", () => {
  // 2×1 images: (black-ish, white-ish) in each format.
  const cases = [
    { depth: 1, colorType: 0, samples: [0, 1], want: [0, 0, 0, 1, 1, 1] },
    { depth: 2, colorType: 0, samples: [1, 3], want: [1 / 3, 1 / 3, 1 / 3, 1, 1, 1] },
    { depth: 4, colorType: 0, samples: [5, 15], want: [1 / 3, 1 / 3, 1 / 3, 1, 1, 1] },
    { depth: 8, colorType: 0, samples: [51, 255], want: [0.2, 0.2, 0.2, 1, 1, 1] },
    { depth: 16, colorType: 0, samples: [0, 65535], want: [0, 0, 0, 1, 1, 1] },
    { depth: 8, colorType: 2, samples: [255, 0, 0, 0, 0, 255], want: [1, 0, 0, 0, 0, 1] },
    { depth: 16, colorType: 2, samples: [65535, 0, 0, 0, 65535, 0], want: [1, 0, 0, 0, 1, 0] },
    // gray + alpha, RGBA: composited over black
    { depth: 8, colorType: 4, samples: [255, 0, 255, 255], want: [0, 0, 0, 1, 1, 1] },
    {
      depth: 8,
      colorType: 6,
      samples: [255, 255, 255, 51, 0, 255, 0, 255],
      want: [0.2, 0.2, 0.2, 0, 1, 0],
    },
  ] as const;
  for (const c of cases) {
    const img = decodePngInput(writePng({ width: 2, height: 1, ...c }));
    assert.equal(img.width, 2);
    near(img.data, [...c.want], 1e-6);
  }
});

Deno.test("palettes (with tRNS) and gray tRNS keys", () => {
  const pal = writePng({
    width: 3,
    height: 1,
    depth: 2,
    colorType: 3,
    samples: [0, 1, 2],
    palette: [[255, 0, 0], [0, 255, 0], [255, 255, 255]],
    trns: Uint8Array.of(255, 0),
  });
  near(decodePngInput(pal).data, [1, 0, 0, 0, 0, 0, 1, 1, 1]);
  const key = writePng({
    width: 2,
    height: 1,
    depth: 8,
    colorType: 0,
    samples: [200, 255],
    trns: Uint8Array.of(0, 200),
  });
  near(decodePngInput(key).data, [0, 0, 0, 1, 1, 1]);
});

Deno.test("fast-png's own files (the page's canvas makes RGBA) decode", () => {
  const data = new Uint8Array(4 * 4 * 4).fill(255);
  const img = decodePngInput(encode({ width: 4, height: 4, data, channels: 4, depth: 8 }));
  assert.equal(img.data.length, 48);
  assert.ok(img.data.every((v) => v === 1));
});

function refused(bytes: Uint8Array, status: number, message: RegExp) {
  assert.throws(() => decodePngInput(bytes), (e: unknown) => {
    assert.ok(e instanceof PngInputError, String(e));
    assert.equal(e.status, status);
    assert.match(e.message, message);
    return true;
  });
}

Deno.test("huge declared sizes are refused from the header, before any inflating", () => {
  // No image data at all: the refusal cannot come from decoding.
  const header = (w: number, h: number) =>
    concat([SIGNATURE, ihdr(w, h, 8, 0), pngChunk("IEND", new Uint8Array(0))]);
  refused(header(100_000, 100_000), 413, /declares 100000×100000 pixels/);
  refused(header(5000, 1), 413, /image too large/);
  refused(header(1025, 1024), 413, new RegExp(`${MAX_INPUT_PIXELS} in all`));
  refused(header(0xffffffff, 1), 413, /image too large/);
});

Deno.test("an IDAT that inflates past its image (a bomb with a small header) is refused", () => {
  const bomb = concat([
    SIGNATURE,
    ihdr(8, 8, 8, 0),
    pngChunk("IDAT", zlibSync(new Uint8Array(50_000_000))),
    pngChunk("IEND", new Uint8Array(0)),
  ]);
  assert.ok(bomb.length < 100_000);
  refused(bomb, 400, /inflates past the 72 bytes/);
});

Deno.test("malformed files are 400 with a reason", () => {
  const good = grayPng(4, 4, new Uint8Array(16).fill(9));
  refused(new Uint8Array(0), 400, /no PNG signature/);
  refused(new TextEncoder().encode("GIF89a......"), 400, /no PNG signature/);
  refused(SIGNATURE, 400, /truncated/);
  for (let n = 8; n < good.length; n += 3) refused(good.subarray(0, n), 400, /not a valid PNG/);
  const flipped = good.slice();
  flipped[20] ^= 1; // inside IHDR
  refused(flipped, 400, /CRC mismatch in chunk IHDR/);
  refused(
    concat([SIGNATURE, ihdr(2, 2, 3, 0), pngChunk("IEND", new Uint8Array(0))]),
    400,
    /bit depth 3/,
  );
  refused(
    concat([SIGNATURE, pngChunk("IEND", new Uint8Array(0))]),
    400,
    /first chunk is not IHDR/,
  );
  refused(
    concat([SIGNATURE, ihdr(2, 2, 8, 0), pngChunk("IEND", new Uint8Array(0))]),
    400,
    /no image data/,
  );
  refused(
    concat([
      SIGNATURE,
      ihdr(2, 2, 8, 0),
      pngChunk("IDAT", zlibSync(new Uint8Array(5))),
      pngChunk("IEND", new Uint8Array(0)),
    ]),
    400,
    /shorter than its size needs/,
  );
  refused(
    concat([
      SIGNATURE,
      ihdr(2, 2, 8, 0),
      pngChunk("IDAT", Uint8Array.of(1, 2, 3, 4, 5)),
      pngChunk("IEND", new Uint8Array(0)),
    ]),
    400,
    /corrupt image data|truncated image data/,
  );
  // A bad filter type byte inside a well-formed stream: fast-png's error, as a 400.
  const raw = new Uint8Array(2 * 3);
  raw[0] = 9;
  refused(
    concat([
      SIGNATURE,
      ihdr(2, 2, 8, 0),
      pngChunk("IDAT", zlibSync(raw)),
      pngChunk("IEND", new Uint8Array(0)),
    ]),
    400,
    /not a valid PNG/,
  );
});

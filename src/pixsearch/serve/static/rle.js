// Masks on the page: COCO compressed RLE (as pycocotools writes it) decoded to a flat
// column-major 0/1 array, and the mask's contour (mask pixels with a 4-neighbour outside).

// COCO compressed RLE (pycocotools rleFrString) -> Uint8Array of h*w, column-major
function decodeRle(rle) {
  const s = rle.counts, counts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, k = 0, more = 1, c;
    while (more) {
      c = s.charCodeAt(p) - 48; x |= (c & 0x1f) << (5 * k);
      more = c & 0x20; p++; k++;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  const [h, w] = rle.size, out = new Uint8Array(h * w);
  let pos = 0, v = 0;
  for (const n of counts) { out.fill(v, pos, pos + n); pos += n; v = 1 - v; }
  return out;
}

// true where a mask pixel (column-major m of h x w) has a pixel outside the mask (or the
// border) within r steps left, right, up or down: a contour r pixels thick
function contourOf(m, h, w, r = 1) {
  const at = (x, y) => x >= 0 && y >= 0 && x < w && y < h && m[x * h + y];
  const out = new Uint8Array(h * w);
  for (let x = 0; x < w; x++) for (let y = 0; y < h; y++) {
    if (!m[x * h + y]) continue;
    for (let d = 1; d <= r; d++) {
      if (!(at(x - d, y) && at(x + d, y) && at(x, y - d) && at(x, y + d))) { out[x * h + y] = 1; break; }
    }
  }
  return out;
}

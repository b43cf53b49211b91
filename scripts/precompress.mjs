// Writes `<file>.br` (brotli, quality 11) and `<file>.gz` (gzip -9) beside every static file of the built
// site, for the server to send as they are to a browser that accepts the encoding (tower-http's ServeDir).
// cargo-leptos's own `--precompress` writes a gzip some 18 % larger than gzip -9 for the WASM; this runs
// after the build instead. Files under 1 KiB gain nothing and are left alone; a copy is only written when
// it is smaller than the file.
//
//   node scripts/precompress.mjs [site root, default target/site]
import { existsSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, gzipSync, constants } from 'node:zlib';

const root = process.argv[2] ?? 'target/site';
let files = 0;
let raw = 0;
let br = 0;
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) { walk(path); continue; }
    if (/\.(br|gz)$/.test(name)) {
      // A copy whose file is gone would still be served: it goes too.
      if (!existsSync(path.slice(0, -3))) rmSync(path, { force: true });
      continue;
    }
    const body = readFileSync(path);
    for (const old of [`${path}.br`, `${path}.gz`]) rmSync(old, { force: true });
    if (body.length < 1024) continue;
    const brotli = brotliCompressSync(body, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
        [constants.BROTLI_PARAM_LGWIN]: constants.BROTLI_MAX_WINDOW_BITS,
        [constants.BROTLI_PARAM_SIZE_HINT]: body.length,
      },
    });
    const gzip = gzipSync(body, { level: constants.Z_BEST_COMPRESSION });
    // Written aside and renamed, so a running server never sends half a file.
    const put = (target, data) => {
      writeFileSync(`${target}.tmp`, data);
      renameSync(`${target}.tmp`, target);
    };
    if (brotli.length < body.length) put(`${path}.br`, brotli);
    if (gzip.length < body.length) put(`${path}.gz`, gzip);
    files += 1;
    raw += body.length;
    br += Math.min(brotli.length, body.length);
  }
}
walk(root);
console.log(`precompressed ${files} files of ${root}: ${raw} bytes, ${br} bytes as brotli`);

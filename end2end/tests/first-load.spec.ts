import { test, expect } from './fixtures/dashboard';
import { gzipSync, constants } from 'node:zlib';

// The first-load budget (issue 18): what Chromium fetches for the dashboard before it is interactive — the
// page, its scripts, the WASM, the CSS, the ECharts bundle and the icon, every request the page really makes
// — counted as served (the best encoding the browser accepts: brotli, written at build time) and at gzip -9.
// The live stream and the API calls after hydration are data, not the page, and are not counted.
//
// The target is 400 KB as served and 450 KB at gzip -9. Until the WASM is cut down to reach it, this test
// holds the line where it stands, so the first load cannot grow unnoticed again (it tripled once): the ceilings below are the measured figures plus a few per cent (the page itself carries
// the snapshot: 5 to 12 KB as served, with the state). Lower them whenever the first load shrinks. They are
// raised only by a change that needs the bytes, with its cost measured here and in the README:
// - 2026-12-06: 759,316 B served, 1,021,137 B gzip -9 → ceilings 790,000 / 1,060,000;
// - 2026-12-07, the fleet (issue 19: the Hosts page, the environment and host selectors, hosts on the admin
//   page; the WASM 557,225 → 596,575 B as served): 798,940 B served, 1,082,115 B gzip -9 → 815,000 / 1,105,000.
// - 2026-12-07, the fleet's roles per environment (the admin page's per-environment column, the error log's
//   host filter: WASM 596,575 → 607,515 B served, first load 804,154 B) and maintenance with host_offline
//   rules (the Hosts page's maintenance menu, a rule's environment: WASM → 616,950 B served): 813,792 B
//   served, 1,106,093 B gzip -9 → 830,000 / 1,125,000.
// - 2026-12-07, the Controls panel following the chosen host (an agent's commands) and the audit page naming
//   host and environment: 821,892 B served, 1,120,699 B gzip -9 (WASM 622,332 B served); the ceilings stay.
// - 2026-12-07, memos read instead of only tracked (the Hosts page's sparklines, an open deployment history,
//   the stored trend following the host): 822,225 B served, 1,121,269 B gzip -9 (WASM 622,413 B); they stay.
// - 2026-12-07 (evening), the sampling interval set from the hub (the Hosts page's Interval column and its
//   menu: WASM 622,413 → 627,468 B served): 824,369 B served, 1,123,527 B gzip -9 on a fresh page, and
//   830,219 B / 1,130,018 B in CI, where the page came with 11,473 B of state (63,384 B raw) → 836,000 /
//   1,136,000.
// - 2026-12-07 (night), the dashboard's own build of the app (no other page), release builds with
//   `erase_components`, and the chart option of the app's own instead of charming's `Chart`: the WASM
//   627,468 → 409,504 B served; 606,641 B served, 794,008 B gzip -9 (the page about 5.7 KB) → 620,000 /
//   812,000.
// - 2026-12-08, the dashboard's WASM with the standard library compiled for size and panics that trap
//   (nightly `-Zbuild-std`, `-Cpanic=immediate-abort`; scripts/dashboard-build.sh): the WASM 409,973 →
//   376,407 B served; 573,365 B served, 747,895 B gzip -9 → 587,000 / 766,000. The bus's banner (issue 20)
//   then added 734 B to the WASM as served (573,990 B / 748,877 B); the ceilings stay.
const TARGET_SERVED = 400_000;
const TARGET_GZIP9 = 450_000;
const CEILING_SERVED = 587_000;
const CEILING_GZIP9 = 766_000;

test('the dashboard first load does not grow past its ceiling', async ({ page, dashboard }) => {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  const requests = new Map<string, { url: string; encoding: string; length: string; bytes: number; failed?: string }>();
  cdp.on('Network.requestWillBeSent', (e) =>
    requests.set(e.requestId, { url: e.request.url, encoding: '', length: '', bytes: 0 }),
  );
  cdp.on('Network.responseReceived', (e) => {
    const r = requests.get(e.requestId);
    const headers = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), v]));
    if (r) {
      r.encoding = String(headers['content-encoding'] ?? 'identity');
      r.length = String(headers['content-length'] ?? '');
    }
  });
  cdp.on('Network.loadingFailed', (e) => {
    const r = requests.get(e.requestId);
    if (r) r.failed = e.errorText;
  });
  cdp.on('Network.loadingFinished', (e) => {
    const r = requests.get(e.requestId);
    if (r) r.bytes = e.encodedDataLength;
  });

  await dashboard.open();
  await expect.poll(() => dashboard.chartIsDrawn('gauge-cpu')).toBe(true);

  const page_ = [...requests.values()].filter((r) => !new URL(r.url).pathname.startsWith('/api/'));
  const names = page_.map((r) => new URL(r.url).pathname);
  // The page references what the build made: the dashboard's own build of the app (its WASM and JS, without
  // the other pages), the CSS and the ECharts bundle.
  for (const re of [/^\/$/, /^\/pkg\/watchpost-dashboard\.[\w-]+\.wasm$/, /^\/pkg\/watchpost-dashboard\.[\w-]+\.js$/, /^\/pkg\/watchpost\.[\w-]+\.css$/, /^\/echarts\.\w+\.js$/]) {
    expect(names.some((n) => re.test(n)), `${re} among ${names.join(' ')}`).toBe(true);
  }
  // Every file has arrived (a request still open would count as nothing), none failed.
  expect(page_.filter((r) => r.failed).map((r) => `${r.url}: ${r.failed}`)).toEqual([]);
  await expect.poll(() => page_.filter((r) => r.bytes === 0).map((r) => r.url)).toEqual([]);
  // The big files come as the brotli copies written at build time: a file sent as it is has its length, one
  // compressed on the fly has none.
  for (const r of page_.filter((r) => /\.(wasm|js)$/.test(r.url))) {
    expect(r.encoding, r.url).toBe('br');
    expect(r.length, `${r.url} precompressed`).toMatch(/^\d+$/);
  }

  // The same files at gzip -9, fetched uncompressed by the signed-in context.
  let served = 0;
  let gzip9 = 0;
  const lines: string[] = [];
  for (const r of page_) {
    const body = await page.request.get(r.url, { headers: { 'accept-encoding': 'identity' } }).then((res) => res.body());
    const zipped = gzipSync(body, { level: constants.Z_BEST_COMPRESSION }).length;
    served += r.bytes;
    gzip9 += zipped;
    lines.push(`${new URL(r.url).pathname.padEnd(48)} ${String(r.bytes).padStart(9)} B served (${r.encoding}) ${String(zipped).padStart(9)} B gzip -9 ${String(body.length).padStart(9)} B raw`);
  }
  lines.push(`${'first load'.padEnd(48)} ${String(served).padStart(9)} B served            ${String(gzip9).padStart(9)} B gzip -9`);
  lines.push(`target ${TARGET_SERVED} B served, ${TARGET_GZIP9} B gzip -9: ${served <= TARGET_SERVED && gzip9 <= TARGET_GZIP9 ? 'met' : `not met (${served - TARGET_SERVED} B and ${gzip9 - TARGET_GZIP9} B over)`}`);
  console.log(lines.join('\n'));
  test.info().annotations.push({ type: 'first load', description: `${served} B served, ${gzip9} B gzip -9` });

  expect(served, `first load as served (ceiling ${CEILING_SERVED} B)`).toBeLessThanOrEqual(CEILING_SERVED);
  expect(gzip9, `first load at gzip -9 (ceiling ${CEILING_GZIP9} B)`).toBeLessThanOrEqual(CEILING_GZIP9);
});

import { test, expect } from './fixtures/dashboard';

// Every static file the dashboard loads has a content hash in its name and is kept for a year, so a second
// visit downloads none of them: Chromium serves each from its own cache, with no request to the server.
test('a second visit downloads no static file', async ({ page, dashboard }) => {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  // A response from the disk cache says so; one from the memory cache only fires requestServedFromCache.
  const fromMemory = new Set<string>();
  cdp.on('Network.requestServedFromCache', (e) => fromMemory.add(e.requestId));
  const seen: { url: string; cached: boolean }[] = [];
  cdp.on('Network.responseReceived', (e) =>
    seen.push({ url: e.response.url, cached: e.response.fromDiskCache || fromMemory.has(e.requestId) }),
  );
  const isStatic = (url: string) => /\/pkg\/|\/echarts\.[^/]*\.js$/.test(new URL(url).pathname);

  await page.goto('/');
  await expect(dashboard.connection).toHaveAttribute('data-state', 'live');
  const first = seen.filter((r) => isStatic(r.url));
  const names = first.map((r) => new URL(r.url).pathname);
  // The dashboard's own build of the app (scripts/dashboard-build.sh names it by a hex hash).
  expect(names.some((n) => /^\/pkg\/watchpost-dashboard\.[0-9a-f]{20}\.wasm$/.test(n)), names.join(' ')).toBe(true);
  expect(names.some((n) => /^\/pkg\/watchpost-dashboard\.[0-9a-f]{20}\.js$/.test(n)), names.join(' ')).toBe(true);
  expect(names.some((n) => /^\/pkg\/watchpost\.[\w-]{22}\.css$/.test(n)), names.join(' ')).toBe(true);
  expect(names.some((n) => /^\/echarts\.\w{8}\.js$/.test(n)), names.join(' ')).toBe(true);

  // Another page loads the whole app (cargo-leptos's build, named by its own hash) the first time.
  await page.goto('/alerts');
  const whole = seen.map((r) => new URL(r.url).pathname);
  expect(whole.some((n) => /^\/pkg\/watchpost\.[\w-]{22}\.wasm$/.test(n)), whole.join(' ')).toBe(true);
  expect(whole.some((n) => /^\/pkg\/watchpost\.[\w-]{22}\.js$/.test(n)), whole.join(' ')).toBe(true);

  seen.length = 0;
  // A link followed, not a reload: a reload asks the browser to revalidate what it holds.
  await page.goto('/');
  await expect(dashboard.connection).toHaveAttribute('data-state', 'live');
  await page.goto('/alerts');
  await page.goto('/');
  await expect(dashboard.connection).toHaveAttribute('data-state', 'live');
  await expect.poll(() => dashboard.chartIsDrawn('gauge-cpu')).toBe(true);
  const again = seen.filter((r) => isStatic(r.url));
  expect(again.length).toBeGreaterThan(0);
  expect(again.filter((r) => !r.cached).map((r) => r.url)).toEqual([]);
});

import { test, expect } from './fixtures/dashboard';

// The Content-Security-Policy allows exactly what the app loads: every page hydrates, draws its charts and
// opens its stream with no violation (the console fixture fails any test on the errors Chromium prints for one,
// and this spec also listens for the events themselves).
test('every page works under its Content-Security-Policy', async ({ page, dashboard }) => {
  await page.addInitScript(() => {
    (window as any).__violations = [];
    document.addEventListener('securitypolicyviolation', (e) =>
      (window as any).__violations.push(`${e.violatedDirective} ${e.blockedURI}`),
    );
  });
  const response = await page.goto('/');
  const policy = response?.headers()['content-security-policy'] ?? '';
  expect(policy).toContain("'nonce-");
  expect(policy).toContain("frame-ancestors 'none'");
  await expect(dashboard.connection).toHaveAttribute('data-state', 'live');
  await expect.poll(() => dashboard.chartIsDrawn('gauge-cpu')).toBe(true);
  await expect.poll(() => dashboard.chartIsDrawn('trend-cpu-memory')).toBe(true);
  // A chart's tooltip is HTML ECharts writes with inline styles.
  await page.locator('#trend-cpu-memory canvas').first().hover();
  expect(await page.evaluate(() => (window as any).__violations)).toEqual([]);
  for (const path of ['/alerts', '/audit', '/admin']) {
    await page.goto(path);
    await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'live');
    expect(await page.evaluate(() => (window as any).__violations), path).toEqual([]);
  }
});

import { test, expect } from './fixtures/dashboard';
import path from 'node:path';

const artifacts = path.resolve(__dirname, '../artifacts');

test('requests to Watchpost show up as latency and rate charts and a route row', async ({ page, dashboard, request }) => {
  await dashboard.open();
  for (let i = 0; i < 15; i++) {
    expect((await request.get('/healthz')).status()).toBe(200);
  }
  const panel = page.getByTestId('panel-api');
  // The test's servers aggregate every second.
  const healthz = panel.getByTestId('api-route').filter({ hasText: '/healthz' });
  await expect(healthz).toBeVisible({ timeout: 15_000 });
  await expect(healthz.locator('td').first()).toHaveText('GET /healthz');
  await expect(panel.getByTestId('api-summary')).toContainText('req/s');
  await expect(panel.getByTestId('api-service')).toHaveValue('watchpost');
  await expect.poll(() => dashboard.chartIsDrawn('api-latency')).toBe(true);
  await expect.poll(() => dashboard.chartIsDrawn('api-rate')).toBe(true);
  await page.setViewportSize({ width: 1440, height: 1000 });
  await panel.screenshot({ path: path.join(artifacts, 'api-panel.png') });
});

test('with a time range chosen, the service latency and rate come from the stored history', async ({ page, dashboard, request }) => {
  await dashboard.open();
  for (let i = 0; i < 10; i++) {
    expect((await request.get('/healthz')).status()).toBe(200);
  }
  const panel = page.getByTestId('panel-api');
  await expect(panel.getByTestId('api-route').first()).toBeVisible({ timeout: 15_000 });
  await page.getByRole('navigation', { name: 'Time range' }).getByRole('link', { name: '1h' }).click();
  await expect(page).toHaveURL(/[?&]range=1h\b/);
  const stored = panel.getByTestId('api-history-latency-points');
  await expect.poll(async () => Number(await stored.getAttribute('data-count')), { timeout: 15_000 }).toBeGreaterThan(0);
  await expect(panel.getByText('Latency (ms), last 1 hour')).toBeVisible();
  await expect.poll(() => dashboard.chartIsDrawn('api-history-latency')).toBe(true);
  await expect.poll(() => dashboard.chartIsDrawn('api-history-rate')).toBe(true);
  // The database panel follows the same picker.
  await expect.poll(() => dashboard.chartIsDrawn('db-history')).toBe(true);
  await page.setViewportSize({ width: 1440, height: 1000 });
  await panel.screenshot({ path: path.join(artifacts, 'api-panel-1h.png') });
  await page.getByTestId('panel-database').screenshot({ path: path.join(artifacts, 'database-panel-1h.png') });
});

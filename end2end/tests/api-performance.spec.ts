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

import { test, expect } from './fixtures/dashboard';

test('gauges and the trend are drawn and the CPU figure moves within five seconds', async ({ dashboard }) => {
  await dashboard.open();
  for (const id of ['gauge-cpu', 'gauge-memory', 'gauge-disk', 'trend-cpu-memory']) {
    await expect.poll(() => dashboard.chartIsDrawn(id), { message: `${id} has painted pixels` }).toBe(true);
  }
  const first = await dashboard.cpuValue.textContent();
  await expect.poll(() => dashboard.cpuValue.textContent(), { timeout: 5_000, intervals: [250] }).not.toBe(first);
});

test('the connection indicator shows Live with the age of the last event', async ({ dashboard }) => {
  await dashboard.open();
  await expect(dashboard.connection).toContainText('Live');
  await expect(dashboard.connection).toContainText(/last event \d+s ago/);
});

test('the trend grows by one point per reading without re-creating the chart', async ({ dashboard, page }) => {
  await dashboard.open();
  const canvas = page.locator('#trend-cpu-memory canvas').first();
  await canvas.evaluate((c) => ((c as any).__watchpostMarker = true));
  const count = async () => Number((await page.getByTestId('trend-points').textContent())?.split(' ')[0]);
  const before = await count();
  await expect.poll(count).toBeGreaterThan(before);
  // The same canvas element is still there: the chart was updated in place.
  expect(await canvas.evaluate((c) => (c as any).__watchpostMarker === true)).toBe(true);
});

import { test, expect } from './fixtures/dashboard';
import { freePort, signIn, startServer } from './fixtures/server';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const artifacts = path.resolve(__dirname, '../artifacts');

test('after a run and a restart, switching to 1h draws the stored points and puts the range in the URL', async ({
  page,
  dashboard,
}) => {
  const port = await freePort();
  const data = mkdtempSync(path.join(tmpdir(), 'watchpost-history-'));
  let server = await startServer(port, data);
  try {
    // Let the first run store a few seconds, then restart on the same data directory.
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    await server.stop();
    const restartedAt = Date.now();
    server = await startServer(port, data);

    await signIn(page.context(), server.url);
    await page.goto(server.url);
    await expect(dashboard.connection).toHaveAttribute('data-state', 'live');
    await page.getByRole('navigation', { name: 'Time range' }).getByRole('link', { name: '1h' }).click();
    await expect(page).toHaveURL(/[?&]range=1h\b/);
    const stored = page.getByTestId('history-cpu-memory-points');
    // Points from the first run are in the store: the count is there as soon as the history has loaded.
    await expect.poll(async () => Number(await stored.getAttribute('data-count')), { timeout: 15_000 }).toBeGreaterThan(0);
    await expect(stored).toContainText('second tier');
    // And the oldest of them is from before the restart.
    expect(Number(await stored.getAttribute('data-first-ms'))).toBeLessThan(restartedAt);
    await expect.poll(() => dashboard.chartIsDrawn('history-cpu-memory')).toBe(true);
    await expect(page.getByRole('link', { name: '1h' })).toHaveAttribute('aria-current', 'true');
    await page.setViewportSize({ width: 1440, height: 1000 });
    await page.screenshot({ path: path.join(artifacts, 'history-1h.png'), fullPage: true });

    // A reload (or a shared link) shows the same view.
    await page.reload();
    await expect(page).toHaveURL(/[?&]range=1h\b/);
    await expect(page.getByRole('link', { name: '1h' })).toHaveAttribute('aria-current', 'true');
    await expect.poll(async () => Number(await stored.getAttribute('data-count'))).toBeGreaterThan(0);

    // Back to Live: the five-minute trend returns.
    await page.getByRole('link', { name: 'Live' }).click();
    await expect(page).toHaveURL(/[?&]range=live\b/);
    await expect.poll(() => dashboard.chartIsDrawn('trend-cpu-memory')).toBe(true);
  } finally {
    await server.stop();
  }
});

test('a custom from–to range goes into the URL and reads the stored points', async ({ page, dashboard }) => {
  await dashboard.open();
  await page.getByRole('button', { name: 'Custom' }).click();
  const form = page.getByTestId('custom-range');
  const local = (d: Date) =>
    new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
  const now = new Date();
  await form.getByLabel('From').fill(local(new Date(now.getTime() - 30 * 60_000)));
  await form.getByLabel('To').fill(local(new Date(now.getTime() + 60_000)));
  await form.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(/[?&]from=\d+&to=\d+/);
  await expect(page.getByText('CPU and memory, custom range')).toBeVisible();
  await expect.poll(async () => Number(await page.getByTestId('history-cpu-memory-points').getAttribute('data-count'))).toBeGreaterThan(0);
});

test('a range the app does not know is named in an error, and the live view is shown', async ({ page }) => {
  await page.goto('/?range=2h');
  await expect(page.getByRole('alert').filter({ hasText: "unknown range '2h'" })).toBeVisible();
  await expect(page.getByTestId('trend-chart')).toBeVisible();
});

import { test, expect } from './fixtures/dashboard';
import { freePort, signIn, startServer } from './fixtures/server';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

// While the server is down the browser's reconnect attempts are refused; Chromium logs each as an error.
test.use({ allowedErrors: /ERR_CONNECTION_REFUSED|Failed to load resource/ });

test('a server restart turns the indicator to Reconnecting, then Live again without a reload', async ({ page, dashboard }) => {
  const port = await freePort();
  const data = mkdtempSync(path.join(tmpdir(), 'watchpost-restart-'));
  let server = await startServer(port, data);
  try {
    await signIn(page.context(), server.url);
    await page.goto(server.url);
    await expect(dashboard.connection).toHaveAttribute('data-state', 'live');
    await page.evaluate(() => ((window as any).__sameDocument = true));

    await server.stop();
    await expect(dashboard.connection).toHaveAttribute('data-state', 'reconnecting');
    await expect(dashboard.connection).toContainText('Reconnecting');
    // No reading for three intervals (3 s): the values dim and say they are stale.
    await expect(dashboard.health).toHaveClass(/stale/);
    await expect(dashboard.health.getByText('stale', { exact: true })).toBeVisible();

    server = await startServer(port, data);
    await expect(dashboard.connection).toHaveAttribute('data-state', 'live', { timeout: 15_000 });
    const after = await dashboard.cpuValue.textContent();
    await expect.poll(() => dashboard.cpuValue.textContent(), { timeout: 10_000 }).not.toBe(after);
    expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
    await expect(dashboard.health).not.toHaveClass(/stale/);
  } finally {
    await server.stop();
  }
});

import { test, expect } from './fixtures/dashboard';
import path from 'node:path';

const artifacts = path.resolve(__dirname, '../artifacts');

// Offline, the stream and the page load fail as the browser logs them.
test.use({ allowedErrors: /ERR_INTERNET_DISCONNECTED|Failed to load resource|EventSource/ });

// The dashboard's own build of the app holds no other page: a link from it to one loads that page from the
// server. Offline, the tab says so and loads the page once the connection is back, instead of the browser's
// error page.
test('a page the dashboard build lacks loads from the server, and waits while offline', async ({ page, context, dashboard }) => {
  await dashboard.open();
  await context.setOffline(true);
  await page.getByTestId('hosts-link').click();
  await expect(page).toHaveURL(/\/hosts$/);
  await expect(page.getByTestId('page-offline')).toBeVisible();
  await page.screenshot({ path: path.join(artifacts, 'page-split-offline.png') });

  await context.setOffline(false);
  // The Hosts page, rendered by the server and live with the whole app.
  await expect(page.getByTestId('page-offline')).toHaveCount(0);
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'live');
  const scripts = await page.evaluate(() =>
    performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname).filter((p) => p.endsWith('.wasm')),
  );
  expect(scripts.some((p) => /^\/pkg\/watchpost\.[\w-]+\.wasm$/.test(p)), scripts.join(' ')).toBe(true);
  await page.goBack();
  await expect(page).toHaveURL(/\/$/);
  await expect(dashboard.connection).toHaveAttribute('data-state', 'live');
});

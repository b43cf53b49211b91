import { test, expect } from './fixtures/dashboard';
import path from 'node:path';

const artifacts = path.resolve(__dirname, '../artifacts');

test('an error storm fires a rule: a toast and a row in both tabs, the badge on the error log; acknowledging shows in the other tab', async ({ page, context }) => {
  const other = await context.newPage();
  for (const p of [page, other]) {
    await p.goto('/');
    await expect(p.getByTestId('connection')).toHaveAttribute('data-state', 'live');
  }
  const url = process.env.WATCHPOST_BASE_URL!;
  const lines = [1, 2, 3].map((i) => JSON.stringify({ level: 'error', service: 'e2e-shop', message: `payment ${i} failed` }));
  const r = await page.request.post(`${url}/api/ingest/logs`, {
    headers: { 'content-type': 'application/x-ndjson' },
    data: lines.join('\n'),
  });
  expect(r.ok()).toBeTruthy();
  const row = (p: typeof page) => p.locator('[data-testid="alert-row"][data-rule="e2e-shop-errors"]').first();
  for (const p of [page, other]) {
    await expect(p.getByTestId('alert-toast').filter({ hasText: 'e2e-shop-errors' })).toBeVisible();
    await expect(row(p)).toHaveAttribute('data-state', 'firing');
    await expect(p.getByTestId('alert-badge-errors')).toBeVisible();
  }
  await expect(row(page)).toContainText('e2e-shop: 3 errors in the last minute');
  await page.screenshot({ path: path.join(artifacts, 'alert-firing.png') });

  await row(page).getByTestId('alert-acknowledge').click();
  await expect(row(other)).toHaveAttribute('data-acknowledged', 'true');
  await expect(row(other).getByTestId('alert-acknowledged')).toContainText('acknowledged by admin');
  await other.getByTestId('panel-alerts').screenshot({ path: path.join(artifacts, 'alert-acknowledged.png') });
  await other.close();
  // The panel leads to the Alerts page, where the configuration file's rule is listed read-only.
  await page.getByTestId('alerts-page-link').click();
  await expect(page).toHaveURL(/\/alerts$/);
  const declared = page.locator('[data-testid="rule-row"][data-rule="e2e-shop-errors"]');
  await expect(declared).toHaveAttribute('data-source', 'config');
  await expect(declared.getByTestId('rule-edit')).toHaveCount(0);
});

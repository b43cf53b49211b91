import { test, expect } from './fixtures/dashboard';
import { signIn } from './fixtures/server';

test('current values are in the server-rendered HTML, before any script runs', async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  await signIn(context, process.env.WATCHPOST_BASE_URL!);
  const page = await context.newPage();
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Server health' })).toBeVisible();
  for (const id of ['gauge-cpu-value', 'gauge-memory-value', 'gauge-disk-value']) {
    await expect(page.getByTestId(id)).toHaveText(/^\d+(\.\d)?%$/);
  }
  await expect(page.getByTestId('memory')).toHaveText(/iB \/ .*iB/);
  await expect(page.getByTestId('disks').locator('tbody tr').first()).toBeVisible();
  // Without scripts there is no stream: the indicator says so rather than claiming to be live.
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'connecting');
  await context.close();
});

test('every panel of the product has its slot in the first HTML', async ({ page }) => {
  await page.goto('/');
  for (const id of ['health', 'errors', 'api', 'database', 'security', 'deployments', 'controls']) {
    await expect(page.getByTestId(`panel-${id}`)).toBeVisible();
  }
});

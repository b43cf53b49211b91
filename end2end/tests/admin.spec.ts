import { test, expect } from './fixtures/dashboard';
import { signIn } from './fixtures/server';
import path from 'node:path';

const artifacts = path.resolve(__dirname, '../artifacts');

test('an admin adds a viewer and a token on the admin page; the viewer sees no admin controls', async ({ page, browser }) => {
  const name = `viewer${Date.now() % 100000}`;
  await page.goto('/admin');
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'live');
  const users = page.getByTestId('admin-users');
  await users.getByLabel("New user's name").fill(name);
  await users.getByLabel("New user's role").selectOption('viewer');
  await users.getByLabel("New user's password").fill('a viewer password');
  await users.getByRole('button', { name: 'Add user' }).click();
  await expect(page.locator(`[data-testid="user-row"][data-name="${name}"]`)).toBeVisible();

  const tokens = page.getByTestId('admin-tokens');
  await tokens.getByLabel("New token's name").fill('e2e-shipper');
  await tokens.getByRole('button', { name: 'Create token' }).click();
  await expect(page.getByTestId('new-token')).toContainText(/wpt_[0-9a-f]{64}/);
  await expect(page.locator('[data-testid="token-row"][data-name="e2e-shipper"]').first()).toBeVisible();
  await page.screenshot({ path: path.join(artifacts, 'admin.png'), fullPage: true });

  // The viewer, in a browser of its own: no link to the admin page, and the page itself refuses.
  const context = await browser.newContext({ baseURL: process.env.WATCHPOST_BASE_URL });
  await signIn(context, process.env.WATCHPOST_BASE_URL!, { name, password: 'a viewer password' });
  const viewer = await context.newPage();
  await viewer.goto('/');
  await expect(viewer.getByTestId('user-name')).toHaveAttribute('data-role', 'viewer');
  await expect(viewer.getByTestId('admin-link')).toHaveCount(0);
  await viewer.goto('/admin');
  await expect(viewer.getByRole('alert').filter({ hasText: 'only an admin or above may manage users' })).toBeVisible();
  await expect(viewer.getByRole('button', { name: 'Add user' })).toHaveCount(0);
  await context.close();
});

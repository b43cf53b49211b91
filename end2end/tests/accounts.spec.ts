import { test, expect } from './fixtures/dashboard';
import { ADMIN } from './fixtures/server';
import path from 'node:path';

const artifacts = path.resolve(__dirname, '../artifacts');

test('signing in through the form shows the dashboard, and signing out returns to the form', async ({ browser }) => {
  const context = await browser.newContext({ baseURL: process.env.WATCHPOST_BASE_URL });
  const page = await context.newPage();
  // Not signed in: the dashboard sends the browser to the sign-in page, remembering where it was going.
  await page.goto('/?range=1h');
  await expect(page).toHaveURL(/\/login\?next=/);
  await page.getByLabel('User name').fill(ADMIN.name);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('login-error')).toContainText('Wrong user name or password');
  await page.screenshot({ path: path.join(artifacts, 'login-failed.png') });

  await page.getByLabel('User name').fill(ADMIN.name);
  await page.getByLabel('Password').fill(ADMIN.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/\?range=1h$/);
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'live');
  await expect(page.getByTestId('user-name')).toContainText(ADMIN.name);
  await expect(page.getByTestId('user-name')).toHaveAttribute('data-role', 'admin');
  await page.screenshot({ path: path.join(artifacts, 'signed-in.png') });

  await page.getByTestId('logout').click();
  await expect(page).toHaveURL(/\/login$/);
  await page.goto('/');
  await expect(page).toHaveURL(/\/login\?next=/);
  await context.close();
});

import { test, expect } from './fixtures/dashboard';
import path from 'node:path';

const artifacts = path.resolve(__dirname, '../artifacts');

test('a failed sign-in elsewhere pops a toast; acknowledging in one tab shows in the other', async ({ page, context, browser }) => {
  const other = await context.newPage();
  for (const p of [page, other]) {
    await p.goto('/');
    await expect(p.getByTestId('connection')).toHaveAttribute('data-state', 'live');
  }

  // Someone else, in a browser of their own, gets a password wrong.
  const intruder = `intruder${Date.now() % 100000}`;
  const stranger = await browser.newContext({ baseURL: process.env.WATCHPOST_BASE_URL });
  const login = await stranger.newPage();
  await login.goto('/login');
  await login.getByLabel('User name').fill(intruder);
  await login.getByLabel('Password').fill('not a real password');
  await login.getByRole('button', { name: 'Sign in' }).click();
  await expect(login.getByTestId('login-error')).toBeVisible();
  await stranger.close();

  const toast = page.getByTestId('toast').filter({ hasText: intruder });
  await expect(toast).toBeVisible();
  await expect(toast).toContainText('Failed sign-in');
  await page.screenshot({ path: path.join(artifacts, 'security-toast.png') });

  const alert = (p: typeof page) =>
    p.getByTestId('security-alert').filter({ hasText: `'${intruder}'` }).first();
  await expect(alert(other)).toHaveAttribute('data-acknowledged', 'false');
  await alert(page).getByTestId('acknowledge').click();
  await expect(alert(page)).toHaveAttribute('data-acknowledged', 'true');
  await expect(alert(other)).toHaveAttribute('data-acknowledged', 'true');
  await expect(alert(other).getByTestId('acknowledged')).toContainText('acknowledged by admin');
  await page.getByTestId('panel-security').screenshot({ path: path.join(artifacts, 'security-panel.png') });
});

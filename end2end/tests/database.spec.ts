import { test, expect } from './fixtures/dashboard';
import path from 'node:path';

const artifacts = path.resolve(__dirname, '../artifacts');

test('the database panel charts a real PostgreSQL and the store', async ({ page, dashboard }) => {
  await dashboard.open();
  const panel = page.getByTestId('panel-database');
  // The configured database is shown first.
  await expect(panel.getByTestId('db-target')).toHaveValue('local');
  await expect(panel.getByTestId('db-summary')).toContainText(/\d+ connections · .*cache hit \d+(\.\d)?%/);
  await expect.poll(() => dashboard.chartIsDrawn('db-connections')).toBe(true);
  // Either the slowest statements from pg_stat_statements, or (this machine's PostgreSQL runs without it) how
  // to enable it.
  const note = panel.getByTestId('db-note');
  const statements = panel.getByTestId('db-query');
  await expect(note.or(statements.first())).toBeVisible();
  if ((await statements.count()) === 0) await expect(note).toContainText('CREATE EXTENSION pg_stat_statements');
  await page.setViewportSize({ width: 1440, height: 1000 });
  await panel.screenshot({ path: path.join(artifacts, 'database-panel.png') });

  await panel.getByTestId('db-target').selectOption('store');
  await expect(panel.getByTestId('db-query').filter({ hasText: 'append history' })).toBeVisible({ timeout: 10_000 });
  await expect.poll(() => dashboard.chartIsDrawn('db-queries')).toBe(true);
});

import { test, expect } from './fixtures/dashboard';
import path from 'node:path';

const artifacts = path.resolve(__dirname, '../artifacts');

for (const { name, width, height } of [
  { name: 'desktop-1440', width: 1440, height: 1000 },
  { name: 'phone-360', width: 360, height: 800 },
]) {
  test(`the dashboard fits ${width} px without sideways scrolling (${name})`, async ({ page, dashboard }) => {
    await page.setViewportSize({ width, height });
    await dashboard.open();
    await expect.poll(() => dashboard.chartIsDrawn('gauge-cpu')).toBe(true);
    await expect.poll(() => dashboard.chartIsDrawn('trend-cpu-memory')).toBe(true);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
  });
}

test('dark mode follows the OS setting', async ({ page, dashboard }) => {
  await page.emulateMedia({ colorScheme: 'dark' });
  await dashboard.open();
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  expect(background).toBe('rgb(13, 17, 23)');
  await page.setViewportSize({ width: 1440, height: 1000 });
  await expect.poll(() => dashboard.chartIsDrawn('gauge-cpu')).toBe(true);
  await page.screenshot({ path: path.join(artifacts, 'desktop-1440-dark.png'), fullPage: true });
});

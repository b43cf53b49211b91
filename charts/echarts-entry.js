// The ECharts bundle the dashboard loads: only the charts and components Watchpost draws, so the first page
// load stays small (the full echarts.min.js is about 370 KB gzipped). charming's WASM renderer calls the
// global `echarts.init`, so the bundle publishes it on `window`. Add a chart type here before using it.
import * as echarts from 'echarts/core';
import { BarChart, GaugeChart, LineChart } from 'echarts/charts';
import {
  DataZoomComponent, GridComponent, TooltipComponent, LegendComponent, TitleComponent, MarkLineComponent,
} from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';

echarts.use([
  BarChart, GaugeChart, LineChart, DataZoomComponent, GridComponent, TooltipComponent, LegendComponent, TitleComponent,
  MarkLineComponent, CanvasRenderer,
]);

window.echarts = echarts;

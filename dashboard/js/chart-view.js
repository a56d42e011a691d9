/**
 * Draws one small line chart into an <svg> from a stats.series column.
 * The geometry comes from charts.js; this module only builds SVG nodes.
 */
import { areaPath, chartPoints, linePath, spanLabel } from './charts.js';
import { svg, setText } from './dom.js';
import { formatAxis } from './format.js';

const WIDTH = 300;
const HEIGHT = 80;

export class Chart {
  /**
   * @param {SVGSVGElement} root the <svg> to draw in
   * @param {{max: Element, span: Element}} labels where the y-axis maximum
   *   and the covered span are written
   */
  constructor(root, labels) {
    this.root = root;
    this.labels = labels;
    root.setAttribute('viewBox', `0 0 ${WIDTH} ${HEIGHT}`);
    root.setAttribute('preserveAspectRatio', 'none');
    for (const y of [0, HEIGHT / 2]) {
      root.append(svg('line', { class: 'grid', x1: 0, x2: WIDTH, y1: y + 0.5, y2: y + 0.5 }));
    }
    this.area = svg('path', { class: 'area' });
    this.line = svg('path', { class: 'line', 'vector-effect': 'non-scaling-stroke' });
    root.append(this.area, this.line);
  }

  /** Redraws from parallel arrays of Unix times and values. */
  draw(times, values) {
    const { points, yMax, tMin, tMax } = chartPoints(times, values, { width: WIDTH, height: HEIGHT });
    this.line.setAttribute('d', linePath(points));
    this.area.setAttribute('d', areaPath(points, HEIGHT));
    this.root.dataset.points = String(points.length);
    setText(this.labels.max, formatAxis(yMax));
    setText(this.labels.span, spanLabel(tMin, tMax));
  }
}

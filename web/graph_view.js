// A workflow with our nodes opens at a zoom where the nodes are drawn, not as blank boxes.
//
// Frontend 1.58 fits a template opened from the template browser to the window and ignores the view
// saved in it; our graphs are wide, so that lands near 0.5, under the classic canvas's level-of-detail
// limit. After such a load this sets the view hyc_logic.readableView gives. The frontend places its
// camera once the canvas has its size (a frame or more after the load hooks), so the check runs on
// each frame for a moment after the load, and stops at the user's first wheel or click on the canvas.
import { readableView } from "./hyc_logic.js";

const WATCH_MS = 2500;
let loads = 0;

function threshold(canvas) {
  // The canvas's own limit (both 1.27 and 1.58 keep it here); else its documented default:
  // 8 px font size over 14 px node text, scaled by the square root of the pixel ratio.
  const own = canvas._lowQualityZoomThreshold;
  if (typeof own === "number") return own;
  const font = canvas.min_font_size_for_lod ?? 8;
  return font / (14 * Math.sqrt(window.devicePixelRatio || 1));
}

function graphBounds(graph, titleHeight) {
  const boxes = [
    ...(graph.nodes ?? graph._nodes ?? []).map((n) => [n.pos[0], n.pos[1] - titleHeight, n.size[0], n.size[1] + titleHeight]),
    ...(graph.groups ?? graph._groups ?? []).map((g) => [...(g._bounding ?? g.bounding ?? [])]).filter((b) => b.length === 4),
  ];
  if (!boxes.length) return null;
  const x0 = Math.min(...boxes.map((b) => b[0])), y0 = Math.min(...boxes.map((b) => b[1]));
  const x1 = Math.max(...boxes.map((b) => b[0] + b[2])), y1 = Math.max(...boxes.map((b) => b[1] + b[3]));
  return [x0, y0, x1 - x0, y1 - y0];
}

/** Call from the afterConfigureGraph hook when the loaded graph holds one of our nodes. */
export function keepReadableAfterLoad(app, titleHeight = 30) {
  const load = ++loads;
  const canvas = app.canvas;
  const element = canvas?.canvas;
  if (!canvas?.ds || !element) return;
  const savedScale = app.graph?.extra?.ds?.scale;
  const until = performance.now() + WATCH_MS;
  let stopped = false;
  const stop = () => {
    stopped = true;
    element.removeEventListener("wheel", stop, true);
    element.removeEventListener("pointerdown", stop, true);
  };
  element.addEventListener("wheel", stop, true);
  element.addEventListener("pointerdown", stop, true);
  const tick = () => {
    if (stopped || load !== loads || performance.now() > until) return stop();
    const rect = element.getBoundingClientRect();
    const bounds = app.graph && graphBounds(app.graph, titleHeight);
    const view = bounds && rect.width > 0 && rect.height > 0 && readableView({
      scale: canvas.ds.scale, threshold: threshold(canvas), savedScale, bounds, viewport: [rect.width, rect.height],
    });
    if (view) {
      canvas.ds.scale = view.scale;
      canvas.ds.offset[0] = view.offset[0];
      canvas.ds.offset[1] = view.offset[1];
      canvas.ds.onChanged?.(view.scale, canvas.ds.offset); // the canvas updates its level of detail here
      canvas.setDirty?.(true, true);
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

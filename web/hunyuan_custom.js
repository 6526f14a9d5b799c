// HunyuanCustom frontend extension (classic app.registerExtension API).
// - WaveSpeed node: a badge in the title saying whether a WaveSpeed key is configured on the
//   server (asks our route for yes/no; this file never sees or handles a key), a red line when
//   the chosen size is one WaveSpeed refuses, and a hint under the node of what WaveSpeed fixes.
// - Save node: nothing to do; it answers like core's SaveVideo ({images, animated}), which the
//   frontend already plays as a video in the node.
// Pure logic lives in hyc_logic.js (unit-tested with node --test).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { KEY_STATUS_ROUTE, wavespeedHint, wavespeedNodeStatus } from "./hyc_logic.js";

const WAVESPEED_NODE = "HunyuanCustomWaveSpeed";
const STATUS_MAX_AGE_MS = 30_000;

let keyAnswer = null; // last route answer ({configured}) or null
let keyCheckedAt = 0;
let keyRequest = null;

async function refreshKeyStatus(force = false) {
  if (!force && Date.now() - keyCheckedAt < STATUS_MAX_AGE_MS) return keyAnswer;
  if (keyRequest) return keyRequest;
  keyRequest = (async () => {
    try {
      const response = await api.fetchApi(KEY_STATUS_ROUTE, { cache: "no-store" });
      keyAnswer = response.ok ? await response.json() : null;
    } catch (error) {
      keyAnswer = null;
    } finally {
      keyCheckedAt = Date.now();
      keyRequest = null;
      app.graph?.setDirtyCanvas?.(true, false);
    }
    return keyAnswer;
  })();
  return keyRequest;
}

function sizeValue(node) {
  return node.widgets?.find((w) => w.name === "size")?.value;
}

function drawText(ctx, text, x, y, color, align) {
  ctx.save();
  ctx.font = "12px sans-serif";
  ctx.textAlign = align;
  ctx.textBaseline = "middle";
  ctx.fillStyle = color;
  ctx.fillText(text, x, y);
  ctx.restore();
}

function decorateWaveSpeedNode(nodeType, nodeData) {
  // The node's tooltip (its description) also carries the hint.
  const hint = wavespeedHint();
  if (nodeData && !String(nodeData.description || "").includes(hint)) {
    nodeData.description = `${nodeData.description ? `${nodeData.description}\n` : ""}${hint}`;
  }

  const onNodeCreated = nodeType.prototype.onNodeCreated;
  nodeType.prototype.onNodeCreated = function () {
    const result = onNodeCreated?.apply(this, arguments);
    refreshKeyStatus();
    return result;
  };

  const onDrawForeground = nodeType.prototype.onDrawForeground;
  nodeType.prototype.onDrawForeground = function (ctx) {
    const result = onDrawForeground?.apply(this, arguments);
    if (this.flags?.collapsed) return result;
    if (Date.now() - keyCheckedAt >= STATUS_MAX_AGE_MS) refreshKeyStatus();
    const status = wavespeedNodeStatus(keyAnswer, sizeValue(this));
    const titleHeight = globalThis.LiteGraph?.NODE_TITLE_HEIGHT ?? 30;
    drawText(ctx, status.badge.text, this.size[0] - 8, -titleHeight / 2, status.badgeColor, "right");
    let y = this.size[1] + 12;
    if (status.warning) {
      drawText(ctx, status.warning, 4, y, status.warningColor, "left");
      y += 16;
    }
    drawText(ctx, status.hint, 4, y, "#888", "left");
    return result;
  };
}

app.registerExtension({
  name: "HunyuanCustom.WebExtension",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name === WAVESPEED_NODE) decorateWaveSpeedNode(nodeType, nodeData);
  },
  async setup() {
    // A key set or removed while ComfyUI runs shows up after the next run starts.
    api.addEventListener?.("execution_start", () => refreshKeyStatus(true));
  },
});

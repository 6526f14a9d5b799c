// HunyuanCustom frontend extension (classic app.registerExtension API).
// - WaveSpeed node: under the node, a line saying whether a WaveSpeed key is configured on the
//   server (asks our route for yes/no; this file never sees or handles a key), a red line when
//   the chosen size is one WaveSpeed refuses, and a hint of what WaveSpeed fixes; wrapped to the
//   node's width. (Not in the title: there it covered the node's name in the browser.)
// - Save node: nothing to do; it answers like core's SaveVideo ({images, animated}), which the
//   frontend already plays as a video in the node.
// - Local sampler: a workflow saved with the older deep_cache switch shows its true/false in the
//   `cache` widget that took its place; shown as deepcache/off (the server maps it alike).
// Pure logic lives in hyc_logic.js (unit-tested with node --test).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import {
  KEY_STATUS_ROUTE, legacyCacheValue, wavespeedHint, wavespeedNodeLines, wavespeedNodeStatus,
} from "./hyc_logic.js";

const WAVESPEED_NODE = "HunyuanCustomWaveSpeed";
const SAMPLER_NODE = "HunyuanCustomSampler";

function decorateSamplerNode(nodeType) {
  const onConfigure = nodeType.prototype.onConfigure;
  nodeType.prototype.onConfigure = function () {
    const result = onConfigure?.apply(this, arguments);
    const widget = this.widgets?.find((w) => w.name === "cache");
    if (widget) widget.value = legacyCacheValue(widget.value);
    return result;
  };
}
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

const LINE_HEIGHT = 15;

function drawLinesUnder(node, ctx, status) {
  ctx.save();
  ctx.font = "12px sans-serif";
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  const lines = wavespeedNodeLines(status, Math.max(node.size[0] - 8, 80), (text) => ctx.measureText(text).width);
  let y = node.size[1] + 12;
  for (const line of lines) {
    ctx.fillStyle = line.color;
    ctx.fillText(line.text, 4, y);
    y += LINE_HEIGHT;
  }
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
    drawLinesUnder(this, ctx, wavespeedNodeStatus(keyAnswer, sizeValue(this)));
    return result;
  };
}

app.registerExtension({
  name: "HunyuanCustom.WebExtension",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name === WAVESPEED_NODE) decorateWaveSpeedNode(nodeType, nodeData);
    if (nodeData?.name === SAMPLER_NODE) decorateSamplerNode(nodeType);
  },
  async setup() {
    // A key set or removed while ComfyUI runs shows up after the next run starts.
    api.addEventListener?.("execution_start", () => refreshKeyStatus(true));
  },
});

// Our cards in ComfyUI's template browser, as the frontends cannot say them themselves.
//
// For a custom pack's templates the frontends (1.27 to 1.58) know only the file names: the card's
// title is the name, 1.27 repeats it as the card's description, and 1.27 heads the pack's page with
// the install folder's name ("comfyui-hunyuancustom"; the list on the left takes the translation in
// locales/en/main.json). There is no field to give them more, so while the dialog is open this puts
// the descriptions of web/template_cards.json (written by tests/_workflow_builder.py) and the pack's
// name in those places. It only rewrites text the frontend drew for OUR module; when a frontend
// draws the dialog differently, nothing matches and the dialog stays as the frontend made it.
// Pure matching rules live in hyc_logic.js (isOurCard, cardDescription, isFolderHeading).
import { cardDescription, isFolderHeading, isOurCard } from "./hyc_logic.js";

// This file is served as /extensions/<install folder>/template_browser.js.
const MODULE = decodeURIComponent(new URL(import.meta.url).pathname.split("/").slice(-2, -1)[0] ?? "");
const CARD = "[data-testid^='template-workflow-']";

/** Set an element's text in the text node the frontend (Vue) made, so its own updates still land. */
function setText(element, text) {
  const node = [...element.childNodes].find((n) => n.nodeType === Node.TEXT_NODE);
  if (node) {
    if (node.nodeValue !== text) node.nodeValue = text;
  } else if (element.textContent !== text) {
    element.textContent = text;
  }
  if (element.hasAttribute("title") && element.getAttribute("title") !== text) element.setAttribute("title", text);
}

function describe(element, cards, name) {
  const text = element && !element.children.length && cardDescription(cards, name, element.textContent);
  if (text) setText(element, text);
}

function patch(root, cards, listing) {
  // Grid layout: a card per template, its title in an <h3>, its description in a <p>.
  for (const card of root.querySelectorAll(CARD)) {
    const name = card.dataset.testid.slice("template-workflow-".length);
    const images = [...card.querySelectorAll("img")].map((img) => img.getAttribute("src"));
    if (!isOurCard(MODULE, name, images, listing)) continue;
    for (const element of card.querySelectorAll("p")) describe(element, cards, name);
  }
  // 1.27's list layout: a table row per template, title then description, each a <span> in a cell.
  for (const row of root.querySelectorAll("tr")) {
    const [title, description] = [...row.querySelectorAll("td > span")];
    const name = title?.textContent.trim();
    if (name && isOurCard(MODULE, name, [], listing)) describe(description, cards, name);
  }
  for (const heading of root.querySelectorAll("h1, h2")) {
    if (isFolderHeading(MODULE, heading.textContent)) setText(heading, cards.category);
  }
}

/** Watch for the template dialog (mounted on <body>) and patch it while it is open. */
export async function watchTemplateBrowser() {
  let cards, listing;
  try {
    // The descriptions, and which pack lists which template (the frontend's own question to the server).
    const [ours, all] = await Promise.all([
      fetch(new URL("./template_cards.json", import.meta.url), { cache: "no-store" }),
      fetch(new URL("../../api/workflow_templates", import.meta.url), { cache: "no-store" }),
    ]);
    if (!ours.ok || !all.ok) return;
    [cards, listing] = [await ours.json(), await all.json()];
  } catch (error) {
    return; // the cards keep the frontend's own texts
  }
  let scheduled = false;
  const run = () => {
    scheduled = false;
    for (const dialog of document.querySelectorAll(".p-dialog, [role=dialog]")) {
      if (dialog.querySelector(`${CARD}, tr`)) patch(dialog, cards, listing); // cards, or 1.27's list rows
    }
  };
  // One pass per frame at most; cheap when no dialog is open (one query per frame).
  new MutationObserver(() => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(run);
  }).observe(document.body, { childList: true, subtree: true, characterData: true, attributes: true, attributeFilter: ["src"] });
}

"use strict";
// The search page: plain JavaScript over the /v1 JSON API. No build step, no external assets.
const $ = (id) => document.getElementById(id);
// `search` counts searches: an answer that arrives after a newer search started is dropped,
// so quickly changing two options never leaves the older answer on screen.
// `region`: the box of the photo to search, as fractions [x, y, width, height] of it (null: the whole photo).
// `groups`: the products "Find each product" located, each {box, page}: its box and the first page of its matches.
// `query`: what the shown results were searched with ("photo", or "text" with a CLIP-family model), so a changed option
// searches again the same way.
// `size`: the photo's upright size in pixels, in which the service measures boxes, when the preview shown is the
// service's smaller copy (null: the preview is the photo itself).
const state = { file: null, pages: [], index: -1, lastQueryUrl: null, search: 0, region: null, query: "photo", groups: [], size: null };

function showError(message, id = "error") {
  $(id).textContent = message;
  $(id).hidden = !message;
}

/** The chosen language as a BCP 47 locale ("pt_BR" -> "pt-BR"), for Intl formatting. */
function locale() {
  return ($("lang").value || "en").replace("_", "-");
}

/** An amount (a decimal string) in its currency, as the chosen locale writes it: "¥2,323", "12,34 €". */
function money(amount, currency) {
  try {
    return new Intl.NumberFormat(locale(), { style: "currency", currency }).format(Number(amount));
  } catch (err) {
    return `${amount} ${currency}`;
  }
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new Error("The server cannot be reached. Is imagesearch still running?");
  }
  let body = null;
  try { body = await response.json(); } catch (err) { /* not JSON */ }
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `The server answered ${response.status} ${response.statusText}.`;
    throw new Error(message.charAt(0).toUpperCase() + message.slice(1) + (message.endsWith(".") ? "" : "."));
  }
  return body;
}

function setFile(file) {
  if (!file) return;
  state.file = file;
  if (state.lastQueryUrl) URL.revokeObjectURL(state.lastQueryUrl);
  state.lastQueryUrl = URL.createObjectURL(file);
  state.size = null;
  const preview = $("query-preview");
  preview.onerror = () => { preview.onerror = null; servicePreview(file); };
  preview.src = state.lastQueryUrl;
  $("preview").hidden = false;
  showFound([]);
  showRegion(null);
  search();
}

/** A photo the browser cannot show (HEIC, in most browsers): the service decodes it and sends it back upright as a
 * JPEG, with the photo's size (what the boxes it answers are measured in). A photo it cannot read either is not shown:
 * the search says what is wrong with it. */
async function servicePreview(file) {
  const form = new FormData();
  form.append("file", file);
  let response = null, blob = null;
  try {
    response = await fetch("/v1/preview", { method: "POST", body: form });
    if (response.ok) blob = await response.blob();
  } catch (err) { /* the search reports it */ }
  if (state.file !== file) return;
  if (!blob) { $("preview").hidden = true; return; }
  state.size = [Number(response.headers.get("x-image-width")), Number(response.headers.get("x-image-height"))];
  URL.revokeObjectURL(state.lastQueryUrl);
  state.lastQueryUrl = URL.createObjectURL(blob);
  $("query-preview").src = state.lastQueryUrl;
}

/** Ask the service where the products in the photo are (`groups`: each with its box and its first page of
 * matches, in one request), show the main product's matches at once, and offer each box as a button. */
async function findProducts() {
  showError("");
  if (!state.file) return;
  const form = new FormData();
  form.append("file", state.file);
  for (const [key, value] of Object.entries(options())) form.append(key, value);
  form.append("groups", "true");
  form.append("page_size", "12");
  $("status").textContent = "Looking for the products in your photo…";
  const mine = ++state.search;
  try {
    const answer = await api("/v1/search", { method: "POST", body: form });
    if (mine !== state.search) return;
    const image = $("query-preview");
    const [width, height] = state.size || [image.naturalWidth, image.naturalHeight];
    state.groups = (answer.groups || []).map((group) => ({ page: group, box: [group.region.x / width, group.region.y / height,
      group.region.width / width, group.region.height / height].map((value) => Number(value.toFixed(4))) }));
    showFound(state.groups.map((group) => group.box));
    if (!state.groups.length) return;
    showGroup(0);
    const count = state.groups.length;
    if (count > 1) $("status").textContent += ` Product 1 of the ${count} found: choose another box to see its matches.`;
  } catch (err) { if (mine === state.search) showError(err.message); }
}

/** Show the matches the service already sent for one of the products found (no new request); its box is the region. */
function showGroup(position) {
  state.search++;  // an older search still under way must not replace these results
  markFound(position);
  showRegion(state.groups[position].box);
  state.query = "photo";
  state.pages = [state.groups[position].page];
  state.index = 0;
  render();
}

/** Mark which found box the results are for (-1: none, the whole photo or a box the user drew). */
function markFound(position) {
  document.querySelectorAll(".found-box").forEach((button, index) => {
    button.classList.toggle("active", index === position);
    button.setAttribute("aria-pressed", String(index === position));
  });
}

/** The boxes found in the photo (fractions of it), numbered, each a button showing its matches. */
function showFound(boxes) {
  if (!boxes.length) state.groups = [];
  const layer = $("found-boxes");
  layer.replaceChildren();
  boxes.forEach((box, position) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "found-box";
    button.setAttribute("aria-label", `Show the matches of product ${position + 1} of the photo`);
    button.appendChild(text("span", String(position + 1)));
    [button.style.left, button.style.top, button.style.width, button.style.height] = box.map((value) => `${(value * 100).toFixed(2)}%`);
    button.addEventListener("click", () => showGroup(position));
    layer.appendChild(button);
  });
}

/** Show (or hide) the chosen box over the preview, and offer the way back to the whole photo. */
function showRegion(region) {
  state.region = region;
  const box = $("region-box");
  box.hidden = !region;
  $("whole-photo").hidden = !region;
  $("region-help").textContent = region ? "Searching the part in the box. Drag again to change it." : "Drag a box on your photo to search one part of it.";
  if (region) {
    [box.style.left, box.style.top, box.style.width, box.style.height] = region.map((value) => `${(value * 100).toFixed(2)}%`);
  }
}

/** Drawing a box on the preview with a mouse, a pen or a finger; a box of less than 3 % a side is a click, not a box. */
function setupRegion() {
  const image = $("query-preview");
  let start = null;
  const clamp = (value) => Math.min(1, Math.max(0, value));
  const at = (event) => {
    const bounds = image.getBoundingClientRect();
    return [clamp((event.clientX - bounds.left) / bounds.width), clamp((event.clientY - bounds.top) / bounds.height)];
  };
  const boxOf = (a, b) => [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.abs(a[0] - b[0]), Math.abs(a[1] - b[1])];
  image.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    showFound([]);
    start = at(event);
    image.setPointerCapture(event.pointerId);
  });
  image.addEventListener("pointermove", (event) => {
    if (!start) return;
    const box = $("region-box");
    box.hidden = false;
    [box.style.left, box.style.top, box.style.width, box.style.height] = boxOf(start, at(event)).map((value) => `${value * 100}%`);
  });
  image.addEventListener("pointerup", (event) => {
    if (!start) return;
    const box = boxOf(start, at(event));
    start = null;
    if (box[2] < 0.03 || box[3] < 0.03) { showRegion(state.region); return; }
    showRegion(box.map((value) => Number(value.toFixed(4))));
    search();
  });
  $("whole-photo").addEventListener("click", () => { markFound(-1); showRegion(null); search(); });
  $("find-products").addEventListener("click", findProducts);
}

function options() {
  const fields = {};
  for (const name of ["search_type", "currency", "lang", "ship_to", "sort_type", "sort_order", "min_score", "category_id"]) {
    const value = $(name).value.trim();
    if (value) fields[name] = value;
  }
  if ($("collapse").checked) fields.collapse = "true";
  return fields;
}

async function search() {
  showError("");
  state.query = "photo";
  if (!state.file) { showError("Choose a photo first: drop it, paste it, or pick a file."); return; }
  const form = new FormData();
  form.append("file", state.file);
  for (const [key, value] of Object.entries(options())) form.append(key, value);
  if (state.region) form.append("region", state.region.join(","));
  form.append("page_size", "12");
  await show(() => api("/v1/search", { method: "POST", body: form }));
}

/** Search the photos with words (shown only when the service's model has a text tower): similar products only. */
async function searchText() {
  showError("");
  const words = $("text").value.trim();
  if (!words) { showError("Type a few words describing the product first."); return; }
  state.query = "text";
  const fields = options();
  delete fields.search_type;  // a text finds similar products only
  await show(() => api("/v1/search", {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...fields, text: words, page_size: 12, collapse: fields.collapse === "true" }),
  }));
}

/** Run a new search and show its first page, unless a newer search started meanwhile. */
async function show(request) {
  $("status").textContent = "Searching…";
  const mine = ++state.search;
  try {
    const page = await request();
    if (mine !== state.search) return;
    state.pages = [page];
    state.index = 0;
    render();
  } catch (err) {
    if (mine !== state.search) return;
    clearResults(); showError(err.message);
  }
}

/** Forget the shown results: no stale cards, count or pager stay next to an error. */
function clearResults() {
  state.pages = []; state.index = -1; render();
}

async function turn(step) {
  showError("");
  const target = state.index + step;
  if (target < 0) return;
  if (target < state.pages.length) { state.index = target; render(); return; }
  const current = state.pages[state.index];
  if (!current || !current.next_start_row_key) return;
  $("status").textContent = "Loading…";
  const mine = state.search;
  try {
    const page = await api("/v1/search", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ start_row_key: current.next_start_row_key }),
    });
    if (mine !== state.search) return;
    state.pages.push(page); state.index = target; render();
  } catch (err) {
    if (mine !== state.search) return;
    clearResults(); showError(err.message);
  }
}

function text(tag, content, className) {
  const node = document.createElement(tag);
  node.textContent = content;
  if (className) node.className = className;
  return node;
}

function card(product) {
  const item = document.createElement("li");
  item.className = "card";
  const image = document.createElement("img");
  image.src = product.matched_thumbnail_url;
  image.alt = product.title;
  item.appendChild(image);
  const body = document.createElement("div");
  body.className = "body";
  const title = document.createElement("h3");
  const link = document.createElement("a");
  link.href = product.product_detail_url || `#/product/${encodeURIComponent(product.product_id)}`;
  link.textContent = product.title;
  if (product.product_detail_url) { link.target = "_blank"; link.rel = "noopener"; }
  title.appendChild(link);
  body.appendChild(title);
  const price = document.createElement("p");
  price.className = "price";
  price.appendChild(text("span", money(product.price.sale, product.price.currency)));
  if (product.discount_percent > 0) {
    const original = text("del", money(product.price.original, product.price.currency));
    original.setAttribute("aria-label", `was ${original.textContent}`);
    price.appendChild(original);
    price.appendChild(text("span", `-${product.discount_percent}%`, "badge"));
  }
  body.appendChild(price);
  const rating = product.evaluate_rate === null ? "no rating" : `★ ${product.evaluate_rate}`;
  const orders = new Intl.NumberFormat(locale()).format(product.volume);
  body.appendChild(text("p", `${orders} orders · ${rating} · shop ${product.shop_id}`, "meta"));
  body.appendChild(text("p", `Similarity ${product.score.toFixed(3)}`, "meta score"));
  if (product.offers && product.offers.length > 1) {
    const offers = product.offers.map((offer) => `${money(offer.price.sale, offer.price.currency)} (shop ${offer.shop_id})`);
    body.appendChild(text("p", `${product.offers.length} shops sell it: ${offers.join(" · ")}`, "meta offers"));
  }
  const details = document.createElement("a");
  details.href = `#/product/${encodeURIComponent(product.product_id)}`;
  details.textContent = "Why it matched →";
  body.appendChild(details);
  item.appendChild(body);
  return item;
}

function render() {
  const list = $("results");
  list.replaceChildren();
  const page = state.pages[state.index];
  $("pager").hidden = !page || page.page.pages <= 1;
  if (!page) { $("status").textContent = ""; return; }
  page.products.forEach((product) => list.appendChild(card(product)));
  const first = (page.page.number - 1) * page.page.size + 1;
  const last = first + page.page.count - 1;
  const of = page.total_is_capped ? `the best ${page.total_count}` : `${page.total_count}`;
  $("status").textContent = !page.total_count ? `No product matches this ${state.query === "text" ? "description" : "photo"} with these options.`
    : page.page.count ? `Showing ${first}–${last} of ${of} ${page.total_count === 1 ? "match" : "matches"}.`
    : `This page is past the last of ${of} matches.`;
  $("page-info").textContent = `Page ${page.page.number} of ${page.page.pages}`;
  $("prev").disabled = state.index === 0;
  $("next").disabled = !page.page.has_next;
}

async function showProduct(id) {
  $("product-title").textContent = "Loading…";
  const body = $("product-body");
  body.replaceChildren();
  showError("", "product-error");
  try {
    const query = new URLSearchParams({ lang: $("lang").value });
    if ($("currency").value) query.set("currency", $("currency").value);
    const product = await api(`/v1/products/${encodeURIComponent(id)}?${query}`);
    let scores = {};
    if (state.file) {
      const form = new FormData();
      form.append("file", state.file);
      const match = await api(`/v1/products/${encodeURIComponent(id)}/match`, { method: "POST", body: form });
      match.images.forEach((image) => { scores[image.image_id] = image.score; });
    }
    $("product-title").textContent = product.title;
    const best = Math.max(...Object.values(scores), -1);
    const images = document.createElement("ul");
    images.className = "images";
    images.setAttribute("aria-label", "Product images");
    product.images.forEach((image, position) => {
      const item = document.createElement("li");
      const score = scores[image.image_id];
      if (score !== undefined && score === best) item.className = "matched";
      const picture = document.createElement("img");
      picture.src = image.thumbnail_url;
      picture.alt = `Image ${position + 1} of ${product.title}`;
      item.appendChild(picture);
      const caption = score === undefined ? (position === 0 ? "Main image" : `Image ${position + 1}`)
        : `${position === 0 ? "Main image" : `Image ${position + 1}`}: similarity ${score.toFixed(3)}${score === best ? " (best match)" : ""}`;
      item.appendChild(text("p", caption));
      images.appendChild(item);
    });
    body.appendChild(images);
    const catalogPrice = money(product.price_in_catalog.sale, product.price_in_catalog.currency);
    const orders = new Intl.NumberFormat(locale()).format(product.volume);
    body.appendChild(text("p", `${money(product.price.sale, product.price.currency)} (catalog price ${catalogPrice}) · ${orders} orders · shop ${product.shop_id}`));
    const table = document.createElement("table");
    table.appendChild(document.createElement("caption")).textContent = "Titles and categories in every language";
    const head = table.appendChild(document.createElement("tr"));
    ["Language", "Title", "Category", "Subcategory"].forEach((label) => head.appendChild(text("th", label)));
    const languages = new Set([...Object.keys(product.titles),
      ...Object.keys((product.category_names.first_level || {})), ...Object.keys((product.category_names.second_level || {}))]);
    [...languages].sort().forEach((lang) => {
      const row = table.appendChild(document.createElement("tr"));
      row.appendChild(text("td", lang));
      row.appendChild(text("td", product.titles[lang] || "—"));
      row.appendChild(text("td", (product.category_names.first_level || {})[lang] || "—"));
      row.appendChild(text("td", (product.category_names.second_level || {})[lang] || "—"));
    });
    body.appendChild(table);
    if (product.product_detail_url) {
      const link = document.createElement("a");
      link.href = product.product_detail_url; link.textContent = "Open the listing"; link.target = "_blank"; link.rel = "noopener";
      body.appendChild(document.createElement("p")).appendChild(link);
    }
  } catch (err) {
    $("product-title").textContent = "Product";
    showError(err.message, "product-error");
  }
}

async function showCatalog() {
  const list = $("catalog-body");
  list.replaceChildren();
  showError("", "catalog-error");
  try {
    const info = await api("/v1/catalog");
    const rows = [
      ["Products", info.products], ["Images", info.images], ["Distinct photos", info.distinct_images],
      ["Categories", info.categories], ["Shops", info.shops], ["Embedder", info.embedder || "—"],
      ["Index", `${info.index.kind} (${info.index.vectors} vectors, generation ${info.index.generation})`],
      ["Last import", info.last_write_at ? new Date(info.last_write_at).toLocaleString(locale()) : "never"],
      ["Exchange rates", `${info.rates.base}, ${info.rates.date}`],
    ];
    rows.forEach(([label, value]) => { list.appendChild(text("dt", label)); list.appendChild(text("dd", String(value))); });
  } catch (err) { showError(err.message, "catalog-error"); }
}

/** Show the view the address names; on a change of view, move focus to its heading (for screen readers and keyboards). */
function route(event) {
  const hash = location.hash || "#/";
  const product = hash.match(/^#\/product\/(.+)$/);
  const views = { "search-view": !product && hash !== "#/catalog", "product-view": !!product, "catalog-view": hash === "#/catalog" };
  for (const [id, shown] of Object.entries(views)) $(id).hidden = !shown;
  if (product) showProduct(decodeURIComponent(product[1]));
  if (hash === "#/catalog") showCatalog();
  if (event) {
    const heading = { "search-view": "search-title", "product-view": "product-title", "catalog-view": "catalog-title" };
    const shown = Object.keys(views).find((id) => views[id]);
    $(heading[shown]).focus();
    window.scrollTo(0, 0);
  }
}

async function init() {
  setupRegion();
  const drop = $("drop");
  drop.addEventListener("click", (event) => { if (event.target.tagName !== "LABEL") $("file").click(); });
  drop.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); $("file").click(); } });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => { event.preventDefault(); drop.classList.remove("over"); setFile(event.dataTransfer.files[0]); });
  document.addEventListener("paste", (event) => {
    const item = [...event.clipboardData.items].find((entry) => entry.type.startsWith("image/"));
    if (item) setFile(item.getAsFile());
  });
  $("file").addEventListener("change", (event) => setFile(event.target.files[0]));
  $("search-form").addEventListener("submit", (event) => { event.preventDefault(); again(); });
  $("text-button").addEventListener("click", searchText);
  $("text").addEventListener("keydown", (event) => { if (event.key === "Enter") { event.preventDefault(); searchText(); } });
  const again = () => (state.query === "text" ? searchText() : search());
  for (const name of ["search_type", "currency", "lang", "sort_type", "sort_order", "min_score", "collapse", "category_id"]) {
    $(name).addEventListener("change", () => { if (state.file || state.query === "text") again(); });
  }
  $("lang").addEventListener("change", loadCategories);
  $("ship_to").addEventListener("change", () => { if (state.file || state.query === "text") again(); });
  $("prev").addEventListener("click", () => turn(-1));
  $("next").addEventListener("click", () => turn(1));
  $("back").addEventListener("click", (event) => { event.preventDefault(); history.length > 1 ? history.back() : (location.hash = "#/"); });
  window.addEventListener("hashchange", route);
  try {
    const info = await api("/v1/catalog");
    $("text-query").hidden = !info.text_search;
    const select = $("currency");
    info.rates.currencies.forEach((code) => {
      const option = document.createElement("option");
      option.value = code; option.textContent = code; option.selected = code === info.default_currency;
      select.appendChild(option);
    });
  } catch (err) { showError(err.message); }
  await loadCategories();
  route();
}

/** The category filter's choices, named in the chosen language: first levels, their second levels indented. */
async function loadCategories() {
  const select = $("category_id");
  const chosen = select.value;
  let tree;
  try {
    tree = (await api(`/v1/categories?lang=${encodeURIComponent($("lang").value)}`)).categories;
  } catch (err) { return; }  // the filter stays at "Any"
  const option = (category, label) => {
    const node = document.createElement("option");
    node.value = category.id; node.textContent = `${label} (${category.products})`; node.selected = category.id === chosen;
    return node;
  };
  const options = [select.options[0]];
  for (const first of tree.filter((category) => category.level === 1)) {
    options.push(option(first, first.name || first.id));
    for (const second of tree.filter((category) => category.level === 2 && category.parent_id === first.id)) {
      options.push(option(second, `\u00a0\u00a0${second.name || second.id}`));
    }
  }
  for (const orphan of tree.filter((category) => category.level === 2 && !tree.some((first) => first.id === category.parent_id))) {
    options.push(option(orphan, orphan.name || orphan.id));
  }
  select.replaceChildren(...options);
}

init();

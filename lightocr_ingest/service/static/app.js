// lightocr-ingest web page: OCR a file page by page, add it to the collection, search it.
// Plain JavaScript, no build step, no external resources. API contract: /v1/ocr, /v1/ingest, /v1/jobs/{id},
// /v1/query; errors are {"error": {"code", "message", "suggestion", "request_id"}}.
"use strict";

(() => {
  const KEY_STORAGE = "lightocr-ingest.api-key";
  const JOB_POLL_MS = 500;
  const TERMINAL = new Set(["done", "partial", "failed"]);
  const MAX_429_RETRIES = 30;
  const MAX_401_PROMPTS = 5;
  const EXCERPT_CHARS = 320;

  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ---------------------------------------------------------------- small DOM helper

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else if (name === "style") Object.assign(node.style, value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function excerpt(text, limit = EXCERPT_CHARS) {
    // Markdown heading marks say nothing in an excerpt: "## Title" reads "Title".
    const flat = String(text || "").replace(/^\s{0,3}#{1,6}\s+/gm, "").replace(/\s+/g, " ").trim();
    return flat.length > limit ? flat.slice(0, limit - 1) + "…" : flat;
  }

  function headerPath(value) {
    if (Array.isArray(value)) return value.join(" › ");
    return String(value || "").split(" > ").filter(Boolean).join(" › ");
  }

  // ---------------------------------------------------------------- notices and errors

  function notice(text) {
    const node = $("notice");
    node.textContent = text || "";
    node.hidden = !text;
  }

  class ApiError extends Error {
    constructor(status, envelope, requestId) {
      super(envelope.message || `HTTP ${status}`);
      this.status = status;
      this.code = envelope.code || (status ? `http_${status}` : "network");
      this.suggestion = envelope.suggestion || "";
      this.requestId = envelope.request_id || requestId || "";
    }
  }

  async function readEnvelope(response) {
    const requestId = response.headers.get("X-Request-ID") || "";
    let text = "";
    try {
      text = await response.text();
      const body = JSON.parse(text);
      if (body && typeof body.error === "object" && body.error) return {request_id: requestId, ...body.error};
      if (body && body.detail) return {message: JSON.stringify(body.detail), request_id: requestId};
    } catch (_) {
      // Not JSON: a proxy's page, say. Keep its first words.
    }
    return {message: excerpt(text, 200) || response.statusText || `HTTP ${response.status}`, request_id: requestId};
  }

  function showError(error, context) {
    const box = $("errors");
    const isApi = error instanceof ApiError;
    const item = el("div", {class: "error-item", dataset: {code: isApi ? error.code : "client"}},
      el("p", {class: "error-title"},
        el("strong", {}, "Error"), context ? ` (${context})` : "", ": ", error.message || String(error)),
      isApi ? el("p", {class: "error-code"},
        "Code: ", el("code", {}, error.code), error.status ? ` (HTTP ${error.status})` : "") : null,
      isApi && error.suggestion ? el("p", {class: "error-suggestion"}, el("strong", {}, "Suggestion: "),
        error.suggestion) : null,
      isApi && error.requestId ? el("p", {class: "error-request-id"}, "Request id: ",
        el("code", {}, error.requestId)) : null,
      el("button", {type: "button", class: "dismiss", onclick: () => item.remove()}, "Dismiss"));
    box.prepend(item);
    while (box.children.length > 5) box.lastElementChild.remove();
  }

  // ---------------------------------------------------------------- API key (asked for on 401)

  let keyRequest = null;  // one pending prompt shared by every request that got a 401

  function askForKey(message) {
    if (keyRequest) return keyRequest.promise;
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    keyRequest = {promise, resolve};
    $("api-key-message").textContent = message;
    $("api-key-panel").hidden = false;
    $("api-key-input").value = "";
    $("api-key-input").focus();
    return promise;
  }

  function onKeySubmit(event) {
    event.preventDefault();
    const key = $("api-key-input").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORAGE, key);
    $("api-key-panel").hidden = true;
    if (keyRequest) {
      const {resolve} = keyRequest;
      keyRequest = null;
      resolve(key);
    }
  }

  // ---------------------------------------------------------------- fetch with 401 / 429 / 503 handling

  function retryAfterSeconds(response) {
    const value = response.headers.get("Retry-After");
    if (value) {
      const seconds = Number(value);
      if (Number.isFinite(seconds)) return Math.min(Math.max(seconds, 0.5), 120);
      const date = Date.parse(value);
      if (!Number.isNaN(date)) return Math.min(Math.max((date - Date.now()) / 1000, 0.5), 120);
    }
    return 2;
  }

  // body: a function returning a fresh body for every attempt (FormData), or json: an object to send as JSON.
  // raw: hand back the response itself (a stream) once it is known to be a success.
  async function api(path, {method = "GET", body = null, json, what = "request", raw = false} = {}) {
    let busyRetries = 0;
    let keyPrompts = 0;
    for (;;) {
      const headers = {Accept: "application/json"};
      const key = sessionStorage.getItem(KEY_STORAGE);
      if (key) headers["X-API-Key"] = key;
      let payload = typeof body === "function" ? body() : body;
      if (json !== undefined) {
        headers["Content-Type"] = "application/json";
        payload = JSON.stringify(json);
      }
      let response;
      try {
        response = await fetch(path, {method, headers, body: payload});
      } catch (error) {
        throw new ApiError(0, {code: "network", message: `the server could not be reached (${error.message})`,
          suggestion: "Check that the service is running and reachable, then try again."});
      }
      // 429, or 503 with Retry-After (a request that waited the service's longest wait for its
      // turn): the server says when to come back.
      const busy = response.status === 429 || (response.status === 503 && response.headers.has("Retry-After"));
      if (busy && busyRetries < MAX_429_RETRIES) {
        busyRetries += 1;
        const wait = retryAfterSeconds(response);
        await response.body?.cancel();
        notice(`The server is busy (${what}): trying again in ${wait} s (attempt ${busyRetries + 1}).`);
        // A little jitter: clients refused at the same moment do not all come back at the same one.
        await sleep(wait * 1000 * (1 + Math.random() * 0.1));
        notice("");
        continue;
      }
      if (response.status === 401 && keyPrompts < MAX_401_PROMPTS) {
        keyPrompts += 1;
        const envelope = await readEnvelope(response);
        if (sessionStorage.getItem(KEY_STORAGE) === key) sessionStorage.removeItem(KEY_STORAGE);
        await askForKey(key ? "The server refused that API key. Enter another one."
          : `The server asks for an API key (${envelope.message}). It is kept in this browser tab only.`);
        continue;
      }
      if (!response.ok) throw new ApiError(response.status, await readEnvelope(response),
        response.headers.get("X-Request-ID"));
      return raw ? response : response.json();
    }
  }

  // ---------------------------------------------------------------- HTML from the server, defused

  // The model writes what a document holds, and a document can hold anything. The server already shows it
  // through an allow-list (lightocr_ingest/service/page_html.py); the page applies the same list again, so
  // that HTML the server ever let through still cannot run a script or fetch from another origin.
  // These two lists mirror ALLOWED_TAGS and ALLOWED_ATTRIBUTES in page_html.py:
  // tests/test_page_allow_list.py checks that they are equal.
  const ALLOWED_TAGS = new Set([
    "a", "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre", "code",
    "em", "strong", "b", "i", "u", "sup", "sub", "span", "div", "table", "thead", "tbody", "tfoot", "tr",
    "th", "td", "caption", "colgroup", "col",
    // MathML Core, as latex2mathml writes it
    "math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msup", "msub", "msubsup", "mfrac", "msqrt",
    "mroot", "mover", "munder", "munderover", "mtable", "mtr", "mtd", "mstyle", "mpadded", "mphantom",
    "menclose", "semantics", "annotation",
  ]);
  const ALLOWED_ATTRIBUTES = new Set([
    "colspan", "rowspan", "align", "display", "xmlns", "mathvariant", "stretchy", "fence",
    "separator", "lspace", "rspace", "columnalign", "rowspacing", "columnspacing",
    "displaystyle", "scriptlevel", "encoding", "width", "accent", "movablelimits",
  ]);
  // Not on the list, an element goes and its text stays; these go with all they hold, since what they
  // hold is code, styles, markup to embed or animate, not text of the page.
  const DROPPED_WITH_CONTENT = new Set([
    "script", "style", "template", "noscript", "noembed", "noframes", "iframe", "frame", "frameset", "object",
    "embed", "applet", "link", "meta", "base", "svg", "animate", "animatemotion", "animatetransform", "set",
    "maction",
  ]);
  // The one URL that survives: a link's href, to the web, to mail or within the page (as the server).
  const SAFE_LINK = /^(https?:\/\/|mailto:|#)/i;
  const HTML_NS = "http://www.w3.org/1999/xhtml";
  const MATHML_NS = "http://www.w3.org/1998/Math/MathML";

  // An allowed name is not enough: the tag must be HTML or MathML (an SVG <a> is not an HTML one), and a
  // link only HTML (inside <math> an <a> is a MathML element, whose href browsers have followed).
  function allowedElement(node, tag) {
    if (!ALLOWED_TAGS.has(tag)) return false;
    if (tag === "a") return node.namespaceURI === HTML_NS;
    return node.namespaceURI === HTML_NS || node.namespaceURI === MATHML_NS;
  }

  function cleanAttributes(node, tag) {
    let link = null;
    for (const attr of [...node.attributes]) {
      const name = attr.name.toLowerCase();
      const value = attr.value.trim();
      if (name === "href" && tag === "a" && SAFE_LINK.test(value)) link = value;
      // Every attribute goes, but those on the list; a javascript: value goes too, whatever its name.
      if (!ALLOWED_ATTRIBUTES.has(name) || value.toLowerCase().startsWith("javascript:")) {
        node.removeAttributeNode(attr);
      }
    }
    if (link !== null) {
      node.setAttribute("href", link);  // trimmed: the value checked is the value followed
      node.setAttribute("rel", "noopener noreferrer");
      if (/^https?:/i.test(link)) node.setAttribute("target", "_blank");
    }
  }

  // Children first, so an element that goes hands on only what is already clean.
  function cleanChildren(parent) {
    for (const node of [...parent.childNodes]) {
      if (node.nodeType === Node.TEXT_NODE) continue;
      if (node.nodeType !== Node.ELEMENT_NODE) {  // comments, CDATA, processing instructions
        node.remove();
        continue;
      }
      const tag = node.localName.toLowerCase();
      if (DROPPED_WITH_CONTENT.has(tag) || node.namespaceURI !== HTML_NS && node.namespaceURI !== MATHML_NS) {
        node.remove();
        continue;
      }
      cleanChildren(node);
      if (allowedElement(node, tag)) cleanAttributes(node, tag);
      else node.replaceWith(...node.childNodes);
    }
  }

  // The model's HTML as a fragment of allowed elements and attributes only. It is parsed in an inert
  // <template> (nothing loads or runs there) and the nodes themselves are handed on, never serialised and
  // parsed again, so what was checked is what is shown.
  function sanitize(html) {
    const template = document.createElement("template");
    template.innerHTML = html;
    const content = template.content;
    cleanChildren(content);
    return content;
  }

  // ---------------------------------------------------------------- pages on screen

  let current = null;   // {generation, file, sha, pageCount, pages: Map(page -> view), done, failed}
  let generation = 0;

  function setProgress(text, done, total) {
    const bar = $("progress");
    if (total) {
      bar.max = total;
      bar.value = done;
    } else {
      bar.removeAttribute("value");  // indeterminate until the page count is known
    }
    $("progress-text").textContent = text;
  }

  function progressText() {
    const {done, failed, pageCount} = current;
    const failedText = failed ? ` (${failed} failed)` : "";
    if (done >= pageCount) return `Page ${done} of ${pageCount} read${failedText}. Done.`;
    return `Page ${done} of ${pageCount} read${failedText}; reading page ${done + 1}…`;
  }

  function chunksOnPage(chunks, page) {
    return (chunks || []).filter((chunk) =>
      (chunk.regions || []).some((region) => region.page === page)
      || chunk.page === page || (chunk.pages || []).includes(page));
  }

  // The boxes of one chunk (or hit) on one page: its regions there, else its bbox on its first page.
  function boxesOn(item, page) {
    const regions = (item.regions || []).filter((region) => region.page === page && Array.isArray(region.bbox));
    if (regions.length) return regions.map((region) => region.bbox);
    if (!(item.regions || []).length && item.page === page && Array.isArray(item.bbox) && item.bbox.length === 4) {
      return [item.bbox];
    }
    return [];
  }

  // Why regions cannot be drawn on this page, or "" when they can.
  function undrawable(view) {
    const meta = view.metadata || {};
    const rotation = Number(meta.rotation || 0);
    if (rotation) return `This page is stored rotated by ${rotation}°: its regions are not drawn.`;
    if (!view.hasImage) return "No page image was sent: regions are not drawn.";
    if (!(meta.page_width > 0 && meta.page_height > 0 && meta.image_width > 0 && meta.image_height > 0)) {
      return "The page's size is unknown: regions are not drawn.";
    }
    return "";
  }

  // bbox [x0, y0, x1, y1] in PDF points (top-left origin) -> percentages of the image as displayed.
  function placeBox(node, view, bbox) {
    const m = view.metadata;
    const sx = m.image_width / m.page_width;
    const sy = m.image_height / m.page_height;
    const [x0, y0, x1, y1] = bbox.map(Number);
    const left = Math.max(0, Math.min(x0, x1) * sx);
    const top = Math.max(0, Math.min(y0, y1) * sy);
    const right = Math.min(m.image_width, Math.max(x0, x1) * sx);
    const bottom = Math.min(m.image_height, Math.max(y0, y1) * sy);
    Object.assign(node.style, {
      left: `${(100 * left) / m.image_width}%`,
      top: `${(100 * top) / m.image_height}%`,
      width: `${(100 * Math.max(0, right - left)) / m.image_width}%`,
      height: `${(100 * Math.max(0, bottom - top)) / m.image_height}%`,
    });
  }

  function chunkLabel(chunk, number) {
    const path = headerPath(chunk.header_path);
    return `Chunk ${number}${path ? `: ${path}` : ""}. ${excerpt(chunk.text, 160)}`;
  }

  function showTooltip(target, chunk, number) {
    const tip = $("tooltip");
    tip.replaceChildren(
      el("p", {class: "tooltip-title"}, `Chunk ${number}`),
      el("p", {class: "tooltip-path"}, headerPath(chunk.header_path) || "(no heading)"),
      el("p", {class: "tooltip-text"}, excerpt(chunk.text)));
    tip.hidden = false;
    const rect = target.getBoundingClientRect();
    const width = Math.min(420, window.innerWidth - 16);
    tip.style.maxWidth = `${width}px`;
    let left = Math.min(Math.max(8, rect.left), window.innerWidth - width - 8);
    let top = rect.bottom + 6;
    const height = tip.offsetHeight;
    if (top + height > window.innerHeight - 8) top = Math.max(8, rect.top - height - 6);
    tip.style.left = `${left}px`;
    tip.style.top = `${top}px`;
    target.setAttribute("aria-describedby", "tooltip");
  }

  function hideTooltip(target) {
    $("tooltip").hidden = true;
    target?.removeAttribute("aria-describedby");
  }

  function drawChunks(view) {
    const reason = undrawable(view);
    view.overlay.replaceChildren();
    let drawn = 0;
    if (!reason) {
      // The model's own layout blocks (LightOnOCR-3 grounding), under the chunks: a thin outline
      // and the block's label. Their boxes are 0-1000 of the page.
      const m = view.metadata;
      for (const block of view.blocks) {
        if (!Array.isArray(block.bbox) || block.bbox.length !== 4) continue;
        const [x0, y0, x1, y1] = block.bbox.map(Number);
        const node = el("span", {class: "block", dataset: {label: String(block.label)}, "aria-hidden": "true"},
          el("span", {class: "block-label"}, String(block.label)));
        placeBox(node, view, [x0 * m.page_width / 1000, y0 * m.page_height / 1000,
          x1 * m.page_width / 1000, y1 * m.page_height / 1000]);
        view.overlay.append(node);
      }
      view.chunks.forEach((chunk, index) => {
        const number = index + 1;
        for (const bbox of boxesOn(chunk, view.page)) {
          const box = el("span", {
            class: "region", tabindex: 0, role: "img", "aria-label": chunkLabel(chunk, number),
            dataset: {chunk: String(number)},
            onmouseenter: (event) => showTooltip(event.currentTarget, chunk, number),
            onmouseleave: (event) => hideTooltip(event.currentTarget),
            onfocus: (event) => showTooltip(event.currentTarget, chunk, number),
            onblur: (event) => hideTooltip(event.currentTarget),
          }, el("span", {class: "region-label", "aria-hidden": "true"}, String(number)));
          placeBox(box, view, bbox);
          view.overlay.append(box);
          drawn += 1;
        }
      });
    }
    const chunkCount = view.chunks.length;
    const blockCount = reason ? 0 : view.blocks.length;
    view.caption.textContent = reason
      || `${chunkCount} chunk${chunkCount === 1 ? "" : "s"}, ${drawn} region${drawn === 1 ? "" : "s"} drawn`
        + (drawn ? " (numbered outlines; hover or focus one for its heading and text)" : "")
        + (blockCount ? `; ${blockCount} layout block${blockCount === 1 ? "" : "s"} the model labelled (thin outlines).`
          : ".");
    view.section.dataset.regions = String(drawn);
  }

  function insertSection(section, page) {
    const container = $("pages");
    const after = [...container.children].find((node) => Number(node.dataset.page) > page);
    container.insertBefore(section, after || null);
  }

  function renderPage(page, chunks) {
    const number = page.page;
    const meta = page.metadata || {};
    const titleId = `page-${number}-title`;
    const status = [meta.ocr_engine, meta.ocr_status].filter(Boolean).join(", ");
    const img = page.image
      ? el("img", {src: page.image, alt: `Image of page ${number}`, class: "page-img",
        width: meta.image_width || null, height: meta.image_height || null})
      : el("p", {class: "no-image"}, "(no image)");
    const overlay = el("div", {class: "overlay"});
    const caption = el("figcaption", {class: "page-caption"});
    const text = el("div", {class: "page-html", "aria-label": `Text of page ${number}`});
    if (page.html !== undefined && page.html !== null) text.append(sanitize(page.html));
    else text.append(el("pre", {class: "page-markdown"}, page.markdown || ""));
    if (!text.textContent.trim()) text.append(el("p", {class: "empty"}, "(no text was read on this page)"));
    const section = el("section", {class: "page", id: `page-${number}`, dataset: {page: String(number)},
      "aria-labelledby": titleId},
      el("h3", {id: titleId}, `Page ${number}`, status ? el("span", {class: "page-status"}, ` (${status})`) : null),
      el("div", {class: "page-body"},
        el("figure", {class: "page-figure"}, el("div", {class: "page-image"}, img, overlay), caption),
        el("div", {class: "page-text"}, text)));
    const view = {page: number, metadata: meta, chunks, blocks: Array.isArray(page.blocks) ? page.blocks : [],
      hasImage: Boolean(page.image), section, overlay, caption};
    drawChunks(view);
    current.pages.get(number)?.section.remove();
    current.pages.set(number, view);
    insertSection(section, number);
  }

  // One upload, read as it goes: /v1/ocr with stream=true answers a JSON line per event:
  // {"file": {...}}, then {"page": {...}} as each page is read, then {"chunks": [...]} (the file's
  // chunks, cut over all its pages as the collection cuts them), or {"error": {...}}.
  function ocrForm(file) {
    return () => {
      const form = new FormData();
      form.append("file", file, file.name);
      for (const flag of ["stream", "images", "html", "chunks"]) form.append(flag, "true");
      return form;
    };
  }

  async function* ndjsonLines(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    for (;;) {
      const {value, done} = await reader.read();
      buffered += decoder.decode(value || new Uint8Array(), {stream: !done});
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) yield JSON.parse(line);
      }
      if (done) break;
    }
    if (buffered.trim()) yield JSON.parse(buffered);
  }

  async function startFile(file) {
    const mine = ++generation;
    current = {generation: mine, file, sha: null, pageCount: 0, pages: new Map(), done: 0, failed: 0};
    $("pages").replaceChildren();
    clearHits();
    $("file-name").textContent = `File: ${file.name} (${Math.max(1, Math.round(file.size / 1024))} KiB)`;
    $("ingest-button").disabled = false;
    setProgress("Reading page 1…", 0, 0);
    try {
      const response = await api("v1/ocr", {method: "POST", body: ocrForm(file), what: "OCR", raw: true});
      for await (const event of ndjsonLines(response)) {
        if (mine !== generation) return;
        if (event.file) {
          current.sha = event.file.file_sha256;
          current.pageCount = Math.max(1, Number(event.file.page_count) || 1);
          const count = current.pageCount;
          setProgress(`${count} page${count === 1 ? "" : "s"} to read; reading the first…`, 0, count);
        } else if (event.page) {
          renderPage(event.page, []);
          if ((event.page.metadata || {}).ocr_status === "failed") current.failed += 1;
          current.done += 1;
          setProgress(progressText(), current.done, current.pageCount);
        } else if (event.chunks) {
          for (const view of current.pages.values()) {
            view.chunks = chunksOnPage(event.chunks, view.page);
            drawChunks(view);
          }
        } else if (event.error) {
          throw new ApiError(0, event.error, event.error.request_id);
        }
      }
    } catch (error) {
      if (mine !== generation) return;
      showError(error, `OCR of ${file.name}`);
      setProgress(current.done ? progressText() : "Could not read the file.", current.done,
        Math.max(current.pageCount, 1));
    }
  }

  // ---------------------------------------------------------------- ingest job

  function renderJob(job) {
    const status = job.status || "unknown";
    const total = job.pages_total === null || job.pages_total === undefined ? "?" : job.pages_total;
    const parts = [`Job ${job.job_id}: ${status}`];
    if (job.pages_ingested !== undefined) {
      parts.push(`pages ingested ${job.pages_ingested} of ${total}`);
      if (job.pages_failed) parts.push(`${job.pages_failed} failed`);
    }
    const node = $("job-status");
    node.textContent = parts.join(" — ") + (TERMINAL.has(status) ? "." : "…");
    node.dataset.status = status;
    $("job-files").replaceChildren(...(job.files || []).map((file) => el("li", {},
      el("strong", {}, file.file_name), `: ${file.status}`,
      file.pages !== undefined && file.pages !== null ? `, ${file.pages} page${file.pages === 1 ? "" : "s"}` : "",
      file.error ? el("span", {class: "job-error"}, ` — problem: ${file.error}`) : "")));
    $("job-problems").replaceChildren(...(job.problems || []).map((problem) =>
      el("li", {}, el("strong", {}, "Problem: "), problem)));
  }

  async function ingest() {
    if (!current) return;
    const {file} = current;
    const button = $("ingest-button");
    button.disabled = true;
    $("job-status").textContent = `Sending ${file.name}…`;
    $("job-status").dataset.status = "sending";
    $("job-files").replaceChildren();
    $("job-problems").replaceChildren();
    try {
      const form = () => {
        const data = new FormData();
        data.append("file", file, file.name);
        return data;
      };
      let job = await api("v1/ingest", {method: "POST", body: form, what: "adding to the collection"});
      const id = job.job_id;
      renderJob(job);
      while (!TERMINAL.has(job.status)) {
        await sleep(JOB_POLL_MS);
        job = await api(`v1/jobs/${encodeURIComponent(id)}`, {what: "job status"});
        renderJob(job);
      }
      if ($("documents").childElementCount || $("documents-status").textContent) await showDocuments();
    } catch (error) {
      showError(error, `adding ${file.name} to the collection`);
      $("job-status").textContent = `Could not add ${file.name}: ${error.message}`;
      $("job-status").dataset.status = "error";
    } finally {
      button.disabled = !current;
    }
  }

  // ---------------------------------------------------------------- the collection's documents

  async function showDocuments() {
    const status = $("documents-status");
    try {
      const listed = await api("v1/documents", {what: "listing the documents"});
      const documents = listed.documents || [];
      status.textContent = documents.length ? `${documents.length} document${documents.length === 1 ? "" : "s"} ` +
        `in '${listed.collection}'.` : `No documents in '${listed.collection}' yet.`;
      $("documents").replaceChildren(...documents.map((doc) => {
        const button = el("button", {type: "button", class: "delete-document"}, "Delete");
        button.addEventListener("click", () => deleteDocument(doc));
        return el("li", {"data-sha256": doc.sha256},
          el("strong", {}, doc.file_name),
          ` — ${doc.pages} page${doc.pages === 1 ? "" : "s"}, ${doc.chunks} chunk${doc.chunks === 1 ? "" : "s"}` +
          (doc.complete ? "" : ", incomplete") + (doc.stored_at ? `, stored ${doc.stored_at}` : "") + " ", button);
      }));
    } catch (error) {
      showError(error, "listing the documents");
      status.textContent = `Could not list the documents: ${error.message}`;
    }
  }

  async function deleteDocument(doc) {
    if (!window.confirm(`Delete ${doc.file_name} (${doc.chunks} chunks) from the collection?`)) return;
    try {
      const deleted = await api(`v1/documents/${encodeURIComponent(doc.sha256)}`,
        {method: "DELETE", what: "deleting a document"});
      notice(`Deleted ${doc.file_name}: ${deleted.deleted_chunks} chunks.`);
    } catch (error) {
      showError(error, `deleting ${doc.file_name}`);
    }
    await showDocuments();
  }

  // ---------------------------------------------------------------- search

  function clearHits() {
    document.querySelectorAll(".hit-region").forEach((node) => node.remove());
    document.querySelectorAll(".page.has-hit").forEach((node) => {
      node.classList.remove("has-hit");
      node.querySelector(".hit-note")?.remove();
    });
    document.querySelectorAll("#search-results .hit.is-shown").forEach((node) => {
      node.classList.remove("is-shown");
      node.querySelector(".hit-shown")?.remove();
    });
  }

  function hitPages(hit) {
    const pages = new Set([hit.page, ...(hit.pages || []), ...(hit.regions || []).map((r) => r.page)]);
    return [...pages].filter((page) => Number.isInteger(page)).sort((a, b) => a - b);
  }

  function shownPagesOf(hit) {
    if (!current || !current.sha || hit.file_sha256 !== current.sha) return [];
    return hitPages(hit).filter((page) => current.pages.has(page));
  }

  function highlightHit(hit, item) {
    clearHits();
    const pages = shownPagesOf(hit);
    let first = null;
    for (const page of pages) {
      const view = current.pages.get(page);
      const reason = undrawable(view);
      const boxes = reason ? [] : boxesOn(hit, page);
      for (const bbox of boxes) {
        const box = el("span", {class: "hit-region", "aria-hidden": "true"},
          el("span", {class: "hit-label"}, "match"));
        placeBox(box, view, bbox);
        view.overlay.append(box);
      }
      view.section.classList.add("has-hit");
      view.caption.after(el("p", {class: "hit-note", role: "status"},
        boxes.length ? `Search match highlighted (${boxes.length} region${boxes.length === 1 ? "" : "s"}, `
          + "dashed outline marked “match”)."
          : `Search match on this page${reason ? ` (${reason})` : " (no regions stored)"}.`));
      first = first || view;
    }
    if (item) {
      item.classList.add("is-shown");
      item.append(el("p", {class: "hit-shown"}, `Highlighted on page ${pages.join(", ")} above.`));
    }
    first?.section.scrollIntoView({behavior: "smooth", block: "start"});
  }

  function renderHits(hits) {
    const list = $("search-results");
    list.replaceChildren();
    let highlighted = false;
    for (const hit of hits) {
      const pages = hitPages(hit);
      const item = el("li", {class: "hit", dataset: {fileSha256: hit.file_sha256 || "", page: String(hit.page),
        fileName: hit.file_name || ""}},
        el("p", {class: "hit-head"},
          el("strong", {class: "hit-file"}, hit.file_name || "(unknown file)"),
          `, page${pages.length > 1 ? "s" : ""} `, el("span", {class: "hit-page"}, pages.join("–") || hit.page),
          el("span", {class: "hit-score"}, ` — score ${Number(hit.score).toFixed(3)}`)),
        hit.header_path ? el("p", {class: "hit-path"}, "Section: ", headerPath(hit.header_path)) : null,
        el("p", {class: "hit-text"}, excerpt(hit.text)));
      if (shownPagesOf(hit).length) {
        item.append(el("button", {type: "button", class: "show-hit",
          onclick: () => highlightHit(hit, item)}, `Show on page ${hit.page}`));
        if (!highlighted) {
          highlighted = true;
          highlightHit(hit, item);
        }
      }
      list.append(item);
    }
  }

  async function search(event) {
    event.preventDefault();
    const text = $("search-input").value.trim();
    if (!text) return;
    const button = $("search-button");
    button.disabled = true;
    $("search-status").textContent = "Searching…";
    clearHits();
    try {
      const answer = await api("v1/query", {method: "POST", json: {text, k: 5}, what: "search"});
      const hits = answer.hits || [];
      $("search-results").replaceChildren();
      renderHits(hits);
      $("search-status").textContent = hits.length
        ? `${hits.length} hit${hits.length === 1 ? "" : "s"} for “${text}”.` : `No hits for “${text}”.`;
    } catch (error) {
      showError(error, "search");
      $("search-status").textContent = `Search failed: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- wiring

  function pickFile(files) {
    const file = files && files[0];
    if (file) startFile(file);
  }

  function init() {
    $("api-key-form").addEventListener("submit", onKeySubmit);
    $("file-input").addEventListener("change", (event) => pickFile(event.target.files));
    $("ingest-button").addEventListener("click", ingest);
    $("search-form").addEventListener("submit", search);
    $("documents-button").addEventListener("click", showDocuments);

    const zone = $("drop-zone");
    for (const name of ["dragenter", "dragover"]) {
      zone.addEventListener(name, (event) => {
        event.preventDefault();
        zone.classList.add("dragging");
      });
    }
    for (const name of ["dragleave", "drop"]) {
      zone.addEventListener(name, () => zone.classList.remove("dragging"));
    }
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      pickFile(event.dataTransfer && event.dataTransfer.files);
    });
    // A file dropped beside the zone must not make the browser leave the page to open it.
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => event.preventDefault());
    window.addEventListener("scroll", () => { $("tooltip").hidden = true; }, {passive: true});
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

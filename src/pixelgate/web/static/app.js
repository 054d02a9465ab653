// The playground. It uses only the public API, as any client would:
// - GET /v1/models fills the pickers;
// - a first turn is POST /v1/images/generations (async), followed with GET /v1/tasks/{id};
// - "continue from this image" is POST /v1beta/interactions with previous_interaction_id (background),
//   followed with GET /v1beta/interactions/{id};
// - GET /v1/usage shows what the key has spent.

import { TEMPLATES } from "./templates.js";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "pixelgate.apiKey";
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const models = new Map();
const references = []; // {name, mime, dataUri}
let continueFrom = null; // {id, image}

// -- talking to the server -----------------------------------------------------------------------------

function headers() {
  const key = $("api-key").value.trim();
  return { "Content-Type": "application/json", ...(key ? { Authorization: `Bearer ${key}` } : {}) };
}

async function call(method, path, body) {
  const response = await fetch(path, { method, headers: headers(), body: body ? JSON.stringify(body) : undefined });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error?.message || `HTTP ${response.status}`);
  return data;
}

// -- the form ------------------------------------------------------------------------------------------

function fill(select, values, chosen) {
  select.replaceChildren(...values.map((value) => new Option(value, value, false, value === chosen)));
}

function capabilities() {
  return models.get($("model").value)?.capabilities;
}

function showModel() {
  const caps = capabilities();
  if (!caps) return;
  const aspect = $("aspect").value;
  const size = $("size").value;
  fill($("aspect"), caps.aspect_ratios, caps.aspect_ratios.includes(aspect) ? aspect : caps.aspect_ratios[0]);
  fill($("size"), caps.image_sizes, caps.image_sizes.includes(size) ? size : caps.default_image_size);
  showOutput();
  showReferences();
}

function showOutput() {
  const caps = capabilities();
  if (!caps) return;
  const pixels = caps.output_pixels?.[$("aspect").value]?.[$("size").value];
  const n = Number($("n").value) || 1;
  // The catalog's published price of an image of this size (its output image tokens); the prompt's and
  // the input images' tokens and the model's thoughts are billed besides, as the vendor bills them.
  const price = caps.pricing?.per_image_usd?.[$("size").value];
  const each = price == null ? "" : `, $${usd(price)} an image`;
  const all = price == null || n === 1 ? "" : `, $${usd(price * n)} for ${n}`;
  const plus = price == null ? "" : " (catalog price, plus input and thinking tokens)";
  $("output").textContent = pixels ? `Output: ${pixels} px${each}${all}${plus}` : "";
}

// An amount as billed, to the nano-dollar, with at least four decimals (as the CLI shows it).
function usd(amount) {
  const whole = amount.toFixed(9);
  const dot = whole.indexOf(".");
  return whole.slice(0, Math.max(whole.replace(/0+$/, "").length, dot + 5));
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function maxReferences() {
  return capabilities()?.max_reference_images ?? 0;
}

function showReferences() {
  $("refs").replaceChildren(
    ...references.map((ref, index) => {
      const item = document.createElement("li");
      const img = new Image();
      img.src = ref.dataUri;
      img.alt = `reference ${index + 1}: ${ref.name}`;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "Remove";
      remove.addEventListener("click", () => {
        references.splice(index, 1);
        showReferences();
      });
      item.append(img, remove);
      return item;
    }),
  );
  $("ref-limit").textContent = `(${references.length} of at most ${maxReferences()} for this model)`;
}

async function addReferences(files) {
  for (const file of files) {
    if (!file.type.startsWith("image/")) continue;
    if (references.length >= maxReferences()) {
      showError(`${$("model").value} takes at most ${maxReferences()} reference images: ${file.name} was not added`);
      break;
    }
    const dataUri = await new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
    references.push({ name: file.name || "pasted image", mime: file.type, dataUri });
  }
  showReferences();
}

function setContinuing(from) {
  continueFrom = from;
  $("continuing").hidden = !from;
  if (from) $("continuing").querySelector("span").textContent = `Continuing the conversation of ${from.id}`;
}

// -- one request, in the form each API takes ---------------------------------------------------------

function request() {
  const prompt = $("prompt").value;
  const model = $("model").value;
  const exact = $("pixels").value.trim();
  const seed = $("seed").value === "" ? undefined : Number($("seed").value);
  if (continueFrom) {
    const input = [{ type: "text", text: prompt }];
    for (const ref of references) input.push({ type: "image", mime_type: ref.mime, data: ref.dataUri.split(",")[1] });
    const format = { type: "image", delivery: "uri", aspect_ratio: $("aspect").value, image_size: $("size").value };
    return {
      api: "interactions",
      path: "/v1beta/interactions",
      body: { model, input, previous_interaction_id: continueFrom.id, background: true, response_format: format },
    };
  }
  const body = { model, prompt, n: Number($("n").value) || 1, response_format: "url", async: true };
  if (exact) body.size = exact;
  else Object.assign(body, { size: $("aspect").value, resolution: $("size").value });
  if (seed !== undefined) body.seed = seed;
  if (references.length) body.reference_images = references.map((ref) => ref.dataUri);
  return { api: "openai", path: "/v1/images/generations", body };
}

function snippets(sent) {
  const origin = location.origin;
  const body = JSON.stringify(sent.body, (key, value) => (typeof value === "string" && value.length > 200 ? "<base64 image>" : value), 2);
  const curl = `curl ${origin}${sent.path} \\\n  -H "Content-Type: application/json" \\\n  -H "Authorization: Bearer $PIXELGATE_API_KEY" \\\n  -d '${body}'`;
  const b = sent.body;
  if (sent.api === "interactions") {
    const google = `from google import genai\n\nclient = genai.Client(api_key="…", http_options={"base_url": "${origin}"})\n` +
      `interaction = client.interactions.create(\n    model="${b.model}",\n    input=${JSON.stringify(b.input[0].text)},\n` +
      `    previous_interaction_id="${b.previous_interaction_id}",\n    response_format=${JSON.stringify(b.response_format)},\n)`;
    return { curl, google };
  }
  const extra = { ...(b.resolution ? { resolution: b.resolution } : {}), ...(b.seed !== undefined ? { seed: b.seed } : {}) };
  const openai = `from openai import OpenAI\n\nclient = OpenAI(base_url="${origin}/v1", api_key="…")\n` +
    `image = client.images.generate(\n    model="${b.model}",\n    prompt=${JSON.stringify(b.prompt)},\n    size="${b.size}",\n` +
    `    n=${b.n},\n    extra_body=${JSON.stringify(extra)},\n)`;
  const google = `from google import genai\nfrom google.genai import types\n\nclient = genai.Client(api_key="…", http_options={"base_url": "${origin}"})\n` +
    `response = client.models.generate_content(\n    model="${b.model}",\n    contents=${JSON.stringify(b.prompt)},\n` +
    `    config=types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio="${b.resolution ? b.size : "1:1"}", image_size="${b.resolution || "1K"}")),\n)`;
  return { curl, openai, google };
}

// -- the task list -------------------------------------------------------------------------------------

function taskCard(sent) {
  const item = document.createElement("li");
  item.className = "task";
  item.innerHTML = `<div class="head"><span class="status">queued</span> <span class="prompt"></span>
    <button type="button" class="cancel">Cancel</button></div><p class="from" hidden></p>
    <div class="images"></div><p class="problem" hidden></p>
    <div class="actions"><button type="button" class="retry">Retry</button></div>
    <details class="code"><summary>The request, as code</summary></details>`;
  const prompt = sent.api === "interactions" ? sent.body.input[0].text : sent.body.prompt;
  item.querySelector(".prompt").textContent = `${sent.body.model}: ${prompt}`;
  if (sent.body.previous_interaction_id) {
    const from = item.querySelector(".from");
    from.hidden = false;
    from.textContent = `continues ${sent.body.previous_interaction_id}`;
    if (continueFrom?.image) {
      const img = new Image();
      img.src = continueFrom.image;
      img.alt = "the image this turn continues from";
      from.prepend(img);
    }
  }
  for (const [name, code] of Object.entries(snippets(sent))) {
    const pre = document.createElement("pre");
    pre.className = `snippet-${name}`;
    pre.textContent = code;
    const copy = document.createElement("button");
    copy.type = "button";
    copy.textContent = `Copy as ${name === "curl" ? "curl" : name === "openai" ? "Python (openai)" : "Python (google-genai)"}`;
    copy.addEventListener("click", () => navigator.clipboard?.writeText(code));
    item.querySelector(".code").append(copy, pre);
  }
  item.querySelector(".retry").addEventListener("click", () => submit(sent));
  $("tasks").prepend(item);
  return item;
}

function imagesOf(task) {
  if (Array.isArray(task.data)) return task.data.map((image) => image.url);
  const urls = [];
  for (const step of task.steps || []) {
    if (step.type !== "model_output") continue;
    for (const block of step.content || []) {
      if (block.type === "image") urls.push(block.uri || `data:${block.mime_type};base64,${block.data}`);
    }
  }
  return urls;
}

function show(item, task) {
  // The API's own word for the state (queued, processing, completed…), and whether it is still going.
  item.dataset.status = task.status;
  item.dataset.state = TERMINAL.has(task.status) ? "done" : "working";
  const status = item.querySelector(".status");
  status.textContent = !TERMINAL.has(task.status) && task.progress ? `${task.status} ${task.progress}%` : task.status;
  item.querySelector(".cancel").hidden = TERMINAL.has(task.status);
  if (task.status === "completed") {
    item.querySelector(".images").replaceChildren(
      ...imagesOf(task).map((url, index) => {
        const figure = document.createElement("figure");
        const img = new Image();
        img.src = url;
        img.alt = `image ${index + 1} of ${task.id}`;
        const link = document.createElement("a");
        link.href = url;
        link.download = `${task.id}-${index}.png`;
        link.textContent = "Download";
        const onward = document.createElement("button");
        onward.type = "button";
        onward.className = "continue";
        onward.textContent = "Continue from this image";
        onward.addEventListener("click", () => {
          setContinuing({ id: task.id, image: url });
          $("prompt").focus();
        });
        figure.append(img, link, onward);
        return figure;
      }),
    );
    refreshUsage();
  }
  const error = task.error;
  if (task.status === "failed" && error) {
    const problem = item.querySelector(".problem");
    problem.textContent = error.message;
    problem.hidden = false;
  }
}

async function follow(item, id, api) {
  const base = api === "interactions" ? `/v1beta/interactions/${id}` : `/v1/tasks/${id}`;
  item.querySelector(".cancel").addEventListener("click", async () => {
    try {
      show(item, await call("POST", `${base}/cancel`));
    } catch (error) {
      showError(error.message);
    }
  });
  let wait = 300;
  for (;;) {
    const task = await call("GET", base);
    show(item, task);
    if (TERMINAL.has(task.status)) return;
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 1.5, 2000);
  }
}

async function submit(sent) {
  showError("");
  $("submit").disabled = true;
  try {
    const task = await call("POST", sent.path, sent.body);
    const item = taskCard(sent);
    item.dataset.id = task.id;
    follow(item, task.id, sent.api).catch((error) => showError(error.message));
  } catch (error) {
    showError(error.message);
  } finally {
    $("submit").disabled = false;
  }
}

// -- usage and templates -------------------------------------------------------------------------------

async function refreshUsage() {
  try {
    const report = await call("GET", "/v1/usage?group_by=model");
    const images = report.data.reduce((sum, row) => sum + row.images, 0);
    const cost = report.data.reduce((sum, row) => sum + (row.cost_usd || 0), 0);
    $("usage").textContent = `Usage so far: ${images} images, $${usd(cost)}`;
  } catch {
    $("usage").textContent = "";
  }
}

function showTemplates() {
  $("templates").replaceChildren(
    ...TEMPLATES.map((template) => {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = template.title;
      button.title = template.template;
      button.dataset.template = template.id;
      button.addEventListener("click", () => {
        $("prompt").value = template.example;
        $("prompt").focus();
      });
      return button;
    }),
  );
}

// -- start ---------------------------------------------------------------------------------------------

async function loadModels() {
  try {
    const list = await call("GET", "/v1/models");
    models.clear();
    for (const model of list.data) models.set(model.id, model);
    fill($("model"), [...models.keys()], $("model").value || list.data[0]?.id);
    showModel();
    showError("");
    refreshUsage();
  } catch (error) {
    showError(error.message);
  }
}

function start() {
  $("api-key").value = localStorage.getItem(KEY_STORE) || "";
  $("api-key").addEventListener("change", () => {
    localStorage.setItem(KEY_STORE, $("api-key").value.trim());
    loadModels();
  });
  $("model").addEventListener("change", showModel);
  $("aspect").addEventListener("change", showOutput);
  $("size").addEventListener("change", showOutput);
  $("n").addEventListener("input", showOutput);
  $("files").addEventListener("change", (event) => addReferences([...event.target.files]));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addReferences([...event.dataTransfer.files]);
  });
  document.addEventListener("paste", (event) => {
    const files = [...event.clipboardData.items].filter((i) => i.kind === "file").map((i) => i.getAsFile());
    if (files.length) addReferences(files);
  });
  $("stop-continuing").addEventListener("click", () => setContinuing(null));
  $("generate").addEventListener("submit", (event) => {
    event.preventDefault();
    submit(request());
  });
  showTemplates();
  loadModels();
}

start();

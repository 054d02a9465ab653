// The playground: the model picker comes from GET /v1/models, images are made as async tasks with
// POST /v1/images/generations and followed with GET /v1/tasks/{id}: the same calls any client makes.

const $ = (id) => document.getElementById(id);
const KEY_STORE = "pixelgate.apiKey";
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const models = new Map();

function headers() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}`, "Content-Type": "application/json" } : { "Content-Type": "application/json" };
}

async function call(method, path, body) {
  const response = await fetch(path, { method, headers: headers(), body: body ? JSON.stringify(body) : undefined });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = data.error?.message || `HTTP ${response.status}`;
    throw new Error(message);
  }
  return data;
}

function fill(select, values, chosen) {
  select.replaceChildren(...values.map((value) => new Option(value, value, false, value === chosen)));
}

function capabilities() {
  return models.get($("model").value)?.capabilities;
}

function showModel() {
  const caps = capabilities();
  if (!caps) return;
  fill($("aspect"), caps.aspect_ratios, caps.aspect_ratios.includes($("aspect").value) ? $("aspect").value : caps.aspect_ratios[0]);
  fill($("size"), caps.image_sizes, caps.image_sizes.includes($("size").value) ? $("size").value : caps.default_image_size);
  showOutput();
}

function showOutput() {
  const caps = capabilities();
  if (!caps) return;
  const pixels = caps.output_pixels?.[$("aspect").value]?.[$("size").value];
  const n = Number($("n").value) || 1;
  const price = caps.price_per_image_usd;
  const cost = price == null ? "" : `, $${(price * n).toFixed(3)}`;
  $("output").textContent = pixels ? `Output: ${pixels} px${cost}` : "";
  $("output").dataset.pixels = pixels || "";
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function request() {
  const body = {
    model: $("model").value,
    prompt: $("prompt").value,
    n: Number($("n").value) || 1,
    response_format: "url",
    async: true,
  };
  const exact = $("pixels").value.trim();
  if (exact) {
    body.size = exact;
  } else {
    body.size = $("aspect").value;
    body.resolution = $("size").value;
  }
  if ($("seed").value !== "") body.seed = Number($("seed").value);
  return body;
}

function taskCard(body) {
  const item = document.createElement("li");
  item.className = "task";
  item.innerHTML = `<div class="head"><span class="status">queued</span> <span class="prompt"></span>
    <button type="button" class="cancel">Cancel</button></div><div class="images"></div><p class="problem" hidden></p>`;
  item.querySelector(".prompt").textContent = `${body.model}: ${body.prompt}`;
  $("tasks").prepend(item);
  return item;
}

function show(item, task) {
  // The API's own word for the state (queued, processing, completed…), and whether it is still going.
  item.dataset.status = task.status;
  item.dataset.state = TERMINAL.has(task.status) ? "done" : "working";
  const status = item.querySelector(".status");
  status.textContent = !TERMINAL.has(task.status) && task.progress ? `${task.status} ${task.progress}%` : task.status;
  item.querySelector(".cancel").hidden = TERMINAL.has(task.status);
  if (task.status === "completed") {
    const images = item.querySelector(".images");
    images.replaceChildren(
      ...(task.data || []).map((image, index) => {
        const figure = document.createElement("figure");
        const img = new Image();
        img.src = image.url;
        img.alt = `image ${index + 1} for: ${task.request?.prompt || "the prompt"}`;
        const link = document.createElement("a");
        link.href = image.url;
        link.download = `${task.id}-${index}.png`;
        link.textContent = "Download";
        figure.append(img, link);
        return figure;
      }),
    );
  }
  if (task.status === "failed" && task.error) {
    const problem = item.querySelector(".problem");
    problem.textContent = task.error.message;
    problem.hidden = false;
  }
}

async function follow(item, id) {
  item.querySelector(".cancel").addEventListener("click", async () => {
    try {
      show(item, await call("POST", `/v1/tasks/${id}/cancel`));
    } catch (error) {
      showError(error.message);
    }
  });
  let wait = 300;
  for (;;) {
    const task = await call("GET", `/v1/tasks/${id}`);
    show(item, task);
    if (TERMINAL.has(task.status)) return;
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 1.5, 2000);
  }
}

async function generate(event) {
  event.preventDefault();
  showError("");
  const body = request();
  $("submit").disabled = true;
  try {
    const task = await call("POST", "/v1/images/generations", body);
    const item = taskCard(body);
    item.dataset.id = task.id;
    follow(item, task.id).catch((error) => showError(error.message));
  } catch (error) {
    showError(error.message);
  } finally {
    $("submit").disabled = false;
  }
}

async function start() {
  $("api-key").value = localStorage.getItem(KEY_STORE) || "";
  $("api-key").addEventListener("change", () => {
    localStorage.setItem(KEY_STORE, $("api-key").value.trim());
    loadModels();
  });
  $("model").addEventListener("change", showModel);
  $("aspect").addEventListener("change", showOutput);
  $("size").addEventListener("change", showOutput);
  $("n").addEventListener("input", showOutput);
  $("generate").addEventListener("submit", generate);
  await loadModels();
}

async function loadModels() {
  try {
    const list = await call("GET", "/v1/models");
    models.clear();
    for (const model of list.data) models.set(model.id, model);
    fill($("model"), [...models.keys()], $("model").value || list.data[0]?.id);
    showModel();
    showError("");
  } catch (error) {
    showError(error.message);
  }
}

start();

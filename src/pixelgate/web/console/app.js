// The operator's console. Everything it shows and does goes through the documented admin API, with the
// admin key kept for this tab (sessionStorage) and sent as `Authorization: Bearer`:
// - usage: GET /admin/usage/series (by day and by hour, split by a group);
// - keys: GET/POST/PATCH/DELETE /admin/keys, …/disable, …/enable; GET /v1/usage?group_by=key for spend;
// - channels: GET /admin/channels, POST /admin/channels/{name}/reset|disable|enable (polled every 3 s);
// - tasks: GET /admin/tasks, GET /admin/tasks/{id}, POST /admin/tasks/{id}/cancel; GET /v1/batches.

import { bucketLabel, drawSeries, usd } from "./charts.js";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "pixelgate.adminKey";
const VIEWS = ["usage", "keys", "channels", "tasks", "task"];
let poller = null;
let keyNames = new Map(); // key id -> name, for labels
let tasksAfter = null;
let batchesAfter = null;

// -- talking to the server -----------------------------------------------------------------------------

class Refused extends Error {}

async function call(method, path, body) {
  const key = sessionStorage.getItem(KEY_STORE) || "";
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${key}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401 || response.status === 403) throw new Refused(data.error?.message || "not signed in");
  if (!response.ok) throw new Error(data.error?.message || `HTTP ${response.status}`);
  return data;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// Runs an action, showing its error (and the sign-in form when the key is refused).
async function attempt(action) {
  try {
    showError("");
    return await action();
  } catch (error) {
    if (error instanceof Refused) {
      sessionStorage.removeItem(KEY_STORE);
      route();
    }
    showError(error.message);
    return undefined;
  }
}

function element(name, attributes = {}, text = "") {
  const node = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  if (text !== "") node.textContent = text;
  return node;
}

function cell(label, text, attributes = {}) {
  return element("td", { "data-label": label, ...attributes }, text == null ? "" : String(text));
}

function button(text, onClick, attributes = {}) {
  const node = element("button", { type: "button", ...attributes }, text);
  node.addEventListener("click", onClick);
  return node;
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19) : "";
}

// -- routing -------------------------------------------------------------------------------------------

function route() {
  clearInterval(poller);
  poller = null;
  const signedIn = Boolean(sessionStorage.getItem(KEY_STORE));
  $("login").hidden = signedIn;
  $("nav").hidden = !signedIn;
  const [, name = "usage", id] = location.hash.match(/^#\/([a-z]+)(?:\/(.+))?/) || [];
  const view = id && name === "tasks" ? "task" : VIEWS.includes(name) ? name : "usage";
  for (const each of VIEWS) $(`view-${each}`).hidden = !signedIn || each !== view;
  for (const link of document.querySelectorAll("#nav a")) {
    link.toggleAttribute("aria-current", link.getAttribute("href") === `#/${view === "task" ? "tasks" : view}`);
    if (link.hasAttribute("aria-current")) link.setAttribute("aria-current", "page");
  }
  document.body.dataset.view = signedIn ? view : "login";
  if (!signedIn) return;
  ({ usage: showUsage, keys: showKeys, channels: showChannels, tasks: showTasks, task: () => showTask(decodeURIComponent(id)) })[view]();
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORE, $("admin-key").value.trim());
  const ok = await attempt(() => call("GET", "/admin/keys"));
  if (!ok) {
    sessionStorage.removeItem(KEY_STORE);
    route();
    return;
  }
  $("admin-key").value = "";
  route();
  document.querySelector("#nav a")?.focus();
});

$("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORE);
  showError("");
  route();
  $("admin-key").focus();
});

window.addEventListener("hashchange", () => {
  showError("");
  route();
});

// -- usage over time -----------------------------------------------------------------------------------

async function loadNames() {
  const keys = await call("GET", "/admin/keys");
  keyNames = new Map(keys.data.map((key) => [key.id, key.name]));
  return keys;
}

async function showUsage() {
  await attempt(async () => {
    const groupBy = $("group-by").value;
    const metric = $("metric").value;
    const query = groupBy ? `&group_by=${groupBy}` : "";
    const [day, hour] = await Promise.all([
      call("GET", `/admin/usage/series?bucket=day${query}`),
      call("GET", `/admin/usage/series?bucket=hour${query}`),
      groupBy === "key" ? loadNames() : null,
    ]);
    const name = (group) => (group == null ? "all" : groupBy === "key" ? `${keyNames.get(group) ?? "deleted"} (${group})` : group);
    drawSeries($("chart-day"), day, metric, name);
    drawSeries($("chart-hour"), hour, metric, name);
    $("view-usage").dataset.loaded = `${groupBy}:${metric}`;
  });
}

$("group-by").addEventListener("change", showUsage);
$("metric").addEventListener("change", showUsage);

// -- keys ----------------------------------------------------------------------------------------------

function limitsText(limits) {
  const names = { requests_per_minute: "rpm", concurrent_tasks: "concurrent", images_per_day: "images/day" };
  return Object.entries(limits || {})
    .filter(([name]) => name !== "credit_budget_usd")
    .map(([name, value]) => `${names[name] ?? name} ${value}`)
    .join(", ") || "none";
}

async function showKeys() {
  await attempt(async () => {
    const [keys, usage] = await Promise.all([loadNames(), call("GET", "/v1/usage?group_by=key")]);
    const spent = new Map(usage.data.map((row) => [row.key, row.cost_usd]));
    const rows = keys.data.map((key) => {
      const spend = spent.get(key.id) ?? 0;
      const budget = key.limits?.credit_budget_usd;
      const row = element("tr", { "data-id": key.id, "data-state": key.state, "data-spend": spend, "data-budget": budget ?? "" });
      const money = element("td", { "data-label": "Spend / budget", class: "spend" });
      money.append(`$${usd(spend)} / ${budget == null ? "no budget" : `$${usd(budget)}`}`);
      if (budget) {
        money.append(element("meter", { min: 0, max: budget, value: Math.min(spend, budget), high: budget * 0.8, "aria-label": `${key.name}: share of budget spent` }));
      }
      const actions = element("td", { "data-label": "Actions", class: "actions" });
      actions.append(
        button("Edit limits", () => editLimits(key), { class: "edit", "aria-label": `Edit limits of ${key.name}` }),
        key.state === "disabled"
          ? button("Enable", () => keyAction(key, "enable"), { class: "enable", "aria-label": `Enable ${key.name}` })
          : button("Disable", () => keyAction(key, "disable"), { class: "disable", "aria-label": `Disable ${key.name}` }),
        button("Delete", () => deleteKey(key), { class: "delete", "aria-label": `Delete ${key.name}` }),
      );
      row.append(
        cell("Name", key.name, { class: "name" }), cell("Id", key.id, { class: "mono" }), cell("Owner", key.owner ?? ""),
        cell("State", key.state, { class: "state" }), money, cell("Limits", limitsText(key.limits)), actions,
      );
      return row;
    });
    $("keys").tBodies[0].replaceChildren(...rows);
    $("view-keys").dataset.loaded = String(Date.now());
  });
}

async function keyAction(key, action) {
  await attempt(() => call("POST", `/admin/keys/${encodeURIComponent(key.id)}/${action}`));
  await showKeys();
  document.querySelector(`#keys tr[data-id="${key.id}"] .${action === "enable" ? "disable" : "enable"}`)?.focus();
}

async function deleteKey(key) {
  if (!window.confirm(`Delete the key ${key.name} (${key.id})? Clients using it are refused from then on.`)) return;
  await attempt(() => call("DELETE", `/admin/keys/${encodeURIComponent(key.id)}`));
  await showKeys();
}

const LIMITS = ["credit_budget_usd", "requests_per_minute", "concurrent_tasks", "images_per_day"];
let editing = null;

function editLimits(key) {
  editing = key;
  $("limits-name").textContent = `${key.name} (${key.id})`;
  for (const name of LIMITS) $(`limit-${name}`).value = key.limits?.[name] ?? "";
  $("limits").hidden = false;
  $(`limit-${LIMITS[0]}`).focus();
}

$("limits").addEventListener("submit", async (event) => {
  event.preventDefault();
  const limits = Object.fromEntries(LIMITS.map((name) => {
    const text = $(`limit-${name}`).value.trim();
    return [name, text === "" ? null : Number(text)];
  }));
  const done = await attempt(() => call("PATCH", `/admin/keys/${encodeURIComponent(editing.id)}`, { limits }));
  if (!done) return;
  $("limits").hidden = true;
  await showKeys();
});

$("limits-close").addEventListener("click", () => {
  $("limits").hidden = true;
});

$("new-key").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { name: $("new-name").value.trim() };
  if ($("new-owner").value.trim()) body.owner = $("new-owner").value.trim();
  const models = $("new-models").value.split(",").map((m) => m.trim()).filter(Boolean);
  if (models.length) body.models = models;
  if ($("new-budget").value.trim()) body.limits = { credit_budget_usd: Number($("new-budget").value) };
  const made = await attempt(() => call("POST", "/admin/keys", body));
  if (!made) return;
  $("new-secret").textContent = made.key;
  $("new-secret").dataset.id = made.id;
  $("copied").textContent = "";
  $("secret-box").hidden = false;
  $("new-key").reset();
  await showKeys();
  $("copy-secret").focus();
});

$("copy-secret").addEventListener("click", async () => {
  const secret = $("new-secret").textContent;
  try {
    await navigator.clipboard.writeText(secret);
    $("copied").textContent = "Copied.";
  } catch {
    window.getSelection().selectAllChildren($("new-secret"));
    $("copied").textContent = "Selected: press Ctrl+C to copy.";
  }
});

// -- channels ------------------------------------------------------------------------------------------

function errorsText(errors) {
  const entries = Object.entries(errors || {});
  return entries.length ? entries.map(([kind, count]) => `${kind} ${count}`).join(", ") : "none";
}

function channelRow(name) {
  const existing = document.querySelector(`#channels tr[data-name="${CSS.escape(name)}"]`);
  if (existing) return existing;
  const row = element("tr", { "data-name": name });
  const actions = element("td", { "data-label": "Actions", class: "actions" });
  for (const action of ["reset", "disable", "enable"]) {
    const label = action[0].toUpperCase() + action.slice(1);
    actions.append(button(label, () => channelAction(name, action), { class: action, "aria-label": `${label} ${name}` }));
  }
  row.append(
    cell("Channel", name, { class: "name" }), cell("State", "", { class: "state" }), cell("In flight", "", { class: "flight" }),
    cell("Requests", "", { class: "requests" }), cell("Errors", "", { class: "errors" }), cell("Mean latency", "", { class: "latency" }),
    cell("Last error", "", { class: "last-error" }), actions,
  );
  return row;
}

// Rows are kept and their cells updated, so a refresh never takes the keyboard focus off a button.
async function refreshChannels() {
  const channels = await call("GET", "/admin/channels");
  $("channels-process").textContent = `As process ${channels.process} sees them.`;
  const rows = channels.data.map((channel) => {
    const row = channelRow(channel.name);
    const errors = Object.values(channel.errors || {}).reduce((a, b) => a + b, 0);
    Object.assign(row.dataset, { state: channel.state, errors, inFlight: channel.in_flight });
    const state = channel.until && channel.seconds_left ? `${channel.state} (${Math.ceil(channel.seconds_left)} s left)` : channel.state;
    const text = {
      state: channel.disabled_reason ? `${state}: ${channel.disabled_reason}` : state,
      flight: `${channel.in_flight} / ${channel.concurrency ?? "∞"}`,
      requests: `${channel.requests} (${channel.succeeded} ok)`,
      errors: `${errors}: ${errorsText(channel.errors)}`,
      latency: channel.mean_seconds == null ? "" : `${channel.mean_seconds} s`,
      "last-error": channel.last_error ? `${channel.last_error} (${when(channel.last_error_at)})` : "",
    };
    for (const [name, value] of Object.entries(text)) {
      const target = row.querySelector(`.${name}`);
      if (target.textContent !== value) target.textContent = value;
    }
    row.querySelector(".disable").disabled = channel.state === "disabled";
    row.querySelector(".enable").disabled = channel.state !== "disabled";
    return row;
  });
  const body = $("channels").tBodies[0];
  rows.forEach((row, index) => {
    if (body.children[index] !== row) body.insertBefore(row, body.children[index] ?? null);
  });
  while (body.children.length > rows.length) body.lastElementChild.remove();
  $("view-channels").dataset.loaded = String(Date.now());
}

async function channelAction(name, action) {
  const body = action === "disable" ? { reason: "disabled from the console" } : undefined;
  await attempt(async () => {
    await call("POST", `/admin/channels/${encodeURIComponent(name)}/${action}`, body);
    await refreshChannels();
  });
}

async function showChannels() {
  await attempt(refreshChannels);
  poller = setInterval(() => attempt(refreshChannels), 3000);
}

// -- tasks and batches ---------------------------------------------------------------------------------

function taskRow(task) {
  const row = element("tr", {
    "data-id": task.id, "data-status": task.status, "data-model": task.model, "data-key": task.key_id ?? "",
    "data-channel": task.channel ?? "", "data-duration": task.duration_seconds ?? "", "data-cost": task.cost_usd ?? "",
    "data-error": task.error?.message ?? "",
  });
  const link = element("td", { "data-label": "Task" });
  link.append(element("a", { href: `#/tasks/${encodeURIComponent(task.id)}`, class: "mono" }, task.id));
  row.append(
    link, cell("Status", task.status, { class: "status" }), cell("Model", task.model),
    cell("Key", task.key_name ? `${task.key_name} (${task.key_id})` : task.key_id ?? "none"), cell("Channel", task.channel ?? ""),
    cell("Duration", task.duration_seconds == null ? "" : `${task.duration_seconds} s`),
    cell("Cost", task.cost_usd == null ? "" : `$${usd(task.cost_usd)}`),
    cell("Error", task.error ? `${task.error.code ?? ""}: ${task.error.message ?? ""}` : "", { class: "problem" }),
  );
  // The whole row opens the task; the link in it is what the keyboard reaches.
  row.addEventListener("click", (event) => {
    if (!event.target.closest("a, button")) location.hash = `#/tasks/${encodeURIComponent(task.id)}`;
  });
  return row;
}

function taskQuery() {
  const params = new URLSearchParams({ limit: "25" });
  if ($("filter-status").value) params.set("status", $("filter-status").value);
  if ($("filter-model").value.trim()) params.set("model", $("filter-model").value.trim());
  if ($("filter-key").value) params.set("key_id", $("filter-key").value);
  if (tasksAfter) params.set("after", tasksAfter);
  return params;
}

async function loadTasks(more) {
  if (!more) tasksAfter = null;
  const page = await call("GET", `/admin/tasks?${taskQuery()}`);
  const rows = page.data.map(taskRow);
  if (more) $("tasks").tBodies[0].append(...rows);
  else $("tasks").tBodies[0].replaceChildren(...rows);
  tasksAfter = page.last_id;
  $("more-tasks").hidden = !page.has_more;
  $("view-tasks").dataset.loaded = String(Date.now());
}

function batchRow(batch) {
  const counts = batch.request_counts || { total: 0, completed: 0, failed: 0 };
  const done = counts.completed + counts.failed;
  const row = element("tr", {
    "data-id": batch.id, "data-status": batch.status, "data-total": counts.total,
    "data-completed": counts.completed, "data-failed": counts.failed,
  });
  const progress = element("td", { "data-label": "Progress" });
  progress.append(
    element("progress", { max: counts.total || 1, value: done, "aria-label": `${batch.id}: lines done` }),
    ` ${done} of ${counts.total} (${counts.failed} failed)`,
  );
  row.append(cell("Batch", batch.id, { class: "mono" }), cell("Status", batch.status), progress, cell("Created", when(batch.created_at)));
  return row;
}

async function loadBatches(more) {
  const params = new URLSearchParams({ limit: "20" });
  if (more && batchesAfter) params.set("after", batchesAfter);
  const page = await call("GET", `/v1/batches?${params}`);
  const rows = page.data.map(batchRow);
  if (more) $("batches").tBodies[0].append(...rows);
  else $("batches").tBodies[0].replaceChildren(...rows);
  batchesAfter = page.last_id;
  $("more-batches").hidden = !page.has_more;
}

async function fillKeyFilter() {
  const keys = await loadNames();
  const chosen = $("filter-key").value;
  $("filter-key").replaceChildren(
    new Option("any", ""),
    ...keys.data.map((key) => new Option(`${key.name} (${key.id})`, key.id, false, key.id === chosen)),
  );
  const models = await fetch("/v1/models").then((r) => (r.ok ? r.json() : { data: [] })).catch(() => ({ data: [] }));
  $("model-list").replaceChildren(...(models.data || []).map((model) => new Option(model.id)));
}

async function showTasks() {
  await attempt(() => Promise.all([fillKeyFilter(), loadTasks(false), loadBatches(false)]));
}

$("task-filters").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(() => loadTasks(false));
});
$("more-tasks").addEventListener("click", () => attempt(() => loadTasks(true)));
$("more-batches").addEventListener("click", () => attempt(() => loadBatches(true)));

async function showTask(id) {
  $("task-title").textContent = `Task ${id}`;
  $("task-fields").replaceChildren();
  $("task-images").replaceChildren();
  $("task-request").textContent = "";
  $("cancel-task").hidden = true;
  await attempt(async () => {
    const task = await call("GET", `/admin/tasks/${encodeURIComponent(id)}`);
    const fields = [
      ["Status", task.status], ["Model", task.model], ["Dialect", task.dialect],
      ["Key", task.key_name ? `${task.key_name} (${task.key_id})` : task.key_id ?? "none"], ["Owner", task.owner ?? ""],
      ["Channel", task.channel ?? ""], ["Batch", task.batch_id ?? ""], ["Accepted", when(task.created_at)],
      ["Duration", task.duration_seconds == null ? "" : `${task.duration_seconds} s`], ["Attempts", task.attempts],
      ["Billing", task.billing ?? ""], ["Cost", task.cost_usd == null ? "" : `$${usd(task.cost_usd)}`],
      ["Images", task.image_count],
    ];
    if (task.error) fields.push(["Error", `${task.error.code ?? ""}: ${task.error.message ?? ""}`]);
    $("task-fields").replaceChildren(...fields.flatMap(([term, value]) => [
      element("dt", {}, term), element("dd", { "data-field": term.toLowerCase() }, String(value)),
    ]));
    for (const image of task.images) {
      const figure = element("figure");
      if (image.url) figure.append(element("img", { src: image.url, alt: image.revised_prompt || `image of ${task.id}`, width: image.width, height: image.height }));
      figure.append(element("figcaption", {}, image.url ? `${image.width}x${image.height} ${image.mime_type}` : "expired"));
      $("task-images").append(figure);
    }
    $("task-request").textContent = JSON.stringify(task.request, null, 2);
    $("cancel-task").hidden = !["queued", "running"].includes(task.status);
    $("view-task").dataset.status = task.status;
  });
}

$("cancel-task").addEventListener("click", async () => {
  const id = decodeURIComponent(location.hash.split("/")[2]);
  await attempt(() => call("POST", `/admin/tasks/${encodeURIComponent(id)}/cancel`));
  await showTask(id);
});

route();

// Bar charts as plain SVG (no library): one bar per bucket of a usage series, stacked by group, with an
// accessible table of the same figures beside it. The numbers in the table's data attributes are the
// API's own, unrounded; the text shows them rounded for reading.

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#0a66c2", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d"];
const WIDTH = 600;
const HEIGHT = 180;
const AXIS = 36; // room at the left for the scale

function svg(name, attributes = {}, text = "") {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text) node.textContent = text;
  return node;
}

function html(name, attributes = {}, text = "") {
  const node = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text) node.textContent = text;
  return node;
}

export function bucketLabel(start, bucket) {
  const iso = new Date(start * 1000).toISOString();
  return bucket === "day" ? iso.slice(0, 10) : `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
}

// An amount as billed, to the nano-dollar, with at least four decimals (as the CLI and playground show it).
export function usd(amount) {
  const whole = Number(amount).toFixed(9);
  const dot = whole.indexOf(".");
  return whole.slice(0, Math.max(whole.replace(/0+$/, "").length, dot + 5));
}

// series: the JSON of GET /admin/usage/series; metric: "cost_usd" or "images"; groupName: a group's label.
export function drawSeries(container, series, metric, groupName = (group) => group ?? "all") {
  const format = (value) => (metric === "cost_usd" ? `$${usd(value)}` : String(value));
  const step = series.bucket_seconds;
  const starts = [];
  for (let start = series.since; start < series.until; start += step) starts.push(start);
  const groups = [...new Set(series.data.map((point) => point.group))];
  const color = (group) => COLORS[groups.indexOf(group) % COLORS.length];
  const sums = new Map(starts.map((start) => [start, 0]));
  for (const point of series.data) sums.set(point.start, (sums.get(point.start) ?? 0) + point[metric]);
  const top = Math.max(...sums.values(), 0) || 1;
  const slot = (WIDTH - AXIS) / Math.max(starts.length, 1);
  const title = series.bucket === "day" ? "By day (UTC), the last 30 days" : "By hour (UTC), the last 24 hours";

  const figure = html("figure");
  figure.append(html("figcaption", {}, title));
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT + 14}`, role: "img", class: "bars",
    "aria-label": `${title}: ${format(series.total[metric])} in all; the table below has each figure`,
  });
  chart.append(svg("text", { x: 0, y: 10, class: "scale" }, format(top)));
  chart.append(svg("line", { x1: AXIS, x2: WIDTH, y1: HEIGHT, y2: HEIGHT, class: "axis" }));
  const stacked = new Map(starts.map((start) => [start, 0]));
  for (const point of series.data) {
    const index = starts.indexOf(point.start);
    if (index < 0) continue;
    const height = (point[metric] / top) * (HEIGHT - 14);
    const below = stacked.get(point.start);
    stacked.set(point.start, below + height);
    const bar = svg("rect", {
      x: AXIS + index * slot + slot * 0.1, width: Math.max(slot * 0.8, 1), y: HEIGHT - below - height,
      height: Math.max(height, 0), fill: color(point.group),
      "data-start": point.start, "data-group": point.group ?? "", "data-value": point[metric],
    });
    bar.append(svg("title", {}, `${bucketLabel(point.start, series.bucket)} ${groupName(point.group)}: ${format(point[metric])}`));
    chart.append(bar);
  }
  for (const index of [0, starts.length - 1]) {
    if (starts[index] === undefined) continue;
    const label = series.bucket === "day" ? bucketLabel(starts[index], "day") : bucketLabel(starts[index], "hour").slice(11);
    chart.append(svg("text", { x: index ? WIDTH : AXIS, y: HEIGHT + 12, class: "tick", "text-anchor": index ? "end" : "start" }, label));
  }
  figure.append(chart);

  if (groups.length > 1 || groups[0]) {
    const legend = html("ul", { class: "legend", "aria-hidden": "true" });
    for (const group of groups) {
      const item = html("li");
      item.append(html("span", { class: "swatch", style: `background:${color(group)}` }), groupName(group));
      legend.append(item);
    }
    figure.append(legend);
  }

  const total = series.total;
  figure.append(html("p", {
    class: "totals", "data-tasks": total.tasks, "data-images": total.images, "data-cost": total.cost_usd,
  }, `In all: ${total.tasks} tasks, ${total.images} images, $${usd(total.cost_usd)}`));

  const details = html("details", { class: "figures" });
  details.append(html("summary", {}, "The figures as a table"));
  const wrap = html("div", { class: "table" });
  const table = html("table");
  table.innerHTML = '<thead><tr><th scope="col">Bucket</th><th scope="col">Group</th><th scope="col">Tasks</th>'
    + '<th scope="col">Images</th><th scope="col">Spend</th></tr></thead>';
  const body = html("tbody");
  for (const point of series.data) {
    const row = html("tr", {
      "data-start": point.start, "data-group": point.group ?? "", "data-tasks": point.tasks,
      "data-images": point.images, "data-cost": point.cost_usd,
    });
    for (const [label, text] of [
      ["Bucket", bucketLabel(point.start, series.bucket)], ["Group", groupName(point.group)],
      ["Tasks", point.tasks], ["Images", point.images], ["Spend", `$${usd(point.cost_usd)}`],
    ]) row.append(html("td", { "data-label": label }, String(text)));
    body.append(row);
  }
  if (!series.data.length) {
    const empty = html("tr");
    empty.append(html("td", { colspan: 5 }, "No usage in this span."));
    body.append(empty);
  }
  table.append(body);
  wrap.append(table);
  details.append(wrap);
  figure.append(details);
  container.replaceChildren(figure);
}

// The console's live parts: charts of the last fifteen minutes, redrawn every few seconds,
// and the redrive confirmation. Everything else is rendered on the server.
"use strict";

const REFRESH_MS = 5000;
const PALETTE = ["#1f6feb", "#d1242f", "#1a7f37", "#a86b00", "#8250df", "#0969da", "#bf3989", "#57606a"];

function seriesOf(history, kind) {
  // history: {group: [{at, lag, in, out, partitions: {"topic-p": lag}}]}
  const times = new Set();
  const lines = new Map();
  for (const [group, points] of Object.entries(history)) {
    for (const point of points) {
      times.add(point.at);
      if (kind === "partitions") {
        for (const [name, lag] of Object.entries(point.partitions)) {
          if (!lines.has(name)) lines.set(name, new Map());
          lines.get(name).set(point.at, lag);
        }
      } else {
        if (!lines.has(group)) lines.set(group, new Map());
        lines.get(group).set(point.at, point.lag);
      }
    }
  }
  const xs = [...times].sort((a, b) => a - b);
  const names = [...lines.keys()].sort();
  const data = [xs, ...names.map((name) => xs.map((t) => lines.get(name).get(t) ?? null))];
  return { names, data };
}

async function drawHistory(element) {
  const reply = await fetch(element.dataset.history);
  if (!reply.ok) return;
  const { names, data } = seriesOf(await reply.json(), element.dataset.series);
  const key = names.join("|");
  if (element._plot && element._key === key) {
    element._plot.setData(data);
  } else {
    if (element._plot) element._plot.destroy();
    element.textContent = names.length ? "" : "no samples yet";
    if (!names.length) return;
    element._plot = new uPlot({
      width: element.clientWidth || 900,
      height: 260,
      series: [{}, ...names.map((name, i) => ({ label: name, stroke: PALETTE[i % PALETTE.length], width: 2 }))],
      axes: [{}, { label: "lag (records)", size: 70 }],
    }, data, element);
    element._key = key;
  }
  element.dataset.points = String(data[0].length);
}

async function drawDecisions(element) {
  const reply = await fetch(element.dataset.decisions);
  if (!reply.ok) return;
  const decisions = (await reply.json()).decisions;
  const data = [decisions.map((d) => d.at), decisions.map((d) => d.desired), decisions.map((d) => d.replicas)];
  if (element._plot) { element._plot.setData(data); return; }
  element.textContent = "";
  element._plot = new uPlot({
    width: element.clientWidth || 900,
    height: 200,
    series: [{}, { label: "desired", stroke: PALETTE[0], width: 2 }, { label: "running", stroke: PALETTE[2], width: 2 }],
    axes: [{}, { label: "replicas" }],
  }, data, element);
  element.dataset.points = String(data[0].length);
}

function live(element, draw) {
  const run = () => draw(element).catch((error) => { element.dataset.error = String(error); });
  run();
  setInterval(run, REFRESH_MS);
}

function confirmRedrive(form) {
  const outcome = document.getElementById("outcome");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const params = new URLSearchParams({ token: form.dataset.token });
    if (form.dataset.errorType) params.set("error_type", form.dataset.errorType);
    const reply = await fetch(`/api/dlq/${encodeURIComponent(form.dataset.topic)}/redrive?${params}`, {
      method: "POST",
      headers: { "X-API-Key": form.elements.key.value },
    });
    const body = await reply.json();
    outcome.textContent = reply.ok
      ? `redrove ${body.sent} record(s); ${body.left_in_place} left in place (group ${body.group})`
      : `refused (${reply.status}): ${body.error.message}`;
    outcome.className = reply.ok ? "" : "bad";
    if (reply.ok) form.querySelector("button").disabled = true;
  });
}

document.querySelectorAll("[data-history]").forEach((element) => live(element, drawHistory));
document.querySelectorAll("[data-decisions]").forEach((element) => live(element, drawDecisions));
document.querySelectorAll("form#confirm").forEach(confirmRedrive);

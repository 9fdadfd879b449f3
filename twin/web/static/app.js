// The dsmr-twin web console: live views by server-sent events, controls by POST. Its API is
// relative to the page: /api/... for a twin's own console, /meter/N/api/... in a fleet's.
// Plain JavaScript with no build step and no outside code: everything ships in the package.
// Text from the meter (telegrams, messages, errors) is only ever set as textContent.
"use strict";

const state = {};  // the sections as last received
let csrf = "";

const $ = (selector) => document.querySelector(selector);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function fillRows(tbody, rows) {
  const fragment = document.createDocumentFragment();
  for (const cells of rows) {
    const tr = el("tr");
    for (const cell of cells) tr.append(el("td", cell));
    fragment.append(tr);
  }
  tbody.replaceChildren(fragment);
}

function fillPairs(dl, pairs) {
  const fragment = document.createDocumentFragment();
  for (const [key, value] of pairs) {
    fragment.append(el("dt", key), el("dd", value === null || value === undefined ? "-" : value));
  }
  dl.replaceChildren(fragment);
}

function notice(text) {
  const box = $("#notice");
  box.textContent = text || "";
  box.hidden = !text;
}

// ------------------------------------------------------------------ views

function showStatus(s) {
  $("#equipment").textContent = s.equipment_id;
  $("#local-time").textContent = s.local_time.replace("T", " ");
  $("#dst").textContent = s.dst ? "S" : "W";
  $("#speed").textContent = "x" + s.speed;
  const supply = $("#supply");
  supply.textContent = s.powered ? "powered" : "POWER FAILURE";
  supply.className = "badge " + (s.powered ? "on" : "alarm");
  for (const cell of document.querySelectorAll("[data-register]")) {
    cell.textContent = Number(s[cell.dataset.register]).toFixed(3);
  }
  $("#tariff").textContent = s.tariff + (s.tariff === 2 ? " (normal)" : " (low)");
  $("#power").textContent = "+" + s.import_w + " / -" + s.export_w;
  $("#failures").textContent = s.power_failures + " (" + s.long_power_failures + ")";
  $("#admin").textContent = ["0 undefined", "1 off", "2 on"][s.admin_state] || s.admin_state;
  $("#override").textContent = s.load_override_w === null ? "none" : s.load_override_w + " W";
  const m = s.message;
  $("#message").textContent = m.code || m.text ? "[" + m.code + "] " + m.text : "none";
  fillRows($("#phases tbody"), s.phases.map((p) => [
    "L" + p.phase, p.import_w, p.export_w, p.current_a, p.voltage_v.toFixed(1), p.sags, p.swells,
  ]));
  fillRows($("#events-failures tbody"), s.power_failure_log.slice().reverse().map(
    (f) => [f.end.replace("T", " ").slice(0, 19), f.duration_s + " s"]));
  fillRows($("#mbus tbody"), s.mbus.map((d) => [
    d.channel, d.device_type, d.equipment_id, d.value.toFixed(3),
    d.capture ? d.capture.replace("T", " ").slice(0, 19) : "-",
  ]));
  const ports = s.ports || {};
  showP1(ports.p1);
  const gas = ports.gasmeter;
  fillPairs($("#gasmeter"), gas ? [
    ["gas meter", gas.equipment_id], ["state", gas.state], ["status byte", gasStatus(gas.status)],
    ["on the bus", gas.attached ? "yes" : "no"], ["litres", gas.litres], ["clock", gas.clock],
  ] : [["gas meter", "none on this twin"]]);
  showP3(ports.p3, ports.modem);
  fillRows($("#services tbody"), Object.entries(ports.supervisor || {}).map(
    ([name, v]) => [name, v.state, v.restarts, v.last_error || ""]));
  const display = ports.display;
  $("#display-page").textContent = display
    ? display.mode + " · page " + display.page + "/" + display.pages + " · " + display.label : "";
}

function showP1(p1) {
  $("#request").textContent = p1 ? (p1.requested ? "raised" : "low") + " (" + p1.request + ")" : "P1 off";
  $("#p1-sent").textContent = p1 ? p1.telegrams_sent : "-";
  $("#p1-aborted").textContent = p1 ? p1.telegrams_aborted : "-";
}

// The gas meter's status byte with its bits by name (P2 §6.2.3).
const GAS_STATUS_BITS = [[0x04, "battery low"], [0x08, "permanent error"],
  [0x10, "temporary error"], [0x20, "clock off by more than 60 s"], [0x40, "fraud"]];

function gasStatus(byte) {
  const bits = GAS_STATUS_BITS.filter(([bit]) => byte & bit).map(([, name]) => name);
  return "0x" + byte.toString(16).padStart(2, "0") + (bits.length ? " (" + bits.join(", ") + ")" : "");
}

function lastWakeup(modem) {
  const wakeups = (modem && modem.recent_wakeups) || [];
  if (!wakeups.length) return modem ? "none" : "no modem";
  const w = wakeups[wakeups.length - 1];
  return w.kind + " from " + w.sender + ": " + (w.accepted ? "accepted" : "refused, " + w.reason);
}

function showP3(p3, modem) {
  if (!p3) {
    fillPairs($("#p3"), [["P3", "not served"]]);
    fillRows($("#pushes tbody"), []);
    return;
  }
  const active = p3.active ? "client " + p3.active.client + " from " + p3.active.peer : "none";
  fillPairs($("#p3"), [
    ["endpoint", p3.endpoint], ["session open", active], ["associations", p3.associations],
    ["failed logins", p3.failed_logins], ["last contact", p3.last_contact],
    ["GPRS mode", p3.gprs_mode], ["wake-up sessions", p3.wakeup_sessions],
    ["last wake-up", lastWakeup(modem)],
    ["pushes sent / failed", (p3.pushes_sent ?? 0) + " / " + (p3.push_failures ?? 0)],
  ]);
  fillRows($("#pushes tbody"), Object.entries(p3.pushes || {}).map(
    ([setup, v]) => [setup, v.sent, v.failed, v.last_error || (v.sent ? "ok" : "-")]));
}

function showEvents(events) {
  for (const [log, entries] of Object.entries(events)) {
    const table = document.getElementById("events-" + log);
    if (!table) continue;
    fillRows(table.tBodies[0], entries.map(
      (e) => [e.time.replace("T", " ").slice(0, 19), e.code, e.name]));
  }
}

function showTelegrams(telegrams) {
  fillRows($("#telegrams tbody"), telegrams.map((t) => [
    t.slot.replace("T", " ").slice(0, 19), t.sent_at.replace("T", " ").slice(0, 23),
    t.crc, t.bytes, t.outcome,
  ]));
  $("#telegram-text").textContent = telegrams.length ? telegrams[0].text : "no telegram yet (is Request raised?)";
}

// ------------------------------------------------------------------ charts

const COLOURS = ["#d9480f", "#1971c2", "#2f9e44"];

function canvasContext(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "11px sans-serif";
  return { ctx, width, height };
}

function niceMax(value) {
  const step = Math.pow(10, Math.floor(Math.log10(Math.max(value, 1))));
  for (const k of [1, 2, 5, 10]) if (k * step >= value) return k * step;
  return 10 * step;
}

function axes(ctx, x0, x1, yOf, max, unit) {
  ctx.strokeStyle = "#ccc";
  ctx.fillStyle = "#555";
  for (const v of [max, max / 2, 0, -max / 2, -max]) {
    const y = yOf(v);
    ctx.beginPath();
    ctx.moveTo(x0, y);
    ctx.lineTo(x1, y);
    ctx.stroke();
    ctx.fillText((v > 0 ? "+" : "") + v + " " + unit, 2, y + 4);
  }
}

function drawPower(chart) {
  const { ctx, width, height } = canvasContext($("#power-chart"));
  const from = Date.parse(chart.from), to = Date.parse(chart.to);
  const steps = chart.steps.map((s) => ({
    t: Date.parse(s.t), net: s.import_w.map((w, i) => w - s.export_w[i]), pv: s.pv_w,
  }));
  let peak = 100;
  for (const s of steps) peak = Math.max(peak, s.pv, ...s.net.map(Math.abs));
  const max = niceMax(peak);
  const x0 = 56, x1 = width - 8, top = 8, bottom = height - 18;
  const xOf = (t) => x0 + ((t - from) / (to - from)) * (x1 - x0);
  const yOf = (w) => top + ((max - w) / (2 * max)) * (bottom - top);
  axes(ctx, x0, x1, yOf, max, "W");
  for (let m = 0; m <= 60; m += 15) {
    ctx.fillText("-" + (60 - m) + " min", xOf(from + m * 60000) - 16, height - 4);
  }
  const series = steps.length ? steps[0].net.map((_, i) => ({
    name: "L" + (i + 1) + " import(+)/export(-)", colour: COLOURS[i], value: (s) => s.net[i],
  })) : [];
  series.push({ name: "PV generation", colour: "#f59f00", value: (s) => s.pv, dash: [5, 3] });
  for (const line of series) {
    ctx.strokeStyle = line.colour;
    ctx.setLineDash(line.dash || []);
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    steps.forEach((s, i) => {
      const x = xOf(s.t), y = yOf(line.value(s));
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, yOf(line.value(steps[i - 1])));
      ctx.lineTo(x, y);
    });
    if (steps.length) ctx.lineTo(x1, yOf(line.value(steps[steps.length - 1])));
    ctx.stroke();
  }
  ctx.setLineDash([]);
  const legend = $("#power-legend");
  legend.replaceChildren(...series.map((line) => {
    const item = el("span", line.name, "key");
    item.style.setProperty("--colour", line.colour);
    return item;
  }));
}

function drawProfile(rows) {
  const { ctx, width, height } = canvasContext($("#profile-chart"));
  let peak = 10;
  for (const r of rows) peak = Math.max(peak, r.import_wh, r.export_wh);
  const max = niceMax(peak);
  const x0 = 62, x1 = width - 8, top = 8, bottom = height - 18;
  const yOf = (wh) => top + ((max - wh) / (2 * max)) * (bottom - top);
  axes(ctx, x0, x1, yOf, max, "Wh");
  if (!rows.length) {
    $("#profile-summary").textContent = "no 15-minute entry yet";
    return;
  }
  const first = Date.parse(rows[0].t), last = Date.parse(rows[rows.length - 1].t);
  const span = Math.max(last - first, 15 * 60000);
  const bar = Math.max(1, ((x1 - x0) * 15 * 60000) / (span + 15 * 60000));
  const xOf = (t) => x0 + ((t - first) / (span + 15 * 60000)) * (x1 - x0);
  for (const r of rows) {
    const x = xOf(Date.parse(r.t));
    ctx.fillStyle = "#1971c2";
    ctx.fillRect(x, yOf(r.import_wh), bar, yOf(0) - yOf(r.import_wh));
    ctx.fillStyle = "#2f9e44";
    ctx.fillRect(x, yOf(0), bar, yOf(-r.export_wh) - yOf(0));
  }
  const total = (key) => rows.reduce((sum, r) => sum + r[key], 0) / 1000;
  $("#profile-summary").textContent = rows.length + " entries from " + rows[0].t.slice(0, 16)
    + ": import " + total("import_wh").toFixed(3) + " kWh (blue, up), export "
    + total("export_wh").toFixed(3) + " kWh (green, down)";
}

// ------------------------------------------------------------------ live updates

function apply(update) {
  Object.assign(state, update);
  if ("unreachable" in update) showReachable(update.unreachable);
  if (update.status) showStatus(update.status);
  if (update.display && update.display.png_base64) {
    $("#display").src = "data:image/png;base64," + update.display.png_base64;
  }
  if (update.power) drawPower(update.power);
  if (update.profile) drawProfile(update.profile);
  if (update.events) showEvents(update.events);
  if (update.telegrams) showTelegrams(update.telegrams);
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

// A fleet's meter whose control socket went away (its worker restarts): the views shown are
// its last ones; its controls come (back) once it answers again.
function showReachable(error) {
  if (error) {
    notice("this meter cannot be reached, the views are its last ones: " + error);
    return;
  }
  notice("");
  if (!$("#controls").children.length) refreshSession();
}

async function refreshSession() {
  const session = await fetchSession();
  if (!session) return;
  csrf = session.csrf;
  if (!$("#controls").children.length) {
    $("#controls").replaceChildren(...session.commands.map(controlForm));
  }
}

function connect() {
  const link = $("#link");
  const source = new EventSource("api/stream");
  source.addEventListener("open", async () => {
    // A restarted twin has a new session: take its CSRF token before saying "live".
    await refreshSession();
    link.textContent = "live";
    link.className = "badge on";
  });
  source.addEventListener("error", () => { link.textContent = "reconnecting"; link.className = "badge off"; });
  source.addEventListener("update", (event) => apply(JSON.parse(event.data)));
}

// ------------------------------------------------------------------ controls

async function send(request) {
  const response = await fetch("api/control", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(request),
    credentials: "same-origin",
  });
  return answerOf(response);
}

// The console answers in JSON; anything else (a proxy's error page) is shown as it came.
async function answerOf(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch (error) {
    return { ok: false, kind: "http " + response.status, error: text.slice(0, 200) };
  }
}

function acknowledge(output, answer) {
  output.className = "ack " + (answer.ok ? "ok" : "error");
  output.textContent = answer.ok
    ? "done: " + JSON.stringify(answer.result)
    : "refused (" + answer.kind + "): " + answer.error;
}

function input(field) {
  let node;
  if (field.kind === "choice" || field.kind === "flag") {
    node = el("select");
    const options = field.kind === "flag" ? ["true", "false"] : field.options;
    if (!field.required) node.append(el("option", "", ""));
    for (const option of options) {
      const item = el("option", option);
      item.value = option;
      node.append(item);
    }
  } else {
    node = el("input");
    node.type = field.kind === "number" || field.kind === "integer" ? "number" : "text";
    if (node.type === "number") node.step = "any";
  }
  node.name = field.name;
  node.title = field.allowed;
  return node;
}

function value(field, node) {
  const text = node.value.trim();
  if (text === "") return undefined;  // optional: the server's default
  if (field.kind === "flag") return text === "true";
  if (field.kind === "number" || field.kind === "integer") return Number(text);
  return text;
}

function controlForm(command) {
  const form = el("form", null, "control");
  form.dataset.cmd = command.cmd;
  form.append(el("strong", command.cmd));
  for (const field of command.fields) {
    const label = el("label", field.name + (field.required ? "" : " (optional)") + " ");
    label.append(input(field));
    if (field.nullable) {
      const clear = el("input");
      clear.type = "checkbox";
      clear.name = field.name + ":null";
      label.append(clear, " clear");
    }
    label.append(el("small", field.allowed));
    form.append(label);
  }
  const button = el("button", "Send", "send");
  button.type = "submit";
  const output = el("output", "", "ack");
  form.append(button, output);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const request = { cmd: command.cmd };
    for (const field of command.fields) {
      const cleared = form.elements[field.name + ":null"];
      const given = cleared && cleared.checked ? null : value(field, form.elements[field.name]);
      if (given !== undefined) request[field.name] = given;
    }
    output.textContent = "sending...";
    try {
      acknowledge(output, await send(request));
    } catch (error) {
      acknowledge(output, { ok: false, kind: "network", error: String(error) });
    }
  });
  return form;
}

async function fetchSession() {
  const response = await fetch("api/session", { credentials: "same-origin" });
  const session = await answerOf(response);
  if (!response.ok) {
    notice(session.error);
    return null;
  }
  notice("");
  return session;
}

async function start() {
  // A meter of a fleet console (/meter/N/): a way back to the overview.
  $("#fleet-link").hidden = !location.pathname.startsWith("/meter/");
  await refreshSession();
  if (!csrf) return;
  for (const button of document.querySelectorAll("[data-press]")) {
    button.addEventListener("click", async () => {
      acknowledge($("#button-ack"), await send({ cmd: "button", press: button.dataset.press }));
    });
  }
  connect();
}

document.addEventListener("DOMContentLoaded", start);

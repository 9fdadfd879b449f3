// The fleet overview: one row per meter, filtered and sorted here, read again every few
// seconds (the server reads the meters' control sockets as a batch). Plain JavaScript, no
// outside code; meter data is only ever set as textContent.
"use strict";

const REFRESH_MS = 3000;
// Status order when sorting by status: what needs a look first.
const STATES = { down: 0, "service errors": 1, "power failure": 2, ok: 3 };
let rows = [];
let sortKey = "state";
let ascending = true;

const $ = (selector) => document.querySelector(selector);

function row(meter) {
  const errors = meter.up
    ? Object.entries(meter.service_errors || {}).map(([name, why]) => name + ": " + why)
    : [meter.error];
  if (meter.up && meter.push_failures) errors.push(meter.push_failures + " push(es) failed");
  let state = "ok";
  if (!meter.up) state = "down";
  else if (Object.keys(meter.service_errors || {}).length) state = "service errors";
  else if (!meter.powered) state = "power failure";
  return { ...meter, state, errors: errors.join("; ") };
}

function compare(a, b) {
  const value = (r) => (sortKey === "state" ? STATES[r.state] : r[sortKey]);
  const x = value(a), y = value(b);
  let order = 0;
  if (x === y) order = a.meter - b.meter;
  else if (x === undefined || x === null) order = 1;
  else if (y === undefined || y === null) order = -1;
  else order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
  return ascending ? order : -order;
}

function draw() {
  const needle = $("#filter").value.trim().toLowerCase();
  const shown = rows.filter((r) => !needle || [r.meter, r.equipment_id, r.state, r.errors, r.p3]
    .some((v) => String(v ?? "").toLowerCase().includes(needle)));
  shown.sort(compare);
  const body = document.createDocumentFragment();
  for (const r of shown) {
    const tr = document.createElement("tr");
    tr.dataset.meter = String(r.meter);
    tr.dataset.state = r.state;
    const link = document.createElement("a");
    link.href = "meter/" + r.meter + "/";
    link.textContent = String(r.meter);
    const first = document.createElement("td");
    first.append(link);
    tr.append(first);
    for (const value of [r.equipment_id, r.state, r.import_w, r.export_w, r.power_failures,
      r.associations, r.push_failures, r.errors]) {
      const td = document.createElement("td");
      td.textContent = value === undefined || value === null ? "-" : String(value);
      tr.append(td);
    }
    body.append(tr);
  }
  $("#fleet tbody").replaceChildren(body);
  $("#shown").textContent = shown.length + " of " + rows.length + " meters shown";
}

async function refresh() {
  const link = $("#link");
  try {
    const response = await fetch("api/fleet", { credentials: "same-origin" });
    const fleet = await response.json();
    if (!response.ok) {
      $("#notice").textContent = fleet.error;
      $("#notice").hidden = false;
      return;
    }
    $("#notice").hidden = true;
    rows = fleet.meter_states.map(row);
    $("#summary").textContent = fleet.meters_up + "/" + fleet.meters + " meters up, "
      + fleet.powered + " powered, workers " + fleet.workers_up + "/" + fleet.workers;
    link.textContent = "live";
    link.className = "badge on";
    draw();
  } catch (error) {
    link.textContent = "unreachable";
    link.className = "badge off";
  }
}

function start() {
  for (const th of document.querySelectorAll("#fleet th[data-key]")) {
    th.addEventListener("click", () => {
      ascending = sortKey === th.dataset.key ? !ascending : true;
      sortKey = th.dataset.key;
      draw();
    });
  }
  $("#filter").addEventListener("input", draw);
  refresh();
  setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", start);

// edgeid trust tree: renders the snapshots that /events streams.
"use strict";

let last = null;           // the latest snapshot
const seenSerials = {};    // key -> serial, to flash rotated nodes

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function duration(ms) {
  const s = Math.round(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  if (d > 0) return d + "d" + h + "h";
  if (h > 0) return h + "h" + m + "m";
  if (m > 0) return m + "m" + (s % 60) + "s";
  return (s % 60) + "s";
}

// countdown is a not-after with its live time left; tick() updates it.
function countdown(notBefore, notAfter) {
  if (!notAfter) return el("span", { class: "meta" }, "expiry unknown");
  return el("span", { class: "countdown meta", "data-not-after": notAfter, "data-not-before": notBefore || "" });
}

function tick() {
  const now = Date.now();
  for (const c of document.querySelectorAll(".countdown")) {
    const end = Date.parse(c.dataset.notAfter), start = Date.parse(c.dataset.notBefore);
    const left = end - now;
    let cls = "ok";
    if (left <= 0) cls = "bad";
    else if (start && left < (end - start) / 6) cls = "warn";
    c.className = "countdown meta " + cls;
    c.textContent = "not after " + new Date(end).toISOString().replace(".000", "") +
      (left > 0 ? " (in " + duration(left) + ")" : " (EXPIRED " + duration(left) + " ago)");
  }
}

// certNode is one certificate of the tree: kind, SPIFFE ID or subject,
// serial, expiry countdown and last rotation.
function certNode(key, kind, label, cert, extra) {
  const rotated = rotationOf(key, cert);
  const li = el("li", { class: "node", "data-key": key },
    el("span", { class: "kind" }, kind), " ",
    el("span", { class: "id" }, label), " ",
    el("span", { class: "meta" }, "serial "), el("span", { class: "serial" }, cert && cert.serial ? cert.serial : "?"), " ",
    countdown(cert && cert.not_before, cert && cert.not_after), " ",
    el("span", { class: "meta rotated" }, rotated ? "last rotation " + rotated : ""),
    extra || null);
  if (cert && cert.serial) {
    if (seenSerials[key] && seenSerials[key] !== cert.serial) li.classList.add("flash");
    seenSerials[key] = cert.serial;
  }
  return li;
}

function rotationOf(key, cert) {
  const t = (cert && cert.last_rotation) || (last.rotations || {})[key];
  return t ? new Date(t).toLocaleTimeString() : "";
}

function health(text, good) {
  return el("span", { class: "meta " + (good ? "ok" : "bad") }, text);
}

function serverNode(s, kind, label) {
  const key = "server:" + s.host + ":" + s.addr;
  const state = s.healthy ? "healthy" : s.running ? "unhealthy: " + (s.error || "") : "stopped";
  const ca = s.ca || (s.ca_expires ? { not_after: s.ca_expires, not_before: s.ca_issued } : null);
  const li = certNode(key, kind, label + " " + (s.host || "") + " " + (s.addr || ""), ca, health(state, s.healthy));
  const kids = el("ul");
  for (const a of s.agents || []) {
    kids.append(certNode("agent:" + a.spiffe_id, "agent", a.spiffe_id,
      { serial: a.serial, not_after: a.svid_expires }, a.banned ? health("banned", false) : null));
  }
  li.append(kids);
  return [li, kids];
}

function workloadNode(w) {
  return certNode("workload:" + w.spiffe_id, "workload", w.spiffe_id,
    { serial: w.serial, not_before: w.svid_issued, not_after: w.svid_expires, last_rotation: w.last_rotation },
    health("helper " + (w.running ? "running" : "stopped"), w.running));
}

function siteNode(site) {
  const [li, kids] = siteServer(site);
  li.setAttribute("data-site", site.name);
  for (const w of site.workloads || []) kids.append(workloadNode(w));
  return li;
}

function siteServer(site) {
  if (site.server && site.server.host) return serverNode(site.server, "site CA", site.name + ":");
  const li = el("li", { class: "node" }, el("span", { class: "kind" }, "site"), " ", el("span", { class: "id" }, site.name),
    el("span", { class: "meta" }, "edge server on another host"));
  const kids = el("ul");
  li.append(kids);
  return [li, kids];
}

function renderTree(st) {
  const tree = document.getElementById("tree");
  const root = el("ul");
  let under = tree;
  const v = st.vault;
  if (v) {
    const r = certNode("vault:root", "Vault root", v.root ? v.root.subject : v.addr, v.root, health(v.running ? "running" : "stopped", v.running));
    const i = certNode("vault:intermediate", "Vault int.", v.intermediate ? v.intermediate.subject : "", v.intermediate, v.error ? health(v.error, false) : null);
    const ri = el("ul", {}, i), ii = el("ul");
    r.append(ri); i.append(ii);
    root.append(r);
    under = ii;
  } else {
    under = root;
  }
  const sites = (st.sites || []).map(siteNode);
  if ((st.cloud || []).length > 0) {
    (st.cloud || []).forEach((c, n) => {
      const [li, kids] = serverNode(c, "cloud CA", "server");
      if (n === 0) for (const s of sites) kids.append(s);
      under.append(li);
    });
  } else {
    for (const s of sites) under.append(s);
  }
  tree.replaceChildren(...(v ? root.children : under.children));
}

function renderTable(id, rows) {
  document.querySelector("#" + id + " tbody").replaceChildren(...rows);
}

function render() {
  const st = last.status;
  document.getElementById("updated").textContent = "updated " + new Date(last.time).toLocaleTimeString();
  const err = document.getElementById("error");
  err.hidden = !last.error;
  err.textContent = last.error || "";
  if (!st) return;
  document.getElementById("trust-domain").textContent = st.trust_domain;
  renderTree(st);
  const kafka = Object.entries(last.kafka_by_site || {}).sort();
  document.getElementById("kafka-none").hidden = !!(st.kafka);
  renderTable("kafka", kafka.map(([site, n]) => el("tr", { "data-kafka-site": site }, el("td", {}, site), el("td", { class: "count" }, n))));
  renderTable("processes", (st.processes || []).map(p => {
    const uid = p.uid === undefined || p.uid === null ? "?" : p.uid;
    const good = p.running && (!p.health || p.health === "ready") && (p.uid === undefined || p.uid === p.want_uid);
    return el("tr", { "data-process": p.name }, el("td", {}, p.name), el("td", {}, p.pid || ""),
      el("td", {}, uid + " (" + p.want_uid + ")"),
      el("td", { class: good ? "ok" : "bad" }, p.running ? (p.health || "running") : "stopped"));
  }));
  const problems = st.problems || [];
  document.getElementById("problems").replaceChildren(...(problems.length ? problems.map(p => el("li", { class: "bad" }, p)) : [el("li", { class: "ok" }, "none")]));
  tick();
}

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource("events");
  es.addEventListener("open", () => { conn.textContent = "live"; conn.className = "conn ok"; });
  es.addEventListener("error", () => { conn.textContent = "reconnecting…"; conn.className = "conn bad"; });
  es.addEventListener("status", ev => {
    last = JSON.parse(ev.data);
    window.edgeidUpdates = (window.edgeidUpdates || 0) + 1;
    render();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  connect();
  setInterval(tick, 1000);
});

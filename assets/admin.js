/*
 * kiro2api dashboard, management part: when the key in this tab is the admin key (GET /api/admin/status answers 200),
 * the accounts table gets actions (enable, disable, refresh, clear, delete) and an "add account" form, and the client
 * keys view appears (create with a one-time display of the key, limits, usage per day as an inline SVG bar chart,
 * enable/disable, delete). Everything goes through /api/admin/ with the key in the x-api-key header (no cookie); with a
 * client key the page stays read-only. Server strings are inserted with textContent only; no external fetch.
 */
(function () {
  "use strict";
  var KEY_NAME = "kiro2api-key";
  var state = { probed: false, admin: false, accounts: {}, keys: [], usageId: null, confirm: null, busy: false };

  function $(id) { return document.getElementById(id); }
  function key() { return sessionStorage.getItem(KEY_NAME) || ""; }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function say(text, bad) {
    var m = $("admin-msg");
    m.textContent = text;
    m.className = bad ? "error" : "muted";
  }

  /* One admin API call: resolves with the parsed body, rejects with the API's error message. */
  function api(method, path, body) {
    var init = { method: method, headers: { "x-api-key": key() }, cache: "no-store" };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch("/api/admin/" + path, init).then(function (r) {
      return r.text().then(function (t) {
        var js = null;
        try { js = t ? JSON.parse(t) : null; } catch (e) { js = null; }
        if (!r.ok) {
          var err = new Error(js && js.error && js.error.message ? js.error.message : method + " " + path + ": HTTP " + r.status);
          err.status = r.status;
          throw err;
        }
        return js;
      });
    });
  }

  function when(v) {
    if (v === null || v === undefined || v === 0) return "–";
    var ms = typeof v === "number" ? (v < 1e12 ? v * 1000 : v) : Date.parse(v);
    return isNaN(ms) ? "–" : new Date(ms).toLocaleString();
  }

  function num(n, digits) {
    if (n === null || n === undefined) return "–";
    return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits === undefined ? 0 : digits });
  }

  function reloadView() {
    if (window.k2aRefresh) window.k2aRefresh();
  }

  /* Runs an action once (buttons are disabled meanwhile), reports, then reloads the view. */
  function act(label, method, path, body) {
    if (state.busy) return Promise.resolve(null);
    state.busy = true;
    say(label + "…");
    return api(method, path, body).then(function (js) {
      say(label + ": done");
      return js;
    }).catch(function (e) {
      say(label + ": " + e.message, true);
      return null;
    }).then(function (js) {
      state.busy = false;
      reloadView();
      return js;
    });
  }

  function button(text, action, onClick) {
    var b = el("button", "act", text);
    b.type = "button";
    b.setAttribute("data-action", action);
    b.addEventListener("click", onClick);
    return b;
  }

  /* A destructive action asks for a second click on the same button (kept across the view's reloads). */
  function armed(token, b) {
    if (state.confirm === token) {
      b.textContent = "Confirm?";
      b.classList.add("danger");
    }
    return b;
  }

  function confirmed(token, b) {
    if (state.confirm === token) {
      state.confirm = null;
      return true;
    }
    state.confirm = token;
    b.textContent = "Confirm?";
    b.classList.add("danger");
    return false;
  }

  /* ---- accounts ---- */

  function decorateAccounts() {
    var rows = document.querySelectorAll("#accounts tbody tr");
    var byIndex = {};
    Object.keys(state.accounts).forEach(function (id) { byIndex[state.accounts[id].index] = state.accounts[id]; });
    Array.prototype.forEach.call(rows, function (tr) {
      var a = byIndex[tr.getAttribute("data-index")];
      var td = el("td", "actions");
      if (a) {
        tr.setAttribute("data-id", a.id);
        tr.setAttribute("data-source", a.source);
        var name = tr.children[1];
        if (name) name.appendChild(el("div", "sub", (a.source === "api" ? "added here" : "configuration") + " · " + a.id));
        if (a.state === "disabled")
          td.appendChild(button("Enable", "enable", function () { act("enable " + a.id, "POST", "accounts/" + a.id + "/enable"); }));
        else
          td.appendChild(button("Disable", "disable", function () { act("disable " + a.id, "POST", "accounts/" + a.id + "/disable"); }));
        if (a.kind !== "api_key" && a.state !== "disabled")
          td.appendChild(button("Refresh", "refresh", function () { act("refresh " + a.id, "POST", "accounts/" + a.id + "/refresh"); }));
        if (a.state === "cooling" || a.state === "exhausted" || a.state === "invalid")
          td.appendChild(button("Clear", "clear", function () { act("clear " + a.id, "POST", "accounts/" + a.id + "/clear"); }));
        if (a.source === "api") {
          var del = button("Delete", "delete", function () {
            if (confirmed("acct:" + a.id, del)) act("delete " + a.id, "DELETE", "accounts/" + a.id);
          });
          td.appendChild(armed("acct:" + a.id, del));
        }
      }
      tr.appendChild(td);
    });
  }

  function addAccount() {
    var text = $("acct-json").value.trim(), reg = $("acct-reg").value.trim(), desc = $("acct-desc").value.trim();
    var obj;
    try { obj = JSON.parse(text); } catch (e) { say("add account: the text is not JSON", true); return; }
    if (!obj || typeof obj !== "object" || Array.isArray(obj)) { say("add account: paste one JSON object", true); return; }
    var body;
    if (obj.authMethod !== undefined || obj.accessToken !== undefined || obj.clientIdHash !== undefined) {
      body = { kiro_token_file: obj };
      if (reg) {
        try { body.client_registration = JSON.parse(reg); } catch (e) { say("add account: the client registration is not JSON", true); return; }
      }
      if (desc) body.description = desc;
    } else {
      body = obj;
      if (desc && body.description === undefined) body.description = desc;
    }
    act("add account", "POST", "accounts", body).then(function (js) {
      if (js) {
        /* the credential leaves the page once sent */
        $("acct-json").value = "";
        $("acct-reg").value = "";
        $("acct-desc").value = "";
        say("added account " + js.id + (js.label ? " (" + js.label + ")" : ""));
      }
    });
  }

  /* ---- client keys ---- */

  function limitsText(l) {
    if (!l) return "none";
    var parts = [];
    if (l.rpm) parts.push(l.rpm + "/min");
    if (l.concurrency) parts.push(l.concurrency + " at once");
    if (l.credits_day) parts.push(l.credits_day + " cr/day");
    if (l.credits_month) parts.push(l.credits_month + " cr/month");
    if (l.tokens_day) parts.push(num(l.tokens_day) + " tok/day");
    return parts.length ? parts.join(", ") : "none";
  }

  function renderKeys() {
    var tbody = $("keys-table").querySelector("tbody");
    tbody.textContent = "";
    $("key-form").hidden = state.keys === null;
    if (state.keys === null) {
      var tr0 = el("tr");
      var td0 = el("td", "muted", "this gateway has no client key management (GET /api/admin/keys)");
      td0.colSpan = 10;
      tr0.appendChild(td0);
      tbody.appendChild(tr0);
      return;
    }
    state.keys.forEach(function (k) {
      var tr = el("tr");
      var expired = k.expires_at && k.expires_at * 1000 < Date.now();
      var st = !k.enabled ? "disabled" : expired ? "expired" : "ok";
      tr.setAttribute("data-key-id", k.id);
      tr.setAttribute("data-key-name", k.name);
      tr.setAttribute("data-state", st);
      tr.appendChild(el("td", null, k.name));
      tr.appendChild(el("td", "mono", (k.key_prefix || "") + "…"));
      var s = el("td");
      s.appendChild(el("span", "badge state-" + (st === "ok" ? "ok" : st === "expired" ? "exhausted" : "disabled"), st));
      tr.appendChild(s);
      tr.appendChild(el("td", "sub", when(k.created_at)));
      tr.appendChild(el("td", "sub", k.expires_at ? when(k.expires_at) : "never"));
      tr.appendChild(el("td", "sub", k.last_used_at ? when(k.last_used_at) : "never"));
      tr.appendChild(el("td", "sub", k.models && k.models.length ? k.models.join(", ") : "all"));
      tr.appendChild(el("td", "sub", limitsText(k.limits)));
      var u = k.usage_today || {};
      tr.appendChild(el("td", "num", num(u.requests) + " / " + num(u.errors) + " / " + num(u.input_tokens) + " / " +
        num(u.output_tokens) + " / " + num(u.credits, 2)));
      var td = el("td", "actions");
      td.appendChild(button("Usage", "usage", function () { state.usageId = k.id; renderUsage(); }));
      if (k.builtin) {
        /* KIRO_CLIENT_TOKEN: set in the configuration, not editable here */
        td.appendChild(el("span", "sub", "KIRO_CLIENT_TOKEN"));
        tr.appendChild(td);
        tbody.appendChild(tr);
        return;
      }
      td.appendChild(button("Limits", "limits", function () { editKey(k); }));
      if (k.enabled)
        td.appendChild(button("Disable", "disable", function () { act("disable key " + k.name, "PATCH", "keys/" + k.id, { enabled: false }); }));
      else
        td.appendChild(button("Enable", "enable", function () { act("enable key " + k.name, "PATCH", "keys/" + k.id, { enabled: true }); }));
      var del = button("Delete", "delete", function () {
        if (confirmed("key:" + k.id, del)) act("delete key " + k.name, "DELETE", "keys/" + k.id).then(function () {
          if (state.usageId === k.id) { state.usageId = null; $("usage").hidden = true; }
        });
      });
      td.appendChild(armed("key:" + k.id, del));
      tr.appendChild(td);
      tbody.appendChild(tr);
    });
  }

  function field(id) {
    var v = $(id).value.trim();
    return v === "" ? null : Number(v);
  }

  function formBody() {
    var body = { name: $("kf-name").value.trim() };
    var exp = $("kf-expires").value;
    body.expires_at = exp ? Math.floor(Date.parse(exp + "T23:59:59") / 1000) : null;
    var models = $("kf-models").value.split(",").map(function (s) { return s.trim(); }).filter(function (s) { return s; });
    body.models = models;
    var lim = { rpm: field("kf-rpm"), concurrency: field("kf-concurrency"), credits_day: field("kf-credits-day"),
      credits_month: field("kf-credits-month"), tokens_day: field("kf-tokens-day") };
    Object.keys(lim).forEach(function (k) { if (lim[k] === null) lim[k] = 0; });
    body.limits = lim;
    return body;
  }

  function resetForm() {
    $("key-form").reset();
    $("kf-id").value = "";
    $("key-form-title").textContent = "Create a key";
    $("kf-submit").textContent = "Create key";
    $("kf-cancel").hidden = true;
  }

  function editKey(k) {
    $("kf-id").value = k.id;
    $("kf-name").value = k.name || "";
    $("kf-expires").value = k.expires_at ? new Date(k.expires_at * 1000).toISOString().slice(0, 10) : "";
    $("kf-models").value = (k.models || []).join(", ");
    var l = k.limits || {};
    $("kf-rpm").value = l.rpm || "";
    $("kf-concurrency").value = l.concurrency || "";
    $("kf-credits-day").value = l.credits_day || "";
    $("kf-credits-month").value = l.credits_month || "";
    $("kf-tokens-day").value = l.tokens_day || "";
    $("key-form-title").textContent = "Limits of " + k.name;
    $("kf-submit").textContent = "Save";
    $("kf-cancel").hidden = false;
  }

  function submitKey(ev) {
    ev.preventDefault();
    var body = formBody(), id = $("kf-id").value;
    if (!body.name) { say("a key needs a name", true); return; }
    if (id) {
      act("update key " + body.name, "PATCH", "keys/" + id, body).then(function (js) { if (js) resetForm(); });
      return;
    }
    if (body.expires_at === null) delete body.expires_at;
    act("create key " + body.name, "POST", "keys", body).then(function (js) {
      if (!js || !js.key) return;
      /* shown this once; dropped from the page by "Done" */
      $("new-key-name").textContent = js.name;
      $("new-key-value").textContent = js.key;
      $("new-key").hidden = false;
      resetForm();
    });
  }

  /* Usage per day as an inline SVG bar chart. */
  function renderUsage() {
    var id = state.usageId;
    if (!id) return;
    var k = state.keys && state.keys.filter(function (x) { return x.id === id; })[0];
    $("usage").hidden = false;
    $("usage-name").textContent = k ? k.name : id;
    api("GET", "keys/" + id + "/usage?days=14").then(function (js) {
      drawUsage((js && js.days) || []);
    }).catch(function (e) { $("usage-chart").textContent = "usage unavailable: " + e.message; });
  }

  function drawUsage(days) {
    var metric = $("usage-metric").value;
    var NS = "http://www.w3.org/2000/svg";
    var W = 720, H = 200, L = 48, B = 34, T = 10;
    var vals = days.map(function (d) {
      return metric === "tokens" ? (d.input_tokens || 0) + (d.output_tokens || 0) : (d[metric] || 0);
    });
    var max = Math.max.apply(null, [0].concat(vals));
    var top = metric === "credits" ? (max > 0 ? max * 1.1 : 1) : Math.max(1, Math.ceil(max * 1.1));
    var svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("width", W);
    svg.setAttribute("height", H);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", metric + " per day");
    function add(tag, attrs, text) {
      var e = document.createElementNS(NS, tag);
      Object.keys(attrs).forEach(function (a) { e.setAttribute(a, attrs[a]); });
      if (text !== undefined) e.textContent = text;
      svg.appendChild(e);
      return e;
    }
    add("line", { x1: L, y1: H - B, x2: W, y2: H - B, stroke: "#a0aec0" });
    add("text", { x: L - 4, y: T + 8, "text-anchor": "end", "font-size": 10, fill: "#6b7382" }, num(top, top < 10 ? 2 : 0));
    add("text", { x: L - 4, y: H - B, "text-anchor": "end", "font-size": 10, fill: "#6b7382" }, "0");
    var n = Math.max(days.length, 1), slot = (W - L - 8) / n, bw = Math.max(4, slot * 0.7);
    days.forEach(function (d, i) {
      var h = (H - B - T) * vals[i] / top, x = L + 4 + i * slot + (slot - bw) / 2;
      var r = add("rect", { x: x.toFixed(1), y: (H - B - h).toFixed(1), width: bw.toFixed(1), height: Math.max(h, vals[i] > 0 ? 1 : 0).toFixed(1),
        fill: "#3182ce", "class": "ubar", "data-date": d.date, "data-value": vals[i] });
      var tip = document.createElementNS(NS, "title");
      tip.textContent = d.date + ": " + num(vals[i], metric === "credits" ? 2 : 0) + " " + metric;
      r.appendChild(tip);
      if (n <= 16 || i % 2 === 0)
        add("text", { x: (x + bw / 2).toFixed(1), y: H - B + 14, "text-anchor": "middle", "font-size": 10, fill: "#6b7382" },
          String(d.date || "").slice(5));
    });
    if (!days.length) add("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#6b7382" }, "no usage yet");
    var box = $("usage-chart");
    box.textContent = "";
    box.appendChild(svg);
  }

  /* ---- refresh ---- */

  function showAdmin(on) {
    state.admin = on;
    var mode = $("mode");
    mode.textContent = on ? "admin" : "read-only";
    mode.className = "badge " + (on ? "mode-admin" : "mode-ro");
    $("actions-th").hidden = !on;
    Array.prototype.forEach.call(document.querySelectorAll(".admin-only"), function (e) { e.hidden = !on; });
  }

  function probe() {
    return api("GET", "status").then(function () { return true; }).catch(function () { return false; });
  }

  function refresh() {
    if (!key()) return;
    var p = state.probed ? Promise.resolve(state.admin) : probe();
    p.then(function (admin) {
      state.probed = true;
      if (admin !== state.admin) showAdmin(admin);
      if (!admin) return;
      api("GET", "accounts").then(function (js) {
        state.accounts = {};
        ((js && js.accounts) || []).forEach(function (a) { state.accounts[a.id] = a; });
        decorateAccounts();
      }).catch(function (e) { say("accounts: " + e.message, true); });
      api("GET", "keys").then(function (js) {
        state.keys = (js && js.keys) || [];
        renderKeys();
        renderUsage();
      }).catch(function (e) {
        state.keys = e.status === 404 ? null : state.keys;
        renderKeys();
        if (e.status !== 404) say("keys: " + e.message, true);
      });
    });
  }

  function reset() {
    state.probed = false;
    state.accounts = {};
    state.keys = [];
    state.usageId = null;
    $("new-key-value").textContent = "";
    $("new-key").hidden = true;
    $("usage").hidden = true;
    showAdmin(false);
  }

  function start() {
    $("acct-add").addEventListener("click", addAccount);
    $("acct-reload").addEventListener("click", function () { act("reload", "POST", "reload"); });
    $("key-form").addEventListener("submit", submitKey);
    $("kf-cancel").addEventListener("click", resetForm);
    $("usage-metric").addEventListener("change", renderUsage);
    $("new-key-copy").addEventListener("click", function () {
      var v = $("new-key-value").textContent;
      if (navigator.clipboard) navigator.clipboard.writeText(v).then(function () { say("copied"); }, function () { say("copy it by hand", true); });
    });
    $("new-key-done").addEventListener("click", function () {
      $("new-key-value").textContent = "";
      $("new-key-name").textContent = "";
      $("new-key").hidden = true;
    });
  }

  window.k2aAdmin = { refresh: refresh, reset: reset };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

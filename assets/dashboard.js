/*
 * kiro2api dashboard: the account pool from GET /api/tokens and live traffic from GET /metrics
 * (Prometheus text), drawn on a <canvas> by hand. No framework, no build step, no external fetch.
 * The API key is asked once and kept in sessionStorage (this tab only); "#key=..." in the URL is moved
 * there and stripped from the address bar. Server strings are inserted with textContent only.
 * With the admin key, admin.js adds the management views (accounts actions, client keys).
 */
(function () {
  "use strict";
  var KEY_NAME = "kiro2api-key";
  var REFRESH_MS = 5000;
  var MAX_POINTS = 60;
  var samples = [];      /* {t, lat, p95, tps} */
  var prev = null;       /* previous metrics snapshot */
  var timer = null;

  function $(id) { return document.getElementById(id); }

  function takeKeyFromHash() {
    var m = /(?:^#|&)key=([^&]*)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem(KEY_NAME, decodeURIComponent(m[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
  }

  function key() { return sessionStorage.getItem(KEY_NAME) || ""; }

  function showLogin(message) {
    $("main").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("key").focus();
  }

  function showMain() {
    $("login").hidden = true;
    $("main").hidden = false;
  }

  function get(path) {
    return fetch(path, { headers: { "x-api-key": key() }, cache: "no-store" }).then(function (r) {
      if (r.status === 401 || r.status === 403) {
        var e = new Error("the key was refused");
        e.auth = true;
        throw e;
      }
      if (!r.ok) throw new Error(path + ": HTTP " + r.status);
      return r;
    });
  }

  /* ---- formatting ---- */

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function ago(iso) {
    if (!iso) return "never";
    var s = Math.round((Date.now() - Date.parse(iso)) / 1000);
    return rel(-s);
  }

  function until(iso) {
    if (!iso) return "";
    var s = Math.round((Date.parse(iso) - Date.now()) / 1000);
    return rel(s);
  }

  function rel(s) {
    var a = Math.abs(s), txt;
    if (a < 60) txt = a + " s";
    else if (a < 3600) txt = Math.round(a / 60) + " min";
    else if (a < 86400 * 2) txt = (a / 3600).toFixed(1) + " h";
    else txt = Math.round(a / 86400) + " d";
    return s >= 0 ? "in " + txt : txt + " ago";
  }

  function num(n, digits) {
    if (n === null || n === undefined) return "–";
    return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits === undefined ? 0 : digits });
  }

  /* ---- accounts table ---- */

  function card(k, v) {
    var c = el("div", "card");
    c.appendChild(el("div", "v", v));
    c.appendChild(el("div", "k", k));
    return c;
  }

  function renderTokens(data) {
    var ps = data.pool_stats || {};
    var ready = $("ready");
    ready.textContent = ps.ready ? "ready" : "not ready";
    ready.className = "badge " + (ps.ready ? "ready-yes" : "ready-no");
    var sum = $("summary");
    sum.textContent = "";
    sum.appendChild(card("accounts", data.total_tokens));
    sum.appendChild(card("usable", data.active_tokens));
    sum.appendChild(card("in flight", ps.in_flight));
    sum.appendChild(card("requests", num(ps.requests)));
    sum.appendChild(card("errors", num(ps.errors)));
    sum.appendChild(card("credits left", ps.credits_remaining === null ? "–" : num(ps.credits_remaining, 1)));
    sum.appendChild(card("credits used here", num(ps.credits_consumed, 2)));
    sum.appendChild(card("strategy", ps.strategy));
    /* KIRO_REDIS_URL: the shared store's state ("ok" or "shared store unavailable") */
    if (ps.shared_store) sum.appendChild(card("shared store", ps.shared_store === "ok" ? "ok" : "unavailable"));

    var tbody = $("accounts").querySelector("tbody");
    tbody.textContent = "";
    (data.tokens || []).forEach(function (t) {
      var tr = el("tr");
      tr.setAttribute("data-state", t.state);
      tr.setAttribute("data-index", t.index);
      tr.appendChild(el("td", "num", t.index));
      var name = el("td");
      name.appendChild(el("div", null, t.description || "account " + t.index));
      if (t.user_email) name.appendChild(el("div", "sub", t.user_email));
      if (t.subscription) name.appendChild(el("div", "sub", t.subscription));
      tr.appendChild(name);
      var kinds = {idc: "IdC", builder_id: "Builder ID", api_key: "API key", external_idp: "External IdP", social: "Social"};
      var auth = el("td");
      auth.appendChild(el("div", null, kinds[t.auth_type] || t.auth_type));
      if (t.region) auth.appendChild(el("div", "sub", t.region));
      if (t.profile_arn) {
        var arn = el("div", "sub", "ARN: " + (t.profile_arn_source || ""));
        arn.title = t.profile_arn;
        auth.appendChild(arn);
      }
      tr.appendChild(auth);
      var st = el("td");
      var shown = t.refreshing && t.state === "ok" ? "refreshing" : t.state;
      st.appendChild(el("span", "badge state-" + shown, shown));
      if (t.state_until) st.appendChild(el("div", "sub", "until " + new Date(t.state_until).toLocaleString() + " (" + until(t.state_until) + ")"));
      if (t.state_reason) st.appendChild(el("div", "sub", t.state_reason));
      tr.appendChild(st);
      tr.appendChild(el("td", null, t.token_preview));
      var cr = el("td");
      if (t.remaining_usage !== null && t.remaining_usage !== undefined) {
        var limit = t.usage_limits ? t.usage_limits.total_limit : 0;
        var frac = limit > 0 ? Math.max(0, Math.min(1, t.remaining_usage / limit)) : 0;
        var bar = el("div", "bar" + (frac < 0.1 ? " low" : ""));
        var fill = el("span");
        fill.style.width = (frac * 100).toFixed(1) + "%";
        bar.appendChild(fill);
        cr.appendChild(bar);
        cr.appendChild(el("div", "sub", num(t.remaining_usage, 1) + " / " + num(limit, 0) +
          (t.next_reset ? " · resets " + until(t.next_reset) : "")));
      } else {
        cr.appendChild(el("span", "muted", "unknown"));
      }
      tr.appendChild(cr);
      tr.appendChild(el("td", null, t.expires_at ? until(t.expires_at) : "–"));
      tr.appendChild(el("td", "num", num(t.requests)));
      tr.appendChild(el("td", "num", num(t.errors)));
      tr.appendChild(el("td", "num", t.in_flight));
      /* sessions pinned (sticky routing) and attempts in the pace window / rpm ("–" when unpaced) */
      var pace = t.pace || {};
      tr.appendChild(el("td", "num", (t.sessions || 0) + " · " + (pace.rpm ? (pace.attempts || 0) + "/" + pace.rpm : "–")));
      tr.appendChild(el("td", "num", num(t.input_tokens) + " / " + num(t.output_tokens)));
      tr.appendChild(el("td", null, ago(t.last_used)));
      var le = el("td", "sub", t.last_error || "");
      if (t.last_error_at) le.title = new Date(t.last_error_at).toLocaleString();
      tr.appendChild(le);
      tbody.appendChild(tr);
    });
  }

  /* ---- metrics ---- */

  /* Parses Prometheus text into [{name, labels: {...}, value}]. */
  function parseProm(text) {
    var out = [];
    text.split("\n").forEach(function (line) {
      if (!line || line.charAt(0) === "#") return;
      var m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m) return;
      var labels = {};
      if (m[3]) {
        var re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g, lm;
        while ((lm = re.exec(m[3])) !== null) labels[lm[1]] = lm[2].replace(/\\(.)/g, "$1");
      }
      out.push({ name: m[1], labels: labels, value: parseFloat(m[4]) });
    });
    return out;
  }

  var API_ROUTES = { messages: true, chat_completions: true };

  function snapshot(metrics) {
    var s = { t: Date.now(), sum: 0, count: 0, buckets: {}, out: 0 };
    metrics.forEach(function (x) {
      var api = API_ROUTES[x.labels.route];
      if (x.name === "k2a_http_request_duration_seconds_sum" && api) s.sum += x.value;
      else if (x.name === "k2a_http_request_duration_seconds_count" && api) s.count += x.value;
      else if (x.name === "k2a_http_request_duration_seconds_bucket" && api) s.buckets[x.labels.le] = (s.buckets[x.labels.le] || 0) + x.value;
      else if (x.name === "k2a_account_output_tokens_total") s.out += x.value;
    });
    return s;
  }

  function addSample(cur) {
    if (prev) {
      var dt = (cur.t - prev.t) / 1000, dc = cur.count - prev.count;
      var lat = dc > 0 ? (cur.sum - prev.sum) / dc * 1000 : null, p95 = null;
      if (dc > 0) {
        var les = Object.keys(cur.buckets).filter(function (k) { return k !== "+Inf"; })
          .map(parseFloat).sort(function (a, b) { return a - b; });
        for (var i = 0; i < les.length; i++) {
          var k = String(les[i]), d = cur.buckets[k] - (prev.buckets[k] || 0);
          if (d >= 0.95 * dc) { p95 = les[i] * 1000; break; }
        }
      }
      samples.push({ t: cur.t, lat: lat, p95: p95, tps: dt > 0 ? Math.max(0, cur.out - prev.out) / dt : 0 });
      if (samples.length > MAX_POINTS) samples.shift();
    }
    prev = cur;
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v))), f = v / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }

  function drawChart() {
    var c = $("chart"), g = c.getContext("2d");
    var W = c.width, H = c.height, L = 56, R = 56, T = 12, B = 24;
    g.clearRect(0, 0, W, H);
    g.font = "11px system-ui, sans-serif";
    var maxMs = niceMax(Math.max.apply(null, [1].concat(samples.map(function (s) { return Math.max(s.lat || 0, s.p95 || 0); }))));
    var maxTps = niceMax(Math.max.apply(null, [1].concat(samples.map(function (s) { return s.tps; }))));
    g.strokeStyle = "#e2e5ea";
    g.fillStyle = "#6b7382";
    for (var i = 0; i <= 4; i++) {
      var y = T + (H - T - B) * i / 4;
      g.beginPath(); g.moveTo(L, y); g.lineTo(W - R, y); g.stroke();
      g.textAlign = "right"; g.fillText(num(maxMs * (4 - i) / 4, maxMs < 10 ? 2 : 0) + " ms", L - 4, y + 4);
      g.textAlign = "left"; g.fillText(num(maxTps * (4 - i) / 4, maxTps < 10 ? 2 : 0) + " t/s", W - R + 4, y + 4);
    }
    g.textAlign = "center";
    g.fillText("last " + Math.round(MAX_POINTS * REFRESH_MS / 60000) + " min", W / 2, H - 6);
    if (samples.length === 0) {
      g.fillText("waiting for data…", W / 2, H / 2);
      return;
    }
    function series(field, max, color) {
      g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
      var started = false;
      samples.forEach(function (s, idx) {
        var v = s[field];
        if (v === null || v === undefined) { started = false; return; }
        var x = L + (W - L - R) * (MAX_POINTS - samples.length + idx) / (MAX_POINTS - 1);
        var y = T + (H - T - B) * (1 - Math.min(v, max) / max);
        if (started) g.lineTo(x, y); else { g.moveTo(x, y); started = true; }
      });
      g.stroke(); g.lineWidth = 1;
    }
    series("lat", maxMs, "#3182ce");
    series("p95", maxMs, "#805ad5");
    series("tps", maxTps, "#1f9d55");
  }

  /* ---- refresh loop ---- */

  function refresh() {
    var status = $("status");
    if (!key()) return Promise.resolve();
    return get("/api/tokens").then(function (r) { return r.json(); }).then(function (data) {
      showMain();
      renderTokens(data);
      if (window.k2aAdmin) window.k2aAdmin.refresh();
      status.textContent = "updated " + new Date().toLocaleTimeString();
      return get("/metrics").then(function (r) { return r.text(); }).then(function (text) {
        addSample(snapshot(parseProm(text)));
        drawChart();
      }).catch(function (e) { status.textContent += " · metrics unavailable: " + e.message; drawChart(); });
    }).catch(function (e) {
      if (e.auth) {
        sessionStorage.removeItem(KEY_NAME);
        showLogin("The gateway refused this key.");
      } else {
        status.textContent = "error: " + e.message;
      }
    });
  }

  function schedule() {
    if (timer) clearInterval(timer);
    timer = $("auto").checked ? setInterval(refresh, REFRESH_MS) : null;
  }

  function start() {
    takeKeyFromHash();
    $("login").addEventListener("submit", function (ev) {
      ev.preventDefault();
      sessionStorage.setItem(KEY_NAME, $("key").value);
      $("key").value = "";
      refresh();
    });
    $("refresh").addEventListener("click", refresh);
    $("auto").addEventListener("change", schedule);
    $("forget").addEventListener("click", function () {
      sessionStorage.removeItem(KEY_NAME);
      if (window.k2aAdmin) window.k2aAdmin.reset();
      showLogin("");
    });
    window.k2aRefresh = refresh; /* admin.js reloads the view after an action */
    if (!key()) showLogin("");
    else refresh();
    schedule();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

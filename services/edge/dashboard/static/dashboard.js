// The usage dashboard: signs in with a key kept in sessionStorage (never in a URL), calls the
// gateway's report endpoints with it and draws their answers with Chart.js. Every figure comes
// from an endpoint a script could call with the same key, so a sub-account key sees only its own.
"use strict";

(() => {
  const STORAGE_KEY = "switchboard.dashboard.key";
  const TOP_GROUPS = 8; // series per chart; the rest are summed into "other"
  const TOP_MODELS = 10;
  const RECENT_ROWS = 25;
  const HOUR_MS = 3600000;
  const DAY_MS = 86400000;
  // Tableau 10: distinguishable, and readable for the common colour-vision deficiencies.
  const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac"];
  const TIME_TICKS = { maxRotation: 0, autoSkip: true, maxTicksLimit: 8 };
  const MONEY_TICKS = { callback: (dollars) => usd(dollars * 1e6) };
  const BREAKER_COLOURS = { closed: "#59a14f", half_open: "#edc948", open: "#e15759" };

  const $ = (id) => document.getElementById(id);
  const charts = new Map();

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function key() {
    return sessionStorage.getItem(STORAGE_KEY);
  }

  async function api(path, params = {}) {
    const query = new URLSearchParams(params).toString();
    const response = await fetch(`/v1${path}${query ? `?${query}` : ""}`, {
      headers: { Authorization: `Bearer ${key()}` },
      cache: "no-store",
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
      throw new ApiError(response.status, message);
    }
    return body;
  }

  // The range as the report endpoints take it (unix seconds, half open) plus every bucket start in
  // it, so hours or days without traffic are drawn as zero instead of being left out.
  function rangeOf(choice, now = Date.now()) {
    const hour = Math.floor(now / HOUR_MS) * HOUR_MS;
    const day = Math.floor(now / DAY_MS) * DAY_MS;
    let from;
    let to;
    let step;
    if (choice === "24h") {
      [from, to, step] = [hour - 23 * HOUR_MS, hour + HOUR_MS, HOUR_MS];
    } else if (choice === "month") {
      const today = new Date(day);
      [from, to, step] = [Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), 1), day + DAY_MS, DAY_MS];
    } else {
      const days = choice === "30d" ? 30 : 7;
      [from, to, step] = [day - (days - 1) * DAY_MS, day + DAY_MS, DAY_MS];
    }
    const starts = [];
    for (let t = from; t < to; t += step) starts.push(t);
    return { from: from / 1000, to: to / 1000, bucket: step === HOUR_MS ? "hour" : "day", starts };
  }

  function bucketLabel(ms, bucket) {
    const iso = new Date(ms).toISOString();
    return bucket === "hour" ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(0, 10);
  }

  function usd(micros) {
    const dollars = micros / 1e6;
    if (dollars === 0) return "$0";
    // Three significant digits, without trailing zeros: requests can cost millionths of a dollar.
    return dollars >= 1 ? `$${dollars.toFixed(2)}` : `$${Number(dollars.toPrecision(3))}`;
  }

  function percent(part, whole) {
    return whole ? `${((100 * part) / whole).toFixed(1)}%` : "–";
  }

  function draw(id, config) {
    const existing = charts.get(id);
    if (existing) existing.destroy();
    const base = {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
    };
    config.options = { ...base, ...config.options, plugins: { ...base.plugins, ...(config.options || {}).plugins } };
    charts.set(id, new Chart($(id), config));
  }

  function empty(id, message) {
    draw(id, {
      type: "bar",
      data: { labels: [], datasets: [] },
      options: { plugins: { legend: { display: false }, title: { display: true, text: message } } },
    });
  }

  // One colour per group of a report, by spend, so a tag has the same colour in the spend and
  // the requests chart.
  function coloursOf(report) {
    const totals = new Map();
    for (const row of report.data) {
      const [cost, requests] = totals.get(row.group) || [0, 0];
      totals.set(row.group, [cost + row.cost_micros, requests + row.requests]);
    }
    const ranked = [...totals.keys()].sort((a, b) => totals.get(b)[0] - totals.get(a)[0]
      || totals.get(b)[1] - totals.get(a)[1] || String(a).localeCompare(String(b)));
    return new Map(ranked.map((group, i) => [group, PALETTE[i % (PALETTE.length - 1)]]));
  }

  // A grouped, bucketed report as stacked bars: one dataset per group (the largest TOP_GROUPS by
  // `metric`, then "other"), one bar per bucket. Each dataset keeps its raw group in `group`.
  function groupedSeries(id, report, range, metric, nameOf) {
    const colours = coloursOf(report);
    const totals = new Map();
    const cells = new Map();
    for (const row of report.data) {
      const at = Date.parse(row.bucket_start);
      const value = metric === "cost" ? row.cost_micros / 1e6 : row.requests;
      totals.set(row.group, (totals.get(row.group) || 0) + value);
      if (!cells.has(row.group)) cells.set(row.group, new Map());
      cells.get(row.group).set(at, (cells.get(row.group).get(at) || 0) + value);
    }
    if (!totals.size) {
      empty(id, "No traffic in this range");
      return;
    }
    const ranked = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a) || String(a).localeCompare(String(b)));
    const shown = ranked.length > TOP_GROUPS ? ranked.slice(0, TOP_GROUPS - 1) : ranked;
    const datasets = shown.map((group) => ({
      label: nameOf(group),
      group,
      data: range.starts.map((t) => cells.get(group).get(t) || 0),
      backgroundColor: colours.get(group),
      stack: "all",
    }));
    const rest = ranked.slice(shown.length);
    if (rest.length) {
      datasets.push({
        label: `other (${rest.length})`,
        other: true,
        groups: rest,
        data: range.starts.map((t) => rest.reduce((sum, group) => sum + (cells.get(group).get(t) || 0), 0)),
        backgroundColor: PALETTE[PALETTE.length - 1],
        stack: "all",
      });
    }
    const money = metric === "cost";
    draw(id, {
      type: "bar",
      data: { labels: range.starts.map((t) => bucketLabel(t, range.bucket)), datasets },
      options: {
        scales: {
          x: { stacked: true, ticks: TIME_TICKS },
          y: { stacked: true, beginAtZero: true, ticks: money ? MONEY_TICKS : {} },
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: (item) => `${item.dataset.label}: ${money ? usd(item.raw * 1e6) : item.raw}`,
            },
          },
        },
      },
    });
  }

  function topModels(report) {
    const rows = [...report.data]
      .sort((a, b) => b.cost_micros - a.cost_micros || b.requests - a.requests || String(a.group).localeCompare(String(b.group)))
      .slice(0, TOP_MODELS);
    if (!rows.length) {
      empty("top-models", "No traffic in this range");
      return;
    }
    draw("top-models", {
      type: "bar",
      data: {
        labels: rows.map((row) => row.group),
        datasets: [{ label: "spend (USD)", rows, data: rows.map((row) => row.cost_micros / 1e6), backgroundColor: PALETTE[0] }],
      },
      options: {
        indexAxis: "y",
        scales: { x: { beginAtZero: true, ticks: MONEY_TICKS } },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: (item) => {
                const row = rows[item.dataIndex];
                return `${usd(row.cost_micros)} · ${row.requests} requests · p95 ${Math.round(row.p95_latency_ms)} ms`;
              },
            },
          },
        },
      },
    });
  }

  // The ungrouped bucketed report: error rate and latency percentiles per bucket; a bucket
  // without requests is a gap, not a zero.
  function overTime(report, range) {
    const rows = new Map(report.data.map((row) => [Date.parse(row.bucket_start), row]));
    const labels = range.starts.map((t) => bucketLabel(t, range.bucket));
    const at = (fn) => range.starts.map((t) => (rows.has(t) ? fn(rows.get(t)) : null));
    const lines = { scales: { x: { offset: true, ticks: TIME_TICKS }, y: { beginAtZero: true } } };
    draw("error-rate", {
      type: "line",
      data: {
        labels,
        datasets: [{
          label: "errors / requests (%)",
          data: at((row) => (row.requests ? (100 * row.errors) / row.requests : 0)),
          borderColor: PALETTE[2], backgroundColor: PALETTE[2], pointRadius: 3,
        }],
      },
      options: { ...lines, plugins: { legend: { display: false } } },
    });
    draw("latency", {
      type: "line",
      data: {
        labels,
        datasets: [
          { label: "p50", data: at((row) => row.p50_latency_ms), borderColor: PALETTE[0], backgroundColor: PALETTE[0], pointRadius: 3 },
          { label: "p95", data: at((row) => row.p95_latency_ms), borderColor: PALETTE[1], backgroundColor: PALETTE[1], pointRadius: 3 },
        ],
      },
      options: lines,
    });
  }

  function providerHealth(health) {
    const rows = health.data;
    if (!rows.length) {
      empty("provider-health", "No provider has served traffic recently");
      return;
    }
    draw("provider-health", {
      type: "bar",
      data: {
        labels: rows.map((row) => `${row.deployment} (${row.state.replace("_", " ")})`),
        datasets: [{
          label: "success rate (%)",
          rows,
          data: rows.map((row) => Math.round(row.success_rate * 1000) / 10),
          backgroundColor: rows.map((row) => BREAKER_COLOURS[row.state] || PALETTE[9]),
        }],
      },
      options: {
        indexAxis: "y",
        scales: { x: { min: 0, max: 100 } },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: (item) => {
                const row = rows[item.dataIndex];
                const p95 = row.p95_latency_ms === null ? "–" : `${Math.round(row.p95_latency_ms)} ms`;
                return `${item.raw}% of ${row.requests} · breaker ${row.state} · p95 ${p95}`;
              },
            },
          },
        },
      },
    });
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text; // never innerHTML: tags and models are the clients' own strings
    if (className) td.className = className;
    return td;
  }

  function recentTable(list, nameOfSub) {
    const body = $("recent").querySelector("tbody");
    body.replaceChildren();
    for (const g of list.data) {
      const tr = document.createElement("tr");
      tr.dataset.id = g.id;
      const when = new Date(g.created * 1000).toISOString().replace("T", " ").slice(0, 19);
      tr.append(
        cell(when), cell(g.model), cell(g.provider), cell(String(g.status), g.status >= 400 ? "failed" : ""),
        cell(g.tag ?? "–"), cell(g.sub_account_id === null ? "–" : nameOfSub(g.sub_account_id)),
        cell(String(g.usage.input_units), "num"), cell(String(g.usage.output_units), "num"),
        cell(usd(g.cost.total_micros), "num"), cell(String(Math.round(g.timing.total_latency_ms)), "num"),
      );
      body.append(tr);
    }
    if (!list.data.length) {
      const tr = document.createElement("tr");
      const td = cell("No requests in this range");
      td.colSpan = 10;
      tr.append(td);
      body.append(tr);
    }
  }

  function kpis(summary) {
    const row = summary.data[0];
    $("kpi-spend").textContent = usd(summary.total.cost_micros);
    $("kpi-requests").textContent = String(summary.total.requests);
    $("kpi-errors").textContent = percent(summary.total.errors, summary.total.requests);
    $("kpi-latency").textContent = row ? `${Math.round(row.p50_latency_ms)} / ${Math.round(row.p95_latency_ms)} ms` : "–";
  }

  function signOut(message = "") {
    sessionStorage.removeItem(STORAGE_KEY);
    for (const chart of charts.values()) chart.destroy();
    charts.clear();
    $("board").hidden = true;
    $("controls").hidden = true;
    $("sign-in").hidden = false;
    $("sign-in-error").textContent = message;
    $("key").value = "";
    document.body.dataset.state = "signed-out";
  }

  async function load() {
    document.body.dataset.state = "loading";
    const range = rangeOf($("range").value);
    const span = { from: range.from, to: range.to };
    const bucketed = { ...span, bucket: range.bucket };
    const calls = {
      summary: api("/usage", span),
      overTime: api("/usage", bucketed),
      byTag: api("/usage/by-tag", bucketed),
      bySub: api("/usage/by-sub-account", bucketed),
      models: api("/usage", { ...span, group_by: "model" }),
      health: api("/health/providers"),
      recent: api("/usage/recent", { ...span, limit: RECENT_ROWS }),
      // Names for the sub-account charts; keys without the admin scope (a sub-account's) get a 403.
      subs: api("/sub-accounts"),
    };
    const names = Object.keys(calls);
    const settled = await Promise.allSettled(Object.values(calls));
    const got = {};
    const failed = [];
    settled.forEach((outcome, i) => {
      if (outcome.status === "fulfilled") got[names[i]] = outcome.value;
      else if (names[i] !== "subs") failed.push([names[i], outcome.reason]);
    });
    const refused = failed.find(([, error]) => error instanceof ApiError && error.status === 401);
    if (refused) {
      signOut(`The gateway refused this key: ${refused[1].message}`);
      return;
    }
    const subNames = new Map((got.subs ? got.subs.data : []).map((sub) => [sub.id, sub.name]));
    const nameOfSub = (id) => (id === null ? "(no sub-account)" : subNames.has(id) ? `${subNames.get(id)} · ${id}` : id);
    const nameOfTag = (tag) => (tag === null ? "(untagged)" : tag);
    if (got.summary) kpis(got.summary);
    if (got.byTag) {
      groupedSeries("spend-by-tag", got.byTag, range, "cost", nameOfTag);
      groupedSeries("requests-by-tag", got.byTag, range, "requests", nameOfTag);
    }
    if (got.bySub) {
      groupedSeries("spend-by-sub-account", got.bySub, range, "cost", nameOfSub);
      groupedSeries("requests-by-sub-account", got.bySub, range, "requests", nameOfSub);
    }
    if (got.models) topModels(got.models);
    if (got.overTime) overTime(got.overTime, range);
    if (got.health) providerHealth(got.health);
    if (got.recent) recentTable(got.recent, nameOfSub);
    const own = got.bySub ? [...new Set(got.bySub.data.map((row) => row.group))] : [];
    $("who").textContent = got.subs ? `account key · ${got.subs.data.length} sub-accounts`
      : own.length === 1 && own[0] !== null ? `sub-account ${nameOfSub(own[0])}` : "key without the admin scope";
    const banner = $("board-error");
    banner.hidden = !failed.length;
    banner.textContent = failed.map(([name, error]) => `${name}: ${error.message}`).join(" · ");
    // What was drawn, for a script (or a test) to ask the same endpoints for the same range.
    Object.assign(document.body.dataset, { from: String(range.from), to: String(range.to), bucket: range.bucket });
    document.body.dataset.state = failed.length ? "partial" : "ready";
    document.body.dataset.loads = String(Number(document.body.dataset.loads || 0) + 1);
  }

  function open() {
    $("sign-in").hidden = true;
    $("board").hidden = false;
    $("controls").hidden = false;
    load().catch((error) => {
      document.body.dataset.state = "partial";
      $("board-error").hidden = false;
      $("board-error").textContent = String(error);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("sign-in-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("key").value.trim();
      if (!value) return;
      sessionStorage.setItem(STORAGE_KEY, value);
      $("key").value = "";
      open();
    });
    $("sign-out").addEventListener("click", () => signOut());
    $("refresh").addEventListener("click", () => open());
    $("range").addEventListener("change", () => open());
    if (key()) open();
  });
})();

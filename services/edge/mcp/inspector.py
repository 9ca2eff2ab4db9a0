"""`GET /mcp/inspect`: a small page to paste a key, list the MCP tools, read a tool's schema
and call it, speaking JSON-RPC to `/mcp` with fetch().

Self-contained (inline CSS and JS, nothing from a CDN), and strict about it: the CSP lets
the page talk to this origin only. The key is kept in sessionStorage, sent only in the
Authorization header, never in a URL. Everything the server returns is shown with
textContent (or as data: images and audio), never parsed as HTML.
"""

from aiohttp import web

_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
        "img-src data:; media-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Switchboard MCP inspector</title>
<style>
  body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d232a; background: #f6f7f9; }
  header { background: #1d232a; color: #fff; padding: 12px 20px; display: flex; gap: 12px; align-items: center; }
  header h1 { font-size: 16px; margin: 0 16px 0 0; }
  header input { width: 340px; padding: 6px 8px; border-radius: 4px; border: 0; }
  button { padding: 6px 12px; border-radius: 4px; border: 1px solid #3b6fd8; background: #3b6fd8; color: #fff;
           cursor: pointer; }
  button.plain { background: transparent; color: #fff; border-color: #778; }
  main { display: grid; grid-template-columns: 260px 1fr; min-height: calc(100vh - 56px); }
  nav { border-right: 1px solid #dde; background: #fff; overflow-y: auto; }
  nav li { list-style: none; padding: 7px 14px; cursor: pointer; border-bottom: 1px solid #f0f0f3; }
  nav li:hover, nav li.on { background: #e9effc; }
  nav ul { margin: 0; padding: 0; }
  section { padding: 16px 22px; overflow-x: auto; }
  pre, textarea { font: 12px/1.4 ui-monospace, monospace; background: #fff; border: 1px solid #dde;
                  border-radius: 4px; padding: 10px; white-space: pre-wrap; word-break: break-word; }
  textarea { width: 100%; min-height: 160px; box-sizing: border-box; margin-bottom: 8px; }
  details { margin: 12px 0; }
  #status { font-size: 13px; color: #c9d1d9; }
  .error { color: #b42318; }
  .muted { color: #667; }
  img.out { max-width: 360px; display: block; margin: 8px 0; border: 1px solid #dde; }
</style>
</head>
<body>
<header>
  <h1>Switchboard MCP inspector</h1>
  <input id="key" type="password" placeholder="API key (sk-...)" autocomplete="off">
  <button id="connect">Connect</button>
  <button id="forget" class="plain">Forget key</button>
  <span id="status">Not connected.</span>
</header>
<main>
  <nav><ul id="tools"></ul></nav>
  <section id="detail"><p class="muted">Paste a key and connect to list the tools.</p></section>
</main>
<script>
"use strict";
const KEY = "switchboard.mcp.key";
const PROTOCOL = "2025-06-18";
let nextId = 1;
const $ = (id) => document.getElementById(id);
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls; return e; };

function setStatus(text, bad) { $("status").textContent = text; $("status").className = bad ? "error" : ""; }

async function rpc(method, params) {
  const key = sessionStorage.getItem(KEY) || "";
  const response = await fetch("/mcp", {
    method: "POST",
    headers: { "Authorization": "Bearer " + key, "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": PROTOCOL },
    body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params: params || {} }),
  });
  const type = response.headers.get("Content-Type") || "";
  const text = await response.text();
  let body;
  if (type.startsWith("text/event-stream")) {
    // The answer is the last `data:` line that carries a result or an error.
    const found = text.split("\\n").filter((l) => l.startsWith("data:")).map((l) => JSON.parse(l.slice(5)));
    body = found.reverse().find((m) => "result" in m || "error" in m) || {};
  } else {
    try { body = JSON.parse(text); } catch (e) { throw new Error(response.status + ": " + text.slice(0, 300)); }
  }
  if (body.error) {
    const message = typeof body.error.message === "string" ? body.error.message : JSON.stringify(body.error);
    throw new Error(response.status + ": " + message);
  }
  return body.result;
}

function skeleton(schema) {
  // The required fields, with a placeholder of the right type: a starting point to edit.
  const out = {};
  for (const name of schema.required || []) {
    const prop = (schema.properties || {})[name] || {};
    const type = prop.type || ((prop.anyOf || [])[0] || {}).type;
    if (type === "array") out[name] = name === "messages" ? [{ role: "user", content: "Hello!" }] : ["..."];
    else if (type === "integer" || type === "number") out[name] = prop.minimum || 1;
    else if (type === "boolean") out[name] = false;
    else if (type === "object") out[name] = {};
    else out[name] = "";
  }
  return out;
}

function pretty(text) {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text; }
}

function showResult(box, result) {
  box.replaceChildren();
  box.append(el("h3", result.isError ? "Tool error" : "Result", result.isError ? "error" : ""));
  for (const part of result.content || []) {
    if (part.type === "text") box.append(el("pre", pretty(part.text)));
    else if (part.type === "image") {
      const img = el("img", undefined, "out"); img.alt = "image result";
      img.src = "data:" + part.mimeType + ";base64," + part.data; box.append(img);
    } else if (part.type === "audio") {
      const audio = el("audio"); audio.controls = true;
      audio.src = "data:" + part.mimeType + ";base64," + part.data; box.append(audio);
    } else box.append(el("pre", JSON.stringify(part, null, 2)));
  }
}

function showTool(tool, item) {
  for (const li of document.querySelectorAll("nav li")) li.classList.remove("on");
  item.classList.add("on");
  const detail = $("detail");
  detail.replaceChildren(el("h2", tool.name), el("p", tool.description || ""));
  const args = el("textarea");
  args.value = JSON.stringify(skeleton(tool.inputSchema || {}), null, 2);
  const call = el("button", "Call " + tool.name);
  const result = el("div");
  call.addEventListener("click", async () => {
    let parsed;
    try { parsed = JSON.parse(args.value || "{}"); } catch (e) {
      result.replaceChildren(el("p", "Arguments are not valid JSON: " + e.message, "error")); return; }
    result.replaceChildren(el("p", "Calling...", "muted"));
    try { showResult(result, await rpc("tools/call", { name: tool.name, arguments: parsed })); }
    catch (e) { result.replaceChildren(el("p", e.message, "error")); }
  });
  const schema = el("details"); schema.append(el("summary", "Input schema"),
    el("pre", JSON.stringify(tool.inputSchema, null, 2)));
  detail.append(el("h3", "Arguments (JSON)"), args, call, schema, result);
}

async function connect() {
  const typed = $("key").value.trim();
  if (typed) { sessionStorage.setItem(KEY, typed); $("key").value = ""; }
  if (!sessionStorage.getItem(KEY)) { setStatus("Paste a key first.", true); return; }
  setStatus("Connecting...");
  try {
    const init = await rpc("initialize", { protocolVersion: PROTOCOL, capabilities: {},
                                           clientInfo: { name: "switchboard-inspector", version: "1" } });
    const listed = await rpc("tools/list", {});
    const list = $("tools"); list.replaceChildren();
    for (const tool of listed.tools) {
      const item = el("li", tool.name); item.title = tool.description || "";
      item.addEventListener("click", () => showTool(tool, item)); list.append(item);
    }
    const server = init.serverInfo || {};
    setStatus("Connected to " + (server.name || "server") + " " + (server.version || "") + ": "
              + listed.tools.length + " tools.");
  } catch (e) { setStatus(e.message, true); }
}

$("connect").addEventListener("click", connect);
$("key").addEventListener("keydown", (e) => { if (e.key === "Enter") connect(); });
$("forget").addEventListener("click", () => { sessionStorage.removeItem(KEY); $("tools").replaceChildren();
  setStatus("Key forgotten."); });
if (sessionStorage.getItem(KEY)) connect();
</script>
</body>
</html>
"""


async def page(_: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", headers={
        "Content-Security-Policy": _CSP, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer"})

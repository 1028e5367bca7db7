// The memory-agent chat page: plain JavaScript, no build step, nothing loaded from elsewhere.
// It talks only to the server that served it: the LangGraph API (threads, runs streamed over
// SSE) and the caller's own /me routes. All user and model text is rendered with textContent.
"use strict";

(() => {
  const TOKEN_KEY = "memory_agent.token";
  const USER_KEY = "memory_agent.user";
  const GRAPH = "supervisor";
  const PAGE = 20;
  const STREAM_MODES = ["messages-tuple", "custom", "updates"];

  // --- pure helpers (window.MemoryAgentUI: the browser tests call them) ----------------------

  /** One line for a progress event (the same wording as the CLI's live progress). */
  function progressText(ev) {
    const name = ev && ev.event;
    const ms = (v) => (typeof v === "number" ? ` in ${v.toFixed(1)} ms` : "");
    if (name === "memory_loaded") {
      if (ev.skipped) return `memory: skipped (${ev.skipped})`;
      const counts = Object.entries(ev.counts || {}).map(([k, v]) => `${k} ${v}`).join(", ");
      return `memory: loaded ${ev.memory_count} (${counts || "nothing"})${ms(ev.ms)}`;
    }
    if (name === "plan_ready") {
      const teams = (ev.teams || []).join(", ") || "none";
      return `plan: ${ev.intent} (teams: ${teams})`;
    }
    if (name === "model_fallback") return `model: ${ev.purpose} by ${ev.fallback} (${ev.error})`;
    if (name === "team_started") return `team ${ev.team}: started`;
    if (name === "team_finished") {
      if (ev.ok) return `team ${ev.team}: done${ms(ev.ms)}`;
      return `team ${ev.team}: failed${ms(ev.ms)} (${ev.error})`;
    }
    if (name === "memory_saved") {
      if (ev.skipped) return `saved: nothing (${ev.skipped})`;
      const n = (ev.memories || []).length;
      return `saved: conversation${n ? ` + ${n} memories` : ""}`;
    }
    return String(name);
  }

  /** What a turn saved, in words (the report's "saved" line). */
  function savedText(saved) {
    if (!saved) return "unknown";
    if (saved.skipped) return `nothing (${saved.skipped})`;
    const parts = saved.conversation ? ["conversation"] : [];
    if (saved.memories && saved.memories.length) parts.push(`${saved.memories.length} memory(ies)`);
    if (saved.episodes) parts.push(`${saved.episodes} episode(s)`);
    return parts.join(", ") || "nothing new";
  }

  /** Parse server-sent events out of `buffer`: the complete events and the rest. */
  function parseSSE(buffer) {
    const blocks = buffer.split(/\r?\n\r?\n/);
    const rest = blocks.pop();
    const events = [];
    for (const block of blocks) {
      let event = "message";
      const data = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (!data.length) continue;
      const raw = data.join("\n");
      let parsed = raw;
      try {
        parsed = JSON.parse(raw);
      } catch (_) {
        // not JSON: keep the text
      }
      events.push({ event, data: parsed });
    }
    return { events, rest };
  }

  /** A message's text, whether its content is a string or a list of parts. */
  function messageText(content) {
    if (typeof content === "string") return content;
    if (Array.isArray(content)) {
      return content
        .map((p) => (typeof p === "string" ? p : p && typeof p.text === "string" ? p.text : ""))
        .join("");
    }
    return "";
  }

  /** A readable sentence for a failed HTTP call. */
  function errorText(status, body) {
    const detail = body && (typeof body.detail === "string" ? body.detail : body.message);
    if (status === 401) return "Your token was refused: sign in again.";
    if (status === 503) return "The database is unavailable right now; try again in a moment.";
    if (status === 0) return "The server cannot be reached.";
    if (detail) return detail;
    if (status >= 500) return `The server failed (HTTP ${status}).`;
    return `The request failed (HTTP ${status}).`;
  }

  const ERROR_NAMES = {
    InvalidInputError: "The message was refused",
    ThreadOwnershipError: "The message was refused",
    ModelError: "The model failed",
    DatabaseUnavailableError: "The database is unavailable",
    ThreadBusyError: "This conversation is busy",
  };

  /** A readable sentence for a run's `error` event. */
  function runErrorText(data) {
    if (!data || typeof data !== "object") return `The turn failed: ${String(data)}`;
    const what = ERROR_NAMES[data.error] || "The turn failed";
    // The server names a typed error as an HTTP error: "422: <reason>"; the reason is enough.
    const message = String(data.message || "").replace(/^\d{3}: /, "");
    return message ? `${what}: ${message}` : `${what}.`;
  }

  function formatTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return "";
    return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function shortTime(iso) {
    const d = iso ? new Date(iso) : null;
    if (!d || Number.isNaN(d.getTime())) return "";
    const sameYear = d.getFullYear() === new Date().getFullYear();
    return d.toLocaleString(undefined, {
      month: "short", day: "numeric", year: sameYear ? undefined : "numeric",
      hour: "2-digit", minute: "2-digit",
    });
  }

  /** The lines of one turn of a thread report (the "What happened" panel). */
  function reportTurnLines(turn) {
    const took = typeof turn.ms === "number" ? ` · ${Math.round(turn.ms)} ms` : "";
    const lines = [
      `Turn ${turn.turn ?? "?"} · ${formatTime(turn.started_at) || "time unknown"}${took} · intent ${turn.intent || "?"}`,
    ];
    if (turn.question) lines.push(`Asked: ${turn.question}`);
    const mem = turn.memories || { counts: {}, items: [] };
    const counts = Object.entries(mem.counts || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    const load = typeof mem.load_ms === "number" ? ` in ${mem.load_ms.toFixed(1)} ms` : "";
    lines.push(`Memory: loaded ${(mem.items || []).length} (${counts || "nothing"})${load}`);
    for (const t of turn.teams || []) {
      const ms = typeof t.ms === "number" ? ` in ${Math.round(t.ms)} ms` : "";
      lines.push(t.ok ? `Team ${t.team}: done${ms}` : `Team ${t.team}: failed${ms} (${t.error})`);
    }
    if (!(turn.teams || []).length) lines.push("Teams: none");
    lines.push(`Saved: ${savedText(turn.saved)}`);
    return lines;
  }

  /** Build an element; string children become text nodes (never parsed as HTML). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "hidden") node.hidden = true;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function memoryItem(m) {
    const found = m.found !== false;
    return el(
      "li",
      {},
      el("span", { class: "kind" }, String(m.kind || "")),
      found ? String(m.text || "") : "(no longer stored)",
    );
  }

  window.MemoryAgentUI = {
    progressText, savedText, parseSSE, messageText, errorText, runErrorText, formatTime,
    reportTurnLines, el,
  };

  // --- state and API --------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  const state = {
    token: null, user: null, auth: null, thread: null, title: "", offset: 0, busy: false,
  };

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function headers(json) {
    const h = { Accept: "application/json" };
    if (state.token) h.Authorization = `Bearer ${state.token}`;
    if (json) h["Content-Type"] = "application/json";
    return h;
  }

  async function api(method, path, body, query, options) {
    const url = new URL(path, window.location.origin);
    for (const [k, v] of Object.entries(query || {})) url.searchParams.set(k, String(v));
    const noUser = options && options.noUser;
    if (!noUser && state.auth === false && state.user && path.startsWith("/me")) {
      url.searchParams.set("user_id", state.user);
    }
    const res = await request(
      url,
      {
        method,
        headers: headers(body !== undefined && body !== null),
        body: body !== undefined && body !== null ? JSON.stringify(body) : undefined,
      },
      !(options && options.quiet),
    );
    return res.status === 204 ? null : res.json();
  }

  /** `fetch`, with a failed request or an error status thrown as an `ApiError` (a 401 also
   * signs the page out, unless `signOut` is false). */
  async function request(url, init, signOut) {
    let res;
    try {
      res = await fetch(url, init);
    } catch (_) {
      throw new ApiError(0, errorText(0, null));
    }
    if (!res.ok) {
      let detail = null;
      try {
        detail = await res.json();
      } catch (_) {
        // no JSON body
      }
      const error = new ApiError(res.status, errorText(res.status, detail));
      if (res.status === 401 && signOut) signedOut(error.message);
      throw error;
    }
    return res;
  }

  /** Stream one turn; `on[event](data)` for each event. Resolves when the run ends. */
  async function streamTurn(threadId, text, on) {
    const input = { messages: [{ role: "user", content: text }] };
    if (state.auth === false) input.user_id = state.user;
    const res = await request(
      `/threads/${encodeURIComponent(threadId)}/runs/stream`,
      {
        method: "POST",
        headers: { ...headers(true), Accept: "text/event-stream" },
        body: JSON.stringify({ assistant_id: GRAPH, input, stream_mode: STREAM_MODES }),
      },
      true,
    );
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      const parsed = parseSSE(buffer);
      buffer = parsed.rest;
      for (const { event, data } of parsed.events) {
        const handler = on[event.split("|")[0]];
        if (handler) handler(data);
      }
    }
  }

  // --- page plumbing --------------------------------------------------------------------------

  function banner(text) {
    const b = $("banner");
    b.textContent = text || "";
    b.hidden = !text;
  }

  function show(page) {
    for (const id of ["signin", "chat-page", "memory-page"]) $(id).hidden = id !== page;
    $("nav-chat").setAttribute("aria-current", page === "chat-page" ? "page" : "false");
    $("nav-memory").setAttribute("aria-current", page === "memory-page" ? "page" : "false");
  }

  function showSignIn(open) {
    show("signin");
    $("nav").hidden = true;
    $("sign-out").hidden = true;
    $("who").textContent = "";
    $("token-form").hidden = open;
    $("user-form").hidden = !open;
    (open ? $("user-id") : $("token")).focus();
  }

  function signedOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    banner(message);
    showSignIn(false);
  }

  async function identify() {
    let me;
    try {
      me = await api("GET", "/me", null, null, { noUser: true, quiet: true });
    } catch (e) {
      if (e.status === 401) {
        if (state.token) {
          sessionStorage.removeItem(TOKEN_KEY);
          state.token = null;
          banner("That token was refused.");
        }
        state.auth = true;
        showSignIn(false);
        return;
      }
      banner(e.message);
      return;
    }
    state.auth = me.auth;
    if (me.auth) {
      state.user = me.user_id;
      await enter();
    } else if (state.user) {
      await enter();
    } else {
      showSignIn(true);
    }
  }

  async function enter() {
    banner("");
    $("nav").hidden = false;
    $("sign-out").hidden = false;
    const who = $("who");
    who.replaceChildren(
      state.auth ? "Signed in as " : "Talking as ",
      el("strong", {}, state.user),
      state.auth ? "" : el("span", { class: "badge", title: "This server checks no tokens" }, "open server"),
    );
    show("chat-page");
    newConversation();
    await loadConversations(true);
  }

  // --- conversations --------------------------------------------------------------------------

  let conversationRequest = 0; // only the latest listing is shown

  async function loadConversations(reset) {
    const mine = ++conversationRequest;
    const offset = reset ? 0 : state.offset;
    let found;
    try {
      found = (await api("GET", "/me/conversations", null, { limit: PAGE, offset }))
        .conversations;
    } catch (e) {
      banner(e.message);
      return;
    }
    if (mine !== conversationRequest) return;
    const list = $("conversation-list");
    if (reset) list.replaceChildren();
    for (const c of found) list.append(conversationItem(c));
    state.offset = offset + found.length;
    $("more-conversations").hidden = found.length < PAGE;
    $("no-conversations").hidden = list.children.length > 0;
    markCurrent();
  }

  function conversationItem(c) {
    const title = c.title || "(untitled)";
    return el(
      "li",
      { class: "conversation", "data-thread": c.thread_id },
      el(
        "button",
        { type: "button", class: "open", onclick: () => openConversation(c.thread_id, title) },
        el("span", { class: "title" }, title),
        el("span", { class: "last" }, c.last_message || ""),
        el("span", { class: "meta" }, `${c.message_count} messages · ${shortTime(c.updated_at)}`),
      ),
      el(
        "button",
        {
          type: "button",
          class: "delete",
          "aria-label": `Delete conversation: ${title}`,
          title: "Delete",
          onclick: () => deleteConversation(c.thread_id, title),
        },
        "✕",
      ),
    );
  }

  function markCurrent() {
    for (const li of $("conversation-list").children) {
      const open = li.querySelector(".open");
      open.setAttribute("aria-current", li.dataset.thread === state.thread ? "true" : "false");
    }
  }

  function newConversation() {
    state.thread = null;
    state.title = "";
    $("chat-title").textContent = "New conversation";
    $("messages").replaceChildren();
    $("progress").textContent = "";
    $("report").hidden = true;
    $("show-report").hidden = true;
    $("show-report").setAttribute("aria-expanded", "false");
    markCurrent();
  }

  async function deleteConversation(threadId, title) {
    if (!window.confirm(`Delete the conversation "${title}"? Its messages are deleted for good.`)) {
      return;
    }
    try {
      await api("DELETE", `/me/conversations/${encodeURIComponent(threadId)}`);
    } catch (e) {
      banner(e.message);
      return;
    }
    if (state.thread === threadId) newConversation();
    await loadConversations(true);
  }

  function bubble(kind, text) {
    const li = el("li", { class: `message ${kind}` }, el("span", { class: "text" }, text || ""));
    $("messages").append(li);
    li.scrollIntoView({ block: "end" });
    return li;
  }

  /** The "memories used" details of an answer. */
  function memoriesDetails(items) {
    return el(
      "details",
      { class: "used" },
      el("summary", {}, `Memories used (${items.length})`),
      items.length
        ? el("ul", { class: "loaded" }, items.map(memoryItem))
        : el("p", { class: "muted" }, "No memory was loaded for this answer."),
    );
  }

  async function openConversation(threadId, title) {
    newConversation();
    state.thread = threadId;
    state.title = title;
    $("chat-title").textContent = title;
    markCurrent();
    let values;
    try {
      values = (await api("GET", `/threads/${encodeURIComponent(threadId)}/state`)).values || {};
    } catch (e) {
      banner(e.message);
      return;
    }
    if (state.thread !== threadId) return; // another conversation was opened meanwhile
    const byId = new Map();
    for (const m of values.messages || []) {
      const kind = m.type === "human" ? "human" : m.type === "ai" ? "ai" : null;
      if (!kind) continue;
      const li = bubble(kind, messageText(m.content));
      if (kind === "ai" && m.id) byId.set(m.id, li);
    }
    if (values.summary) {
      $("messages").prepend(
        el("li", { class: "muted" }, `Earlier in this conversation: ${values.summary}`),
      );
    }
    $("show-report").hidden = false;
    const report = await fetchReport();
    if (state.thread !== threadId) return;
    for (const turn of report ? report.turns : []) {
      const li = byId.get(turn.answer_id);
      if (li) li.append(memoriesDetails(turn.memories.items));
    }
  }

  async function fetchReport() {
    if (!state.thread) return null;
    try {
      return await api("GET", `/me/threads/${encodeURIComponent(state.thread)}/report`);
    } catch (e) {
      banner(e.message);
      return null;
    }
  }

  async function toggleReport() {
    const button = $("show-report");
    const panel = $("report");
    if (!panel.hidden) {
      panel.hidden = true;
      button.setAttribute("aria-expanded", "false");
      return;
    }
    const report = await fetchReport();
    if (!report) return;
    const turns = report.turns.map((turn) => {
      const [head, ...rest] = reportTurnLines(turn);
      return el(
        "li",
        { class: "turn" },
        el("strong", {}, head),
        el(
          "ul",
          {},
          rest.map((line) =>
            el("li", { class: /^Team .*: failed/.test(line) ? "failed" : /^Team .*: done/.test(line) ? "done" : "" }, line),
          ),
          turn.memories.items.length
            ? el("li", {}, "Loaded:", el("ul", { class: "loaded" }, turn.memories.items.map(memoryItem)))
            : null,
        ),
      );
    });
    const parts = [
      el("h3", {}, `What happened: ${report.turn_count} turn(s)`),
      report.earlier_turns
        ? el("p", { class: "muted" }, `${report.earlier_turns} earlier turn(s) are no longer logged.`)
        : null,
      turns.length ? el("ol", {}, turns) : el("p", { class: "muted" }, "No completed turn yet."),
    ];
    panel.replaceChildren(...parts.filter(Boolean));
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
  }

  // --- a turn ---------------------------------------------------------------------------------

  async function send(text) {
    if (state.busy || !text.trim()) return;
    state.busy = true;
    $("send").disabled = true;
    banner("");
    bubble("human", text);
    const answer = bubble("ai", "");
    answer.setAttribute("aria-busy", "true");
    const textNode = answer.querySelector(".text");
    const steps = el("ul", { class: "events", "aria-label": "Progress" });
    const progress = $("progress");
    progress.textContent = "Thinking…";
    let loaded = null;
    let failed = null;
    let chunks = 0;
    try {
      if (!state.thread) {
        const created = await api("POST", "/threads", {});
        state.thread = created.thread_id;
        $("chat-title").textContent = text.slice(0, 60);
      }
      await streamTurn(state.thread, text, {
        messages: (data) => {
          const [chunk, meta] = Array.isArray(data) ? data : [data, {}];
          if (meta && meta.langgraph_node && meta.langgraph_node !== "response") return;
          if (chunk && String(chunk.type || "").toLowerCase().startsWith("ai")) {
            textNode.textContent += messageText(chunk.content);
            chunks += 1;
            answer.dataset.chunks = String(chunks);
          }
        },
        custom: (ev) => {
          const line = progressText(ev);
          progress.textContent = line;
          steps.append(el("li", {}, line));
        },
        updates: (update) => {
          if (update && update.planning && Array.isArray(update.planning.loaded_memories)) {
            loaded = update.planning.loaded_memories;
          }
          const done = update && update.response && update.response.messages;
          if (Array.isArray(done) && done.length) {
            const final = done[0];
            textNode.textContent = messageText(final.content);
          }
        },
        error: (data) => {
          failed = runErrorText(data);
        },
      });
    } catch (e) {
      failed = e.message;
    } finally {
      answer.removeAttribute("aria-busy");
      state.busy = false;
      $("send").disabled = false;
    }
    if (failed) {
      answer.remove();
      bubble("error", failed).setAttribute("role", "alert");
      progress.textContent = "The turn did not complete.";
    } else {
      answer.append(memoriesDetails(loaded || []));
      answer.append(
        el("details", { class: "steps" }, el("summary", {}, "How this answer was made"), steps),
      );
      $("show-report").hidden = false;
    }
    await loadConversations(true);
  }

  // --- memory page ----------------------------------------------------------------------------

  async function showMemoryPage() {
    show("memory-page");
    await loadMemories();
  }

  let memoryRequest = 0; // only the latest list or search is shown

  async function loadMemories() {
    const kind = $("memory-kind").value;
    const mine = ++memoryRequest;
    let found;
    try {
      found = (await api("GET", "/me/memories", null, kind ? { kind } : null)).memories;
    } catch (e) {
      banner(e.message);
      return;
    }
    if (mine !== memoryRequest) return;
    renderMemories(found, `${found.length} memor${found.length === 1 ? "y" : "ies"}`);
  }

  async function searchMemories(q) {
    const mine = ++memoryRequest;
    let found;
    try {
      found = (await api("GET", "/me/memories/search", null, { q, limit: 20 })).memories;
    } catch (e) {
      banner(e.message);
      return;
    }
    if (mine !== memoryRequest) return;
    renderMemories(found, `${found.length} result(s) for “${q}”`);
  }

  function renderMemories(items, caption) {
    $("memory-caption").textContent = caption;
    $("memory-list").replaceChildren(...items.map(memoryRow));
  }

  function memoryRow(m) {
    const text = el("div", { class: "text" }, el("span", { class: "kind" }, m.kind || ""), m.text || "");
    const when = formatTime(m.said_at);
    const meta = el(
      "div",
      { class: "meta" },
      `${when ? `said ${when}` : ""}${m.version > 1 ? ` · version ${m.version}` : ""}`,
    );
    const slot = el("div", { class: "slot" });
    const short = (m.text || "").slice(0, 40);
    const li = el(
      "li",
      { class: "memory", "data-key": m.key },
      text,
      meta,
      el(
        "div",
        { class: "actions" },
        el("button", { type: "button", "aria-label": `History of: ${short}`, onclick: () => history(m, slot) }, "History"),
        el("button", { type: "button", "aria-label": `Edit: ${short}`, onclick: () => editForm(m, slot) }, "Edit"),
        el("button", { type: "button", "aria-label": `Delete: ${short}`, onclick: () => deleteMemory(m) }, "Delete"),
      ),
      slot,
    );
    return li;
  }

  async function history(m, slot) {
    let versions;
    try {
      versions = (await api("GET", `/me/memories/${encodeURIComponent(m.key)}/history`)).versions;
    } catch (e) {
      banner(e.message);
      return;
    }
    slot.replaceChildren(
      el(
        "ol",
        { class: "history", "aria-label": "Versions, oldest first" },
        versions.map((v) => {
          const old = Boolean(v.valid_to);
          const span = `${formatTime(v.said_at)} → ${old ? formatTime(v.valid_to) : "now"}`;
          return el(
            "li",
            {},
            el("span", { class: old ? "old" : "" }, v.text || ""),
            ` (v${v.version || 1}, ${span}${old ? ", superseded" : ", current"})`,
          );
        }),
      ),
    );
  }

  function editForm(m, slot) {
    const id = `edit-${m.key}`;
    const area = el("textarea", { id, rows: 2, required: true });
    area.value = m.text || "";
    const form = el(
      "form",
      {
        onsubmit: async (event) => {
          event.preventDefault();
          try {
            await api("PATCH", `/me/memories/${encodeURIComponent(m.key)}`, { text: area.value });
          } catch (e) {
            banner(e.message);
            return;
          }
          banner("");
          await loadMemories();
          $("memory-caption").textContent += " · saved";
        },
      },
      el("label", { for: id }, "Corrected text"),
      area,
      el(
        "div",
        { class: "row wrap" },
        el("button", { type: "submit" }, "Save"),
        el("button", { type: "button", onclick: () => slot.replaceChildren() }, "Cancel"),
      ),
    );
    slot.replaceChildren(form);
    area.focus();
  }

  async function deleteMemory(m) {
    if (!window.confirm(`Delete this memory and its history?\n\n${m.text}`)) return;
    try {
      await api("DELETE", `/me/memories/${encodeURIComponent(m.key)}`);
    } catch (e) {
      banner(e.message);
      return;
    }
    await loadMemories();
  }

  // --- forget me ------------------------------------------------------------------------------

  function openForget() {
    $("forget-confirm").checked = false;
    $("forget-go").disabled = true;
    $("forget-go").hidden = false;
    $("forget-cancel").textContent = "Cancel";
    $("forget-receipt").hidden = true;
    $("forget-receipt").replaceChildren();
    $("forget-dialog").showModal();
  }

  async function forgetMe() {
    let receipt;
    $("forget-go").disabled = true;
    try {
      receipt = await api("DELETE", "/me");
    } catch (e) {
      $("forget-receipt").replaceChildren(el("p", { role: "alert" }, e.message));
      $("forget-receipt").hidden = false;
      return;
    }
    const deleted = { threads: (receipt.threads || []).length, ...(receipt.deleted || {}) };
    const rows = Object.entries(deleted).map(([kind, n]) => [kind.replace(/_/g, " "), String(n)]);
    $("forget-receipt").replaceChildren(
      el("h4", {}, `Receipt: deleted for ${receipt.user_id}`),
      el("dl", {}, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    );
    $("forget-receipt").hidden = false;
    $("forget-go").hidden = true;
    $("forget-cancel").textContent = "Close";
    $("forget-cancel").focus();
    newConversation();
    await loadConversations(true);
    await loadMemories();
  }

  // --- wiring ---------------------------------------------------------------------------------

  function wire() {
    $("token-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      $("token").value = "";
      if (!token) return;
      state.token = token;
      sessionStorage.setItem(TOKEN_KEY, token);
      await identify();
    });
    $("user-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const user = $("user-id").value.trim();
      if (!user) return;
      try {
        await api("GET", "/me", null, { user_id: user }, { noUser: true });
      } catch (e) {
        banner(e.message);
        return;
      }
      state.user = user;
      sessionStorage.setItem(USER_KEY, user);
      await enter();
    });
    $("sign-out").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      sessionStorage.removeItem(USER_KEY);
      state.token = null;
      state.user = null;
      newConversation();
      showSignIn(state.auth === false);
    });
    $("nav-chat").addEventListener("click", () => show("chat-page"));
    $("nav-memory").addEventListener("click", showMemoryPage);
    $("new-conversation").addEventListener("click", () => {
      newConversation();
      $("composer-text").focus();
    });
    $("more-conversations").addEventListener("click", () => loadConversations(false));
    $("show-report").addEventListener("click", toggleReport);
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      const box = $("composer-text");
      const text = box.value;
      if (!text.trim() || state.busy) return;
      box.value = "";
      send(text);
    });
    $("composer-text").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        $("composer").requestSubmit();
      }
    });
    $("memory-search").addEventListener("submit", (event) => {
      event.preventDefault();
      const q = $("memory-query").value.trim();
      if (q) searchMemories(q);
      else loadMemories();
    });
    $("memory-kind").addEventListener("change", loadMemories);
    $("memory-all").addEventListener("click", () => {
      $("memory-query").value = "";
      loadMemories();
    });
    $("forget-open").addEventListener("click", openForget);
    $("forget-confirm").addEventListener("change", (event) => {
      $("forget-go").disabled = !event.target.checked;
    });
    $("forget-go").addEventListener("click", forgetMe);
    $("forget-cancel").addEventListener("click", () => $("forget-dialog").close());
  }

  document.addEventListener("DOMContentLoaded", () => {
    wire();
    state.token = sessionStorage.getItem(TOKEN_KEY);
    state.user = sessionStorage.getItem(USER_KEY);
    identify();
  });
})();

/* Tandem writing studio (/write): a full-page story editor over the story HTTP API (/api/stories…).
 *
 * The story reads as a document of passages coloured by who wrote them, each with its swipes
 * (‹ 2/3 ›), inline edit, "branch from here" and thumbs; a composer streams the model's next
 * passage (fetch + Server-Sent Events; Stop aborts and the server keeps what was written, marked
 * incomplete). Side tabs: details, lore, the model's context, a character to talk to, sampling
 * settings, import/export. The session is the widget's (same localStorage keys), so both are one
 * user. Plain ES2019, no build step; every text users or models write goes in with textContent.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  var BASE = new URL(".", script ? script.src : location.href);
  var STORE = "tandem:" + BASE.host + ":"; // the widget's keys: one session per Tandem server
  var LANGUAGES = ["en", "ru"];
  var PHONE = window.matchMedia("(max-width: 600px)");
  var SETTINGS = ["candidates", "sentences", "temperature", "top_p", "max_new_tokens", "repetition_penalty"];
  var SECTIONS = ["instruction", "memory", "summary", "lore", "passages", "author_note", "task"];

  var TEXTS = window.TandemStudioTexts; // studio-texts.js
  var lang = browserLanguage();
  var T = TEXTS[lang];

  // The first of the browser's preferred languages that Tandem speaks ("ru-RU" is Russian), else English.
  function browserLanguage() {
    var wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
    for (var i = 0; i < wanted.length; i++) {
      var code = String(wanted[i] || "").slice(0, 2).toLowerCase();
      if (LANGUAGES.indexOf(code) >= 0) return code;
    }
    return "en";
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (all, key) { return key in values ? String(values[key]) : all; });
  }

  // --- small DOM helpers (no innerHTML anywhere) -----------------------------------------------

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === undefined || value === null || value === false) return;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    });
    (children || []).forEach(function (child) {
      if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function button(label, cls, onclick, extra) {
    var attrs = { type: "button", class: cls, text: label, onclick: onclick };
    Object.keys(extra || {}).forEach(function (k) { attrs[k] = extra[k]; });
    return el("button", attrs);
  }

  // The static texts of studio.html, in the current language (again when a story's language differs).
  function relabel() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-t]").forEach(function (n) { n.textContent = T[n.getAttribute("data-t")]; });
    document.querySelectorAll("[data-t-title]").forEach(function (n) { n.title = T[n.getAttribute("data-t-title")]; });
    document.querySelectorAll("[data-t-placeholder]").forEach(function (n) {
      n.placeholder = T[n.getAttribute("data-t-placeholder")];
    });
    document.querySelectorAll("[data-t-label]").forEach(function (n) {
      n.setAttribute("aria-label", T[n.getAttribute("data-t-label")]);
      n.title = T[n.getAttribute("data-t-label")];
    });
  }

  function store(key, value) {
    try {
      if (value === undefined) return JSON.parse(localStorage.getItem(STORE + key) || "null");
      if (value === null) localStorage.removeItem(STORE + key);
      else localStorage.setItem(STORE + key, JSON.stringify(value));
    } catch (e) { /* private mode or full storage: the studio still works for this page view */ }
    return null;
  }

  // --- the page's parts ----------------------------------------------------------------------------

  var studio = $("studio"), passagesBox = $("passages"), docScroll = $("doc-scroll"), composer = $("composer-text");
  var statusLine = $("status"), alertLine = $("alert"), titleLine = $("story-title");
  var buttons = { cont: $("continue"), add: $("add"), retry: $("retry"), undo: $("undo"), redo: $("redo"), stop: $("stop") };
  var TABS = ["details", "lore", "context", "character", "settings", "files"];

  var state = {
    story: null, stories: [], busy: false, abort: null, active: null, editing: null, tab: "details",
    characters: {} // character name -> [[question, answer], ...] of this page view
  };

  function id() { return state.story && state.story.id; }
  function say(message) { statusLine.textContent = message || ""; }
  function showAlert(message, detail) {
    alertLine.textContent = message || "";
    alertLine.title = detail || "";
    alertLine.hidden = !message;
  }
  function authorLabel(author) { return { user: T.you, model: T.model, edited: T.edited }[author] || author; }

  // --- HTTP: the widget's session, the story API, Server-Sent Events ----------------------------

  var opening = null;

  /* The widget's bearer token; without one, a new session as the widget would open it. */
  function token() {
    var saved = store("token");
    if (saved) return Promise.resolve(saved);
    if (!opening) {
      opening = fetch(new URL("api/conversations", BASE).href, { method: "POST", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error(response.statusText);
          return response.json();
        }).then(function (data) {
          store("token", data.token);
          store("conversation", data.conversation_id);
          return data.token;
        }).finally(function () { opening = null; });
    }
    return opening;
  }

  function failure(data, response) {
    var error = new Error((data && data.error && data.error.message) || response.statusText || String(response.status));
    error.status = response.status;
    return error;
  }

  function request(method, path, body, accept, signal) {
    return token().then(function (bearer) {
      var headers = { Authorization: "Bearer " + bearer, Accept: accept || "application/json" };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      return fetch(new URL("api/stories" + path, BASE).href, {
        method: method, headers: headers, signal: signal, body: body === undefined ? undefined : JSON.stringify(body)
      });
    });
  }

  function api(method, path, body, retried) {
    return request(method, path, body).then(function (response) {
      if (response.status === 401 && !retried) {
        // The token was deleted ("Delete my data") or never valid: start a new session once.
        store("token", null);
        store("conversation", null);
        return api(method, path, body, true);
      }
      if (response.status === 204) return {};
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) throw failure(data, response);
        return data;
      });
    });
  }

  /* POST with Accept: text/event-stream (EventSource cannot POST); onEvent(name, data) per event,
     onEvent("open") once the server has taken the request. */
  function stream(path, body, signal, onEvent) {
    return request("POST", path, body, "text/event-stream", signal).then(function (response) {
      if (!response.ok) {
        return response.json().catch(function () { return {}; }).then(function (data) { throw failure(data, response); });
      }
      onEvent("open", null);
      return window.TandemSse.read(response, onEvent);
    });
  }

  // --- rendering the story ---------------------------------------------------------------------------

  /* The whole page for `story`; `scroll`: "bottom" (default), "keep", or a passage id to bring into view. */
  function render(story, scroll) {
    var before = docScroll.scrollTop;
    var changedStory = !state.story || state.story.id !== story.id;
    state.story = story;
    store("story", story.id);
    if (LANGUAGES.indexOf(story.language) >= 0 && story.language !== lang) {
      lang = story.language;
      T = TEXTS[lang];
      relabel();
      renderStoryList();
    }
    titleLine.textContent = story.title || T.untitled;
    document.title = (story.title || T.untitled) + " — Tandem";
    renderDocument();
    fillDetails(changedStory);
    fillSettings(changedStory);
    setBusy(state.busy);
    markCurrentStory();
    if (scroll === "keep") docScroll.scrollTop = before;
    else if (typeof scroll === "number") {
      var node = passageNode(scroll);
      if (node) node.scrollIntoView({ block: "center" });
    } else docScroll.scrollTop = docScroll.scrollHeight;
    refreshOutline();
    if (state.tab === "context") loadContext();
    if (state.tab === "lore" && changedStory) loadLore();
  }

  function passageNode(passageId) {
    return passagesBox.querySelector('.passage[data-passage-id="' + passageId + '"]');
  }

  function passageOf(passageId) {
    return (state.story ? state.story.passages : []).filter(function (p) { return p.id === passageId; })[0];
  }

  function renderDocument() {
    passagesBox.textContent = "";
    var story = state.story;
    if (!story) { passagesBox.appendChild(el("p", { class: "no-story", text: T.noStory })); return; }
    if (!story.passages.length) passagesBox.appendChild(el("p", { class: "empty", text: T.empty }));
    var ids = story.passages.map(function (p) { return p.id; });
    if (ids.indexOf(state.active) < 0) state.active = ids[ids.length - 1] || null;
    story.passages.forEach(function (p, i) {
      passagesBox.appendChild(buildPassage(p, i === story.passages.length - 1));
    });
    if (state.editing && ids.indexOf(state.editing.id) >= 0) startEdit(state.editing.id, state.editing.draft, false);
  }

  function buildPassage(p, last) {
    var active = p.id === state.active;
    var tab = active ? "0" : "-1";
    var incomplete = p.status === "incomplete";
    var meta = el("div", { class: "meta" }, [
      el("span", { class: "number", text: String(p.number) }),
      el("span", { class: "who", text: authorLabel(p.author) }),
      incomplete ? el("span", { class: "flag", text: T.incomplete }) : null,
      swipeControl(p, last, tab)
    ]);
    var body = el("div", { class: "body", text: p.text, ondblclick: function () { startEdit(p.id); } });
    var tools = el("div", { class: "tools" }, [
      button(T.edit, "edit", function () { startEdit(p.id); },
             { tabindex: tab, "aria-label": T.edit + " — " + T.passage.toLowerCase() + " " + p.number }),
      button(T.branch, "branch", function () { branchAt(p); },
             { tabindex: tab, "aria-label": T.branch + " — " + T.passage.toLowerCase() + " " + p.number }),
      p.author === "user" ? null : thumbs(p, tab)
    ]);
    var node = el("div", {
      class: "passage " + p.author + (incomplete ? " incomplete" : "") + (active ? " active" : ""),
      role: "listitem", tabindex: tab, "data-passage-id": p.id, "data-number": p.number, "data-author": p.author,
      "aria-label": T.passage + " " + p.number + ", " + authorLabel(p.author) + (incomplete ? ", " + T.incomplete : "")
    }, [meta, body, tools]);
    node.addEventListener("keydown", function (e) { passageKeys(e, node, p); });
    return node;
  }

  function swipeControl(p, last, tab) {
    var swipe = p.swipe || { index: 1, count: 1 };
    if (swipe.count < 2) return null;
    var atEnd = swipe.index >= swipe.count;
    var grows = atEnd && last && p.author !== "user"; // past the last version of the head: a new one
    var where = fill(T.versionOf, { i: swipe.index, n: swipe.count });
    return el("span", { class: "swipes", role: "group", "aria-label": where }, [
      button("‹", "swipe-prev", function () { swipe_(p, -1, ".swipe-prev"); },
             { tabindex: tab, "aria-label": T.prev + " (" + where + ")", title: T.prev + " (Alt+←)",
               "aria-disabled": swipe.index <= 1 ? "true" : null }),
      el("span", { class: "swipe-count", text: swipe.index + "/" + swipe.count }),
      button("›", "swipe-next", function () { swipe_(p, 1, ".swipe-next"); },
             { tabindex: tab, "aria-label": (grows ? T.newVersion : T.next) + " (" + where + ")",
               title: (grows ? T.newVersion : T.next) + " (Alt+→)", "aria-disabled": atEnd && !grows ? "true" : null })
    ]);
  }

  // Thumbs as SVG paths (the widget's): emoji fonts are missing on many systems (a box would show).
  var THUMB_PATHS = {
    up: "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z",
    down: "M15 3H6c-.83 0-1.54.5-1.84 1.22l-3.02 7.05c-.09.23-.14.47-.14.73v2c0 1.1.9 2 2 2h6.31l-.95 4.57-.03.32c0 .41.17.79.44 1.06L9.83 23l6.59-6.59c.36-.36.58-.86.58-1.41V5c0-1.1-.9-2-2-2zm4 0v12h4V3h-4z"
  };

  function icon(name) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", THUMB_PATHS[name]);
    svg.appendChild(path);
    return svg;
  }

  function thumbs(p, tab) {
    var box = el("span", { class: "thumbs", role: "group" });
    [[1, "up", T.good], [-1, "down", T.bad]].forEach(function (t) {
      var b = button("", "thumb thumb-" + t[1], function () { rate(p, t[0]); },
                     { tabindex: tab, "aria-label": t[2], title: t[2], "data-value": t[0],
                       "aria-pressed": p.rating === t[0] ? "true" : "false" });
      b.appendChild(icon(t[1]));
      box.appendChild(b);
    });
    return box;
  }

  /* One passage is the document's tab stop (roving tabindex): arrows move between passages, so Tab
     goes through one passage's tools and then reaches the composer. */
  function setActive(passageId, focus) {
    state.active = passageId;
    passagesBox.querySelectorAll(".passage").forEach(function (node) {
      var on = Number(node.getAttribute("data-passage-id")) === passageId;
      node.classList.toggle("active", on);
      node.setAttribute("tabindex", on ? "0" : "-1");
      node.querySelectorAll("button").forEach(function (b) { b.setAttribute("tabindex", on ? "0" : "-1"); });
      if (on && focus) node.focus();
    });
  }

  passagesBox.addEventListener("focusin", function (e) {
    var node = e.target.closest(".passage");
    if (node && Number(node.getAttribute("data-passage-id")) !== state.active) {
      setActive(Number(node.getAttribute("data-passage-id")), false);
    }
  });

  function passageKeys(e, node, p) {
    if (e.target !== node) return;
    var nodes = Array.prototype.slice.call(passagesBox.querySelectorAll(".passage"));
    var i = nodes.indexOf(node), target = null;
    if (e.key === "ArrowDown") target = nodes[i + 1];
    else if (e.key === "ArrowUp") target = nodes[i - 1];
    else if (e.key === "Home") target = nodes[0];
    else if (e.key === "End") target = nodes[nodes.length - 1];
    else if (e.key === "Enter") { e.preventDefault(); startEdit(p.id); return; }
    if (target) {
      e.preventDefault();
      setActive(Number(target.getAttribute("data-passage-id")), true);
    }
  }

  // --- busy state and actions ---------------------------------------------------------------------

  function setBusy(busy) {
    state.busy = busy;
    var story = state.story;
    buttons.cont.disabled = busy;
    buttons.add.disabled = busy;
    buttons.retry.disabled = busy || !story || (!story.passages.length && !story.candidates.length);
    buttons.undo.disabled = busy || !story || !story.can_undo;
    buttons.redo.disabled = busy || !story || !story.can_redo;
    buttons.stop.hidden = !state.abort;
    passagesBox.setAttribute("aria-busy", busy ? "true" : "false");
  }

  function fail(error) {
    if (error && error.name === "AbortError") return;
    showAlert(fill(T.failed, { m: (error && error.message) || String(error) }));
  }

  /* An action answered with {story}: render it, then focus the composer (or what `after` says). */
  function run(promise, options) {
    options = options || {};
    setBusy(true);
    say("");
    showAlert("");
    return promise.then(function (data) {
      setBusy(false);
      if (data && data.story) render(data.story, options.scroll);
      say(options.message ? options.message() : "");
      if (options.focus) options.focus(); else composer.focus();
      return data;
    }).catch(function (error) {
      setBusy(false);
      fail(error);
      if (id()) return api("GET", "/" + id()).then(function (data) { render(data.story, "keep"); });
      return null;
    });
  }

  /* The story to act on: the open one, else a new one (writing into an empty studio starts a story). */
  function ensureStory() {
    if (state.story) return Promise.resolve(state.story);
    return api("POST", "", { language: lang }).then(function (data) {
      render(data.story);
      refreshStories();
      return data.story;
    });
  }

  function lastModelPassage() {
    var passages = state.story ? state.story.passages : [];
    for (var i = passages.length - 1; i >= 0; i--) if (passages[i].author !== "user") return passages[i];
    return null;
  }

  function head() {
    var passages = state.story ? state.story.passages : [];
    return passages[passages.length - 1] || null;
  }

  function swipe_(p, direction, control) {
    if (state.busy) return;
    var swipe = p.swipe || { index: 1, count: 1 };
    var isHead = head() && head().id === p.id;
    if (direction > 0 && swipe.index >= swipe.count) {
      if (isHead && p.author !== "user") generate("retry"); // past the newest version: write another
      return;
    }
    if (direction < 0 && swipe.index <= 1) return;
    var number = p.number;
    // A swipe from a swipe button keeps focus there, so the writer can keep swiping.
    var refocus = control ? function () {
      var node = passagesBox.querySelector('.passage[data-number="' + number + '"]');
      var again = node && node.querySelector(control);
      if (again) { setActive(Number(node.getAttribute("data-passage-id")), false); again.focus(); } else composer.focus();
    } : null;
    run(api("POST", "/" + id() + "/swipe", { passage_id: p.id, direction: direction }), { scroll: "keep", focus: refocus });
  }

  function swipeLast(direction) {
    var p = lastModelPassage();
    if (p) swipe_(p, direction, null);
  }

  function rate(p, value) {
    var next = p.rating === value ? 0 : value; // the same thumb again takes it back
    api("POST", "/" + id() + "/passages/" + p.id + "/rating", { value: next }).then(function (data) {
      p.rating = data.passage.rating;
      var node = passageNode(p.id);
      if (node) node.querySelectorAll(".thumb").forEach(function (b) {
        b.setAttribute("aria-pressed", Number(b.getAttribute("data-value")) === p.rating ? "true" : "false");
      });
    }).catch(fail);
  }

  function branchAt(p) {
    if (state.busy) return;
    run(api("POST", "/" + id() + "/branch", { passage_id: p.id }),
        { message: function () { return fill(T.branched, { n: p.number }); } });
  }

  function undo() {
    if (!state.busy && state.story && state.story.can_undo) run(api("POST", "/" + id() + "/undo"));
  }

  function redo() {
    if (!state.busy && state.story && state.story.can_redo) run(api("POST", "/" + id() + "/redo"));
  }

  function addPassage() {
    if (state.busy || !composer.value.trim()) return;
    var text = composer.value;
    run(ensureStory().then(function () { return api("POST", "/" + id() + "/passages", { text: text }); })
      .then(function (data) { if (composer.value === text) composer.value = ""; return data; }));
  }

  // --- inline edit ------------------------------------------------------------------------------------

  function startEdit(passageId, draft, focus) {
    if (state.busy) return;
    var node = passageNode(passageId), p = passageOf(passageId);
    if (!node || !p || node.querySelector(".edit-form")) return;
    var area = el("textarea", { class: "edit-area", maxlength: "4000", rows: "4",
                                "aria-label": T.edit + " — " + T.passage.toLowerCase() + " " + p.number });
    area.value = draft !== undefined ? draft : p.text;
    state.editing = { id: passageId, draft: area.value };
    area.addEventListener("input", function () { state.editing.draft = area.value; fit(area); });
    area.addEventListener("keydown", function (e) {
      if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); cancelEdit(); }
      else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); e.stopPropagation(); saveEdit(p, area.value); }
    });
    var form = el("form", { class: "edit-form", onsubmit: function (e) { e.preventDefault(); saveEdit(p, area.value); } }, [
      area, el("div", { class: "edit-buttons" }, [
        el("button", { type: "submit", class: "primary edit-save", text: T.save }),
        button(T.cancel, "edit-cancel", cancelEdit)
      ])
    ]);
    node.classList.add("editing");
    node.querySelector(".body").replaceWith(form);
    fit(area);
    if (focus !== false) { area.focus(); area.setSelectionRange(area.value.length, area.value.length); }
  }

  function fit(area) {
    area.style.height = "auto";
    area.style.height = Math.min(area.scrollHeight + 4, 600) + "px";
  }

  function cancelEdit() {
    state.editing = null;
    renderDocument();
    composer.focus();
  }

  function saveEdit(p, text) {
    if (text.trim() === p.text.trim()) { cancelEdit(); return; }
    state.editing = null;
    run(api("POST", "/" + id() + "/edit", { passage_id: p.id, text: text }), { scroll: "keep" });
  }

  // --- generation: continue and retry, streamed ------------------------------------------------------

  function liveBlock() {
    return el("div", { class: "passage model live", role: "listitem", "aria-busy": "true" }, [
      el("div", { class: "meta" }, [el("span", { class: "who", text: T.model }), el("span", { class: "progress" })]),
      el("div", { class: "body", "aria-hidden": "true" }) // not announced piece by piece
    ]);
  }

  /* Continue (with the composer's text as the writer's passage when there is some) or retry; the
     first candidate streams into a live block (in place of the passage a retry replaces). */
  function generate(kind) {
    if (state.busy) return;
    var sent = kind === "continue" ? composer.value : "";
    var body = sent.trim() ? { text: sent } : {};
    setBusy(true);
    showAlert("");
    ensureStory().then(function () {
      var live = liveBlock(), liveText = live.querySelector(".body"), progress = live.querySelector(".progress");
      var last = head();
      var replaced = kind === "retry" && last && last.author !== "user" && !state.story.candidates.length
        ? passageNode(last.id) : null;
      passagesBox.querySelectorAll(".empty").forEach(function (n) { n.remove(); });
      if (replaced) replaced.replaceWith(live);
      else {
        if (body.text) passagesBox.appendChild(el("div", { class: "passage user pending", role: "listitem" }, [
          el("div", { class: "meta" }, [el("span", { class: "who", text: T.you })]), el("div", { class: "body", text: body.text })
        ]));
        passagesBox.appendChild(live);
      }
      live.scrollIntoView({ block: "end" });
      say(T.writing);
      state.abort = new AbortController();
      setBusy(true);
      var outcome = { done: null, error: null, stopped: false };
      return stream("/" + id() + "/" + kind, body, state.abort.signal, function (name, data) {
        if (name === "open") {
          if (body.text && composer.value === sent) composer.value = ""; // the server has the passage now
        } else if (name === "delta") {
          if (data.of > 1) progress.textContent = fill(T.writingVersion, { i: data.candidate, n: data.of });
          if (data.candidate !== 1) return;
          if (data.reset) liveText.textContent = ""; // the model writes this candidate again
          liveText.appendChild(document.createTextNode(data.text));
          if (docScroll.scrollHeight - docScroll.scrollTop - docScroll.clientHeight < 120) docScroll.scrollTop = docScroll.scrollHeight;
        } else if (name === "done") {
          outcome.done = data;
        } else if (name === "error") {
          outcome.error = data.message;
        }
      }).catch(function (error) {
        if (error && error.name === "AbortError") outcome.stopped = true;
        else outcome.error = (error && error.message) || String(error);
      }).then(function () { return settle(outcome); });
    }).catch(function (error) {
      state.abort = null;
      setBusy(false);
      fail(error);
    });
  }

  /* After any generation: the server's story, with the best new candidate (the server's `ranked`,
     best first) taken at once, so it reads as the next passage and the others are its swipes. After
     a stop, choosing waits for the story's lock, so it sees the incomplete candidate the server
     stores as the stream closes. */
  function settle(outcome) {
    var path = "/" + id();
    state.abort = null;
    var fetched = outcome.stopped
      ? api("POST", path + "/choose", { candidate: 1 }).catch(function () { return api("GET", path); })
      : api("GET", path).then(function (data) {
        var waiting = data.story.candidates, ranked = (outcome.done && outcome.done.ranked) || [];
        var best = ranked.filter(function (pid) { return waiting.some(function (c) { return c.id === pid; }); })[0];
        return waiting.length ? api("POST", path + "/choose", { passage_id: best || waiting[0].id }) : data;
      });
    return fetched.then(function (data) {
      setBusy(false);
      render(data.story);
      // An `error` event's message is meant for the writer; the `errors` of `done` are the model's own
      // words (English, technical): the writer reads what happened, the tooltip keeps the detail.
      var errors = (outcome.done && outcome.done.errors) || [];
      if (outcome.error) showAlert(outcome.error);
      else if (errors.length) showAlert(outcome.done.candidates.length ? T.modelFailed : T.modelNothing, errors.join(" "));
      else showAlert("");
      if (outcome.error) errors = [outcome.error];
      var p = head();
      if (outcome.stopped) say(T.stopped);
      else if (p && p.author !== "user" && !errors.length) {
        say(p.swipe && p.swipe.count > 1 ? fill(T.writtenVersions, { n: p.number, count: p.swipe.count })
                                         : fill(T.written, { n: p.number }));
      } else say("");
      composer.focus();
    }).catch(function (error) {
      setBusy(false);
      fail(error);
    });
  }

  function stop() {
    if (state.abort) state.abort.abort();
  }

  // --- the story list and the branch outline --------------------------------------------------------

  function refreshStories() {
    return api("GET", "").then(function (data) {
      state.stories = data.stories;
      renderStoryList();
      return data.stories;
    });
  }

  function renderStoryList() {
    var list = $("story-list");
    list.textContent = "";
    if (!state.stories.length) list.appendChild(el("li", { class: "hint", text: T.noStories }));
    state.stories.forEach(function (s) {
      list.appendChild(el("li", {}, [button(s.title, "story-item", function () { openStory(s.id); },
                                            { "data-story-id": s.id })]));
    });
    markCurrentStory();
  }

  function markCurrentStory() {
    document.querySelectorAll(".story-item").forEach(function (b) {
      if (Number(b.getAttribute("data-story-id")) === id()) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    });
  }

  function openStory(storyId) {
    if (state.busy) return;
    state.editing = null;
    state.active = null;
    run(api("GET", "/" + storyId), { focus: function () { if (PHONE.matches) setStoriesOpen(false); composer.focus(); } });
  }

  function createStory(title) {
    var body = { language: lang };
    if (title) body.title = title;
    state.editing = null;
    run(api("POST", "", body).then(function (data) {
      $("new-title").value = "";
      return refreshStories().then(function () { return data; });
    }), { focus: function () { if (PHONE.matches) setStoriesOpen(false); composer.focus(); } });
  }

  function refreshOutline() {
    var storyId = id();
    if (!storyId || studio.getAttribute("data-stories") !== "open") return;
    api("GET", "/" + storyId + "/tree").then(function (data) {
      if (storyId === id()) renderOutline(data.passages);
    }).catch(function () { /* the outline is a view; the story itself still works */ });
  }

  /* The tree as nested lists: one list per run of passages, a fork where it splits. A branch is a
     child on the current path or with a continuation of its own; other children are versions of
     the same passage (its swipes) and show as "+N" beside it. */
  function renderOutline(passages) {
    var box = $("outline");
    box.textContent = "";
    var kids = {};
    passages.forEach(function (p) {
      var key = p.parent_id === null ? "root" : p.parent_id;
      (kids[key] = kids[key] || []).push(p);
    });
    var headId = state.story.head_id;
    function followed(key) {
      return (kids[key] || []).filter(function (p) { return p.number !== null || kids[p.id]; });
    }
    function item(p, others) {
      var label = (p.number !== null ? "#" + p.number : "·") + " " + snippet(p.text);
      return el("li", {}, [
        button(label, "outline-item " + p.author + (p.number !== null ? " on-path" : ""), function () { jump(p); },
               { "data-passage-id": p.id, "aria-current": p.id === headId ? "true" : null, title: p.text.slice(0, 300) }),
        alternatives(others)
      ]);
    }
    function alternatives(n) {
      var says = fill(T.otherVersions, { n: n });
      return n > 0 ? el("span", { class: "alternatives", text: "+" + n, title: says, "aria-label": says }) : null;
    }
    function chain(key, list) {
      for (;;) {
        var next = followed(key), others = (kids[key] || []).length - next.length;
        if (!next.length) return list;
        if (next.length === 1) { list.appendChild(item(next[0], others)); key = next[0].id; continue; }
        list.appendChild(el("li", { class: "fork" }, [el("ul", {}, next.map(function (p) {
          return el("li", { class: "branch" + (p.number !== null ? " current" : "") },
                    [chain(p.id, el("ol", {}, [item(p, 0)]))]);
        })), alternatives(others)]));
        return list;
      }
    }
    box.appendChild(chain("root", el("ol", { class: "chain" })));
  }

  function snippet(text) {
    var words = String(text).split(/\s+/).slice(0, 7).join(" ");
    return words.length < text.length ? words + "…" : words;
  }

  /* A passage of the current story scrolls into view; one on another branch becomes the head. */
  function jump(p) {
    if (state.busy) return;
    if (p.number !== null) {
      var node = passageNode(p.id);
      if (node) { node.scrollIntoView({ block: "center" }); setActive(p.id, true); }
      return;
    }
    run(api("POST", "/" + id() + "/branch", { passage_id: p.id }), { scroll: p.id });
  }

  // --- side panel: tabs --------------------------------------------------------------------------------

  function showTab(name, focus) {
    state.tab = name;
    store("studio-tab", name);
    TABS.forEach(function (t) {
      var tab = $("tab-" + t), on = t === name;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.setAttribute("tabindex", on ? "0" : "-1");
      $("pane-" + t).hidden = !on;
    });
    if (focus) $("tab-" + name).focus();
    if (name === "lore") loadLore();
    if (name === "context") loadContext();
  }

  TABS.forEach(function (t, i) {
    var tab = $("tab-" + t);
    tab.addEventListener("click", function () { showTab(t, false); });
    tab.addEventListener("keydown", function (e) {
      var next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 }[e.key];
      if (next === undefined) return;
      e.preventDefault();
      showTab(TABS[(next + TABS.length) % TABS.length], true);
    });
  });

  // --- details and settings -----------------------------------------------------------------------------

  var detailsForm = $("details-form"), settingsForm = $("settings-form");

  /* Fields the writer is changing keep their text when the story re-renders (never lose a word). */
  [detailsForm, settingsForm].forEach(function (form) {
    form.addEventListener("input", function (e) { e.target.setAttribute("data-dirty", "1"); });
  });

  function fillDetails(force) {
    var story = state.story;
    Array.prototype.forEach.call(detailsForm.elements, function (field) {
      if (!field.name || (!force && field.getAttribute("data-dirty"))) return;
      field.value = story[field.name] || "";
      field.removeAttribute("data-dirty");
    });
  }

  function fillSettings(force) {
    SETTINGS.forEach(function (name) {
      var field = $("s-" + name);
      if (!force && field.getAttribute("data-dirty")) return;
      field.value = state.story.settings[name];
      field.removeAttribute("data-dirty");
    });
  }

  detailsForm.addEventListener("submit", function (e) {
    e.preventDefault();
    if (!id()) return;
    var changes = {};
    Array.prototype.forEach.call(detailsForm.elements, function (field) { if (field.name) changes[field.name] = field.value; });
    if (!changes.title.trim()) delete changes.title;
    var saving = api("PATCH", "/" + id(), changes).then(function (data) {
      Array.prototype.forEach.call(detailsForm.elements, function (f) { f.removeAttribute("data-dirty"); });
      return refreshStories().then(function () { return data; });
    });
    run(saving, { scroll: "keep", message: function () { return T.saved; }, focus: function () { $("details-save").focus(); } });
  });

  settingsForm.addEventListener("submit", function (e) {
    e.preventDefault();
    if (!id()) return;
    var changes = {};
    SETTINGS.forEach(function (name) {
      var field = $("s-" + name), value = Number(field.value);
      if (field.value !== "" && value !== state.story.settings[name]) changes[name] = value;
    });
    var saving = (Object.keys(changes).length ? api("PATCH", "/" + id() + "/settings", changes) : Promise.resolve())
      .then(function () {
        SETTINGS.forEach(function (name) { $("s-" + name).removeAttribute("data-dirty"); });
        return api("GET", "/" + id());
      });
    run(saving, { scroll: "keep", message: function () { return T.saved; }, focus: function () { $("settings-save").focus(); } });
  });

  // --- lore --------------------------------------------------------------------------------------------

  function splitKeys(text) {
    return text.split(",").map(function (k) { return k.trim(); }).filter(Boolean);
  }

  function loadLore() {
    var storyId = id();
    if (!storyId) return;
    api("GET", "/" + storyId + "/lore").then(function (data) {
      if (storyId === id()) renderLore(data.lore);
    }).catch(fail);
  }

  function renderLore(entries) {
    var list = $("lore-list");
    list.textContent = "";
    if (!entries.length) list.appendChild(el("li", { class: "hint", text: T.noLore }));
    entries.forEach(function (entry) {
      var prefix = "lore-" + entry.id + "-";
      var keys = el("input", { id: prefix + "keys", type: "text", maxlength: "300", class: "lore-keys" });
      keys.value = entry.keys.join(", ");
      var text = el("textarea", { id: prefix + "text", rows: "3", maxlength: "2000", class: "lore-entry-text" });
      text.value = entry.text;
      var enabled = el("input", { id: prefix + "on", type: "checkbox", class: "lore-on" });
      enabled.checked = entry.enabled !== false;
      enabled.addEventListener("change", function () {
        api("PATCH", "/" + id() + "/lore/" + entry.id, { enabled: enabled.checked }).then(function () {
          item.classList.toggle("off", !enabled.checked);
          if (state.tab === "context") loadContext();
        }).catch(fail);
      });
      var remove = button(T.deleteLore, "lore-delete danger-text", function () {
        if (remove.getAttribute("data-confirm") !== "1") { // asks once, inline: nothing is lost by a stray click
          remove.setAttribute("data-confirm", "1");
          remove.textContent = T.reallyDelete;
          return;
        }
        api("DELETE", "/" + id() + "/lore/" + entry.id).then(loadLore).then(function () { $("lore-keys").focus(); }).catch(fail);
      });
      remove.addEventListener("blur", function () { remove.removeAttribute("data-confirm"); remove.textContent = T.deleteLore; });
      var form = el("form", { class: "fields", onsubmit: function (e) {
        e.preventDefault();
        say("");
        api("PATCH", "/" + id() + "/lore/" + entry.id, { keys: splitKeys(keys.value), text: text.value }).then(function () {
          say(T.saved);
          loadLore();
        }).catch(fail);
      } }, [
        el("div", { class: "lore-head" }, [
          el("label", { class: "check", for: enabled.id }, [enabled, " ", T.enabled]),
          el("span", { class: "lore-tokens", text: fill(T.tokens, { n: entry.tokens }) })
        ]),
        el("label", { for: keys.id, text: T.keys }), keys,
        el("label", { for: text.id, text: T.loreText }), text,
        el("div", { class: "row" }, [el("button", { type: "submit", class: "lore-save", text: T.save }), remove])
      ]);
      var item = el("li", { class: "lore-entry" + (entry.enabled === false ? " off" : ""), "data-lore-id": entry.id }, [form]);
      list.appendChild(item);
    });
  }

  $("lore-add").addEventListener("submit", function (e) {
    e.preventDefault();
    var keys = splitKeys($("lore-keys").value), text = $("lore-text").value;
    ensureStory().then(function () {
      return api("POST", "/" + id() + "/lore", { keys: keys, text: text, enabled: $("lore-enabled").checked });
    }).then(function () {
      $("lore-keys").value = "";
      $("lore-text").value = "";
      $("lore-enabled").checked = true;
      loadLore();
      $("lore-keys").focus();
    }).catch(fail);
  });

  // --- context viewer ---------------------------------------------------------------------------------

  function loadContext() {
    var storyId = id();
    if (!storyId) return;
    api("GET", "/" + storyId + "/context").then(function (data) {
      if (storyId === id()) renderContext(data);
    }).catch(fail);
  }

  function sectionName(name) { return T["sec_" + name] || name; }

  function renderContext(c) {
    var view = $("context-view");
    view.textContent = "";
    var window_ = c.tokens.window || 1;
    var parts = c.sections.map(function (s) { return { name: s.name, label: sectionName(s.name), tokens: s.tokens }; });
    var used = parts.reduce(function (sum, s) { return sum + s.tokens; }, 0);
    parts.push({ name: "answer", label: T.answer, tokens: c.tokens.answer });
    parts.push({ name: "free", label: T.free, tokens: Math.max(window_ - used - c.tokens.answer, 0) });
    var summary = fill(T.budget, { prompt: c.tokens.prompt, budget: c.tokens.budget, answer: c.tokens.answer, window: c.tokens.window });
    var bar = el("div", { class: "budget-bar", role: "img", "aria-label": summary });
    var legend = el("ul", { class: "budget-legend" });
    parts.forEach(function (s) {
      var known = SECTIONS.indexOf(s.name) >= 0 || s.name === "answer" || s.name === "free";
      var segment = el("span", { class: "segment seg-" + (known ? s.name : "other"), title: s.label + ": " + s.tokens });
      segment.style.width = (100 * s.tokens / window_) + "%";
      bar.appendChild(segment);
      legend.appendChild(el("li", {}, [el("span", { class: "key seg-" + (known ? s.name : "other") }),
                                       s.label + " — " + s.tokens]));
    });
    view.appendChild(el("p", { class: "budget-line", text: summary }));
    view.appendChild(bar);
    view.appendChild(legend);
    view.appendChild(el("p", { text: fill(T.passagesLine, { in: c.passages.in_prompt, out: c.passages.left_out, sum: c.passages.summarised }) }));
    if (c.summary_pending) view.appendChild(el("p", { class: "hint", text: T.summaryPending }));

    view.appendChild(el("h3", { text: T.sectionsTitle }));
    c.sections.forEach(function (s) {
      view.appendChild(el("details", { class: "section", "data-section": s.name }, [
        el("summary", { text: sectionName(s.name) + " — " + fill(T.tokens, { n: s.tokens }) }),
        el("pre", { text: s.text })
      ]));
    });

    view.appendChild(el("h3", { text: T.lore }));
    var lore = el("ul", { class: "context-lore" });
    if (!c.lore.length) lore.appendChild(el("li", { class: "hint", text: T.noLoreContext }));
    c.lore.forEach(function (entry) {
      lore.appendChild(el("li", { class: entry.included ? "included" : "left-out", "data-lore-id": entry.id }, [
        el("span", { class: "verdict", text: entry.included ? "✓ " + T.included : "✗ " + T.leftOut }),
        el("strong", { text: entry.keys.join(", ") }),
        el("span", { class: "lore-tokens", text: fill(T.tokens, { n: entry.tokens }) }),
        el("span", { class: "reason", text: entry.reason })
      ]));
    });
    view.appendChild(lore);

    view.appendChild(el("details", { class: "messages" }, [el("summary", { text: T.messages })].concat(
      c.messages.map(function (m) { return el("div", { class: "message" }, [el("h4", { text: m.role }), el("pre", { text: m.content })]); })
    )));
  }

  $("context-refresh").addEventListener("click", loadContext);

  // --- a character to talk to -----------------------------------------------------------------------

  $("character-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var name = $("char-name").value.trim(), question = $("char-question").value.trim();
    if (!name) { $("char-name").focus(); return; }
    if (!question || !id()) { $("char-question").focus(); return; }
    var history = state.characters[name] = state.characters[name] || [];
    var answer = el("p", { class: "answer", "aria-busy": "true" });
    var log = $("character-log");
    log.appendChild(el("div", { class: "exchange" }, [
      el("p", { class: "question" }, [el("strong", { text: T.you + ": " }), question]),
      el("p", { class: "speaker" }, [el("strong", { text: name + ": " })]), answer
    ]));
    $("char-question").value = "";
    $("char-ask").disabled = true;
    stream("/" + id() + "/character", { name: name, question: question, history: history.slice(-6) }, undefined,
           function (event, data) {
             if (event === "delta") answer.appendChild(document.createTextNode(data.text));
             else if (event === "done") { answer.textContent = data.answer; history.push([question, data.answer]); }
           }).catch(fail).then(function () {
      answer.setAttribute("aria-busy", "false");
      $("char-ask").disabled = false;
      $("char-question").focus();
    });
  });

  $("char-question").addEventListener("keydown", function (e) {
    // Enter asks (a chat); Shift+Enter is a new line.
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("character-form").requestSubmit(); }
  });

  // --- import and export ---------------------------------------------------------------------------

  document.querySelectorAll(".export").forEach(function (b) {
    b.addEventListener("click", function () { download(b.getAttribute("data-format")); });
  });

  function download(format) {
    if (!id()) return;
    request("GET", "/" + id() + "/export?format=" + format).then(function (response) {
      if (!response.ok) throw new Error(response.statusText);
      var match = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
      return response.blob().then(function (blob) {
        var a = el("a", { href: URL.createObjectURL(blob), download: match ? match[1] : "story." + format, hidden: true });
        document.body.appendChild(a);
        a.click();
        setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
      });
    }).catch(fail);
  }

  $("import-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var file = $("import-file").files[0];
    if (!file) { showAlert(T.noFile); $("import-file").focus(); return; }
    file.text().then(function (text) {
      var data;
      try { data = JSON.parse(text); } catch (error) { showAlert(T.badFile); return null; }
      state.editing = null;
      state.active = null;
      return run(api("POST", "/import", data).then(function (answer) {
        $("import-file").value = "";
        return refreshStories().then(function () { return answer; });
      }), { message: function () { return T.imported; } });
    });
  });

  // --- the composer and keyboard shortcuts ------------------------------------------------------------

  $("composer").addEventListener("submit", function (e) { e.preventDefault(); generate("continue"); });
  buttons.add.addEventListener("click", addPassage);
  buttons.retry.addEventListener("click", function () { generate("retry"); });
  buttons.undo.addEventListener("click", undo);
  buttons.redo.addEventListener("click", redo);
  buttons.stop.addEventListener("click", stop);
  $("new-story").addEventListener("submit", function (e) { e.preventDefault(); createStory($("new-title").value.trim()); });
  $("skip").addEventListener("click", function (e) { e.preventDefault(); composer.focus(); });

  function isTextField(node) {
    return node && (node.tagName === "TEXTAREA" || (node.tagName === "INPUT" && /^(text|search|number|)$/.test(node.type)));
  }

  document.addEventListener("keydown", function (e) {
    var mod = e.ctrlKey || e.metaKey, target = e.target;
    if (e.key === "Escape") {
      if (state.abort) { e.preventDefault(); stop(); }
      else if (PHONE.matches && studio.getAttribute("data-panel") === "open") { setPanelOpen(false); $("toggle-panel").focus(); }
      else if (PHONE.matches && studio.getAttribute("data-stories") === "open") { setStoriesOpen(false); $("toggle-stories").focus(); }
      return;
    }
    if (mod && e.key === "Enter") {
      // Ctrl+Enter continues from the composer or from the document; fields elsewhere keep their own meaning.
      if (isTextField(target) && target !== composer) return;
      e.preventDefault();
      generate("continue");
      return;
    }
    if (e.altKey && !mod && (e.key === "ArrowLeft" || e.key === "ArrowRight")) {
      if (isTextField(target) && target.value) return; // moving by word in a text keeps working
      e.preventDefault(); // Alt+← is also the browser's Back
      swipeLast(e.key === "ArrowRight" ? 1 : -1);
      return;
    }
    // e.code: the Z key in any keyboard layout (on a Russian one e.key is "я").
    if (mod && !e.altKey && (e.code === "KeyZ" || e.code === "KeyY")) {
      if (isTextField(target) && (target !== composer || target.value)) return; // undo inside the text
      e.preventDefault();
      if (e.shiftKey || e.code === "KeyY") redo(); else undo();
    }
  });

  // --- the two side columns: open and closed (sheets on a phone) ---------------------------------------

  function setStoriesOpen(open) {
    studio.setAttribute("data-stories", open ? "open" : "closed");
    $("toggle-stories").setAttribute("aria-expanded", open ? "true" : "false");
    if (!PHONE.matches) store("studio-stories", open);
    if (open) {
      if (PHONE.matches) setPanelOpen(false);
      refreshOutline();
    }
  }

  function setPanelOpen(open) {
    studio.setAttribute("data-panel", open ? "open" : "closed");
    $("toggle-panel").setAttribute("aria-expanded", open ? "true" : "false");
    if (!PHONE.matches) store("studio-panel", open);
    if (open && PHONE.matches) setStoriesOpen(false);
    if (open) showTab(state.tab, false);
  }

  $("toggle-stories").addEventListener("click", function () {
    var open = studio.getAttribute("data-stories") !== "open";
    setStoriesOpen(open);
    if (open && PHONE.matches) $("new-title").focus();
  });
  $("toggle-panel").addEventListener("click", function () {
    var open = studio.getAttribute("data-panel") !== "open";
    setPanelOpen(open);
    if (open && PHONE.matches) $("tab-" + state.tab).focus();
  });
  $("close-panel").addEventListener("click", function () { setPanelOpen(false); $("toggle-panel").focus(); });

  // --- start --------------------------------------------------------------------------------------

  function start() {
    relabel();
    titleLine.textContent = T.studio;
    var phone = PHONE.matches;
    setStoriesOpen(phone ? false : store("studio-stories") !== false);
    state.tab = TABS.indexOf(store("studio-tab")) >= 0 ? store("studio-tab") : "details";
    setPanelOpen(phone ? false : store("studio-panel") !== false);
    showTab(state.tab, false);
    renderDocument();
    setBusy(false);
    composer.focus();
    var wanted = Number(new URLSearchParams(location.search).get("story")) || store("story");
    refreshStories().then(function (stories) {
      var found = stories.filter(function (s) { return s.id === wanted; })[0] || stories[0];
      if (found) return api("GET", "/" + found.id).then(function (data) { render(data.story); });
      return null;
    }).catch(fail);
  }

  start();
})();

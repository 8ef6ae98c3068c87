/* Tandem chat widget: one <script src=".../widget.js"> adds a launcher and a chat panel to a page.
 *
 * Options (data- attributes on the script tag): data-title, data-lang (en|ru; without it, the first
 * of the browser's languages that Tandem speaks, else English), data-open ("true" opens the panel at
 * once), data-position (right|left). No build step: plain ES2019 in one file.
 * Everything users and models write is put in the page with textContent / createElement, never
 * innerHTML, so no text can inject markup.
 */
(function () {
  "use strict";
  if (window.TandemWidget) return; // a page that includes the script twice gets one widget

  var script = document.currentScript;
  var base = new URL(".", script ? script.src : location.href);
  var opts = (script && script.dataset) || {};
  var LANGUAGES = ["en", "ru"];
  var LANG = pickLanguage();
  var TIMEZONE = browserTimezone();
  var TITLE = opts.title || "Tandem";
  var STORE = "tandem:" + base.host + ":"; // one session per Tandem server, even on one page origin
  var OFFER_AFTER = 4; // bot replies before the widget asks for a rating, once per conversation

  // Every language has the same keys (tests/test_shipped_texts.py checks).
  var TEXTS = {
    en: {
      open: "Open chat", close: "Close chat", send: "Send", stop: "Stop", placeholder: "Type a message…",
      suggestions: "Suggestions", slowDown: "Slow down a little: try again in {s} s.",
      typing: "Tandem is typing", thumbUp: "Good reply", thumbDown: "Bad reply", rate: "Rate this conversation",
      rateSubmit: "Send rating", comment: "Comment (optional)", rated: "You rated this conversation",
      reconnecting: "Reconnecting…", offline: "Offline — messages will be sent when the connection is back",
      sending: "sending…", stopped: "stopped", newChat: "New conversation", chat: "Chat", story: "Story",
      offer: "How is this conversation going? Rate it:", stars: ["star", "stars"], you: "You", bot: "Tandem",
      thanks: "Thanks for the rating!", deleteData: "Delete my data",
      deleteConfirm: "Delete all your conversations, stories and feedback on this server? This cannot be undone.",
      deleteYes: "Delete everything", cancel: "Cancel", deleted: "Your data was deleted."
    },
    ru: {
      open: "Открыть чат", close: "Закрыть чат", send: "Отправить", stop: "Стоп", placeholder: "Напиши сообщение…",
      suggestions: "Подсказки", slowDown: "Чуть помедленнее: попробуй ещё раз через {s} с.",
      typing: "Tandem печатает", thumbUp: "Хороший ответ", thumbDown: "Плохой ответ", rate: "Оценить разговор",
      rateSubmit: "Отправить оценку", comment: "Комментарий (необязательно)", rated: "Твоя оценка разговора",
      reconnecting: "Переподключение…", offline: "Нет связи — сообщения уйдут, когда связь вернётся",
      sending: "отправляется…", stopped: "остановлено", newChat: "Новый разговор", chat: "Чат", story: "История",
      offer: "Как тебе разговор? Оцени:", stars: ["звезда", "звезды", "звёзд"], you: "Ты", bot: "Tandem",
      thanks: "Спасибо за оценку!", deleteData: "Удалить мои данные",
      deleteConfirm: "Удалить все твои разговоры, истории и отзывы на этом сервере? Это нельзя отменить.",
      deleteYes: "Удалить всё", cancel: "Отмена", deleted: "Твои данные удалены."
    }
  };
  var T = TEXTS[LANG];

  // The page's data-lang when it names a language Tandem speaks; else the first of the browser's
  // preferred languages that it speaks ("ru-RU" is Russian); else English. The server takes it as
  // its first guess and still answers a message in the language it is written in.
  function pickLanguage() {
    if (LANGUAGES.indexOf(opts.lang) >= 0) return opts.lang;
    var wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
    for (var i = 0; i < wanted.length; i++) {
      var code = String(wanted[i] || "").slice(0, 2).toLowerCase();
      if (LANGUAGES.indexOf(code) >= 0) return code;
    }
    return "en";
  }

  // The browser's IANA time zone ("Europe/Moscow"), for answers about the date and time; null when unknown.
  function browserTimezone() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || null; } catch (e) { return null; }
  }

  // The form of a counted word: [one, many] in English, [one, few, many] in Russian (1 звезда, 3 звезды, 5 звёзд).
  function plural(n, forms) {
    if (forms.length < 3) return n === 1 ? forms[0] : forms[1];
    var tens = n % 100, ones = n % 10;
    if (ones === 1 && tens !== 11) return forms[0];
    if (ones >= 2 && ones <= 4 && (tens < 12 || tens > 14)) return forms[1];
    return forms[2];
  }

  // --- small DOM helpers (no innerHTML anywhere) -------------------------------------------

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === undefined || value === null || value === false) return;
        if (key === "text") node.textContent = value;
        else if (key === "class") node.className = value;
        else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, value === true ? "" : String(value));
      });
    }
    (children || []).forEach(function (child) {
      if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function store(key, value) {
    try {
      if (value === undefined) return JSON.parse(localStorage.getItem(STORE + key) || "null");
      if (value === null) localStorage.removeItem(STORE + key);
      else localStorage.setItem(STORE + key, JSON.stringify(value));
    } catch (e) { /* private mode or full storage: the widget still works for this page view */ }
    return null;
  }

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
  }

  // Icons as SVG paths: emoji fonts are missing on many systems (a box would show instead).
  var ICONS = {
    chat: "M20 2H4c-1.1 0-2 .9-2 2v18l4-4h14c1.1 0 2-.9 2-2V4c0-1.1-.9-2-2-2z",
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
    path.setAttribute("d", ICONS[name]);
    svg.appendChild(path);
    return svg;
  }

  // --- light Markdown: **bold**, *italic*, `code`, [text](https://…), lists, paragraphs ------

  var INLINE = /(\*\*([^*]+)\*\*|`([^`]+)`|\*([^*\s][^*]*)\*|_([^_\s][^_]*)_|\[([^\]]+)\]\(([^)\s]+)\))/g;

  function inline(text, parent) {
    var last = 0, match;
    INLINE.lastIndex = 0;
    while ((match = INLINE.exec(text)) !== null) {
      if (match.index > last) parent.appendChild(document.createTextNode(text.slice(last, match.index)));
      if (match[2] !== undefined) parent.appendChild(el("strong", { text: match[2] }));
      else if (match[3] !== undefined) parent.appendChild(el("code", { text: match[3] }));
      else if (match[4] !== undefined || match[5] !== undefined) parent.appendChild(el("em", { text: match[4] || match[5] }));
      else if (/^https?:\/\//i.test(match[7])) {
        // Only http(s) links: a javascript: or data: URL never becomes an href.
        parent.appendChild(el("a", { href: match[7], text: match[6], target: "_blank", rel: "noopener noreferrer nofollow" }));
      } else parent.appendChild(document.createTextNode(match[0]));
      last = INLINE.lastIndex;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function markdown(text) {
    var root = document.createDocumentFragment();
    String(text).split(/\n{2,}/).forEach(function (block) {
      var lines = block.split("\n");
      var bullets = lines.every(function (l) { return /^\s*[-*•]\s+/.test(l); });
      var numbers = lines.every(function (l) { return /^\s*\d+[.)]\s+/.test(l); });
      if (bullets || numbers) {
        var list = el(bullets ? "ul" : "ol");
        lines.forEach(function (l) {
          var item = el("li");
          inline(l.replace(/^\s*(?:[-*•]|\d+[.)])\s+/, ""), item);
          list.appendChild(item);
        });
        root.appendChild(list);
        return;
      }
      var p = el("p");
      lines.forEach(function (line, i) {
        if (i) p.appendChild(el("br"));
        inline(line, p);
      });
      root.appendChild(p);
    });
    return root;
  }

  // --- the widget ------------------------------------------------------------------------------

  var host = el("div", { id: "tandem-widget", "data-position": opts.position === "left" ? "left" : "right" });
  var shadow = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  shadow.appendChild(el("link", { rel: "stylesheet", href: new URL("widget.css", base).href }));

  var launcher = el("button", {
    class: "launcher", type: "button", "aria-expanded": "false", "aria-controls": "tandem-panel",
    "aria-label": T.open, onclick: function () { setOpen(panel.hidden); }
  }, [icon("chat")]);

  var statusLine = el("div", { class: "connection", role: "status", hidden: true });
  var log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-relevant": "additions",
                        "aria-label": TITLE + " — " + T.chat, tabindex: "0" });
  var typing = el("div", { class: "typing", hidden: true }, [
    el("span", { class: "sr-only", text: T.typing }),
    el("span", { class: "dots", "aria-hidden": "true" }, [el("i"), el("i"), el("i")])
  ]);
  var suggestionsBox = el("div", { class: "suggestions", role: "group", "aria-label": T.suggestions });
  var input = el("textarea", { rows: "1", placeholder: T.placeholder, "aria-label": T.placeholder, maxlength: "4096" });
  var sendButton = el("button", { type: "submit", class: "send", text: T.send });
  var stopButton = el("button", { type: "button", class: "stop", text: T.stop, hidden: true,
                                  onclick: function () { send({ type: "stop" }); } });
  var composer = el("form", { class: "composer", onsubmit: function (e) { e.preventDefault(); submit(); } },
                    [input, stopButton, sendButton]);

  var ratingForm = buildRatingForm();
  var chatView = el("section", { class: "view chat-view", "aria-label": T.chat },
                    [log, typing, suggestionsBox, ratingForm.node, composer]);

  var tabs = el("div", { class: "tabs", role: "tablist" });
  var views = { chat: chatView };
  var tabButtons = {};
  function addTab(name, label, view) {
    views[name] = view;
    var button = el("button", {
      type: "button", role: "tab", id: "tandem-tab-" + name, "aria-selected": name === "chat" ? "true" : "false",
      tabindex: name === "chat" ? "0" : "-1", text: label, onclick: function () { showView(name); },
      onkeydown: function (e) {
        var names = Object.keys(views), i = names.indexOf(name);
        if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
          var next = names[(i + (e.key === "ArrowRight" ? 1 : names.length - 1)) % names.length];
          showView(next);
          tabButtons[next].focus();
        }
      }
    });
    view.setAttribute("role", "tabpanel");
    if (panel && !view.parentNode) panel.appendChild(view); // views added later (story mode) join the panel
    view.setAttribute("aria-labelledby", button.id);
    tabButtons[name] = button;
    tabs.appendChild(button);
  }
  addTab("chat", T.chat, chatView);

  var header = el("header", {}, [
    el("h2", { text: TITLE, id: "tandem-title" }), tabs,
    el("button", { type: "button", class: "icon rate-open", "aria-label": T.rate, title: T.rate, text: "★",
                   onclick: function () { showView("chat"); ratingForm.toggle(true); } }),
    el("button", { type: "button", class: "icon new-chat", "aria-label": T.newChat, title: T.newChat, text: "+",
                   onclick: function () { showView("chat"); send({ type: "new_conversation" }); } }),
    el("button", { type: "button", class: "icon delete-data", "aria-label": T.deleteData, title: T.deleteData,
                   text: "⌫", onclick: function () { showView("chat"); deleteBar.hidden = false; deleteBar.querySelector("button").focus(); } }),
    el("button", { type: "button", class: "icon close", "aria-label": T.close, title: T.close, text: "×",
                   onclick: function () { setOpen(false); } })
  ]);
  // Deleting asks first, inline (a native confirm() would block the host page).
  var deleteBar = el("div", { class: "delete-bar", role: "alertdialog", "aria-label": T.deleteData, hidden: true }, [
    el("span", { text: T.deleteConfirm }),
    el("button", { type: "button", class: "danger delete-yes", text: T.deleteYes,
                   onclick: function () { deleteBar.hidden = true; send({ type: "delete_my_data", confirm: true }); } }),
    el("button", { type: "button", class: "delete-no", text: T.cancel,
                   onclick: function () { deleteBar.hidden = true; input.focus(); } })
  ]);
  var panel = el("div", { class: "panel", id: "tandem-panel", role: "dialog", "aria-labelledby": "tandem-title",
                          hidden: true }, [header, statusLine, deleteBar, chatView]);
  panel.addEventListener("keydown", function (e) {
    if (e.key === "Escape") setOpen(false);
  });
  shadow.appendChild(launcher);
  shadow.appendChild(panel);

  function setOpen(open) {
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", open ? "true" : "false");
    launcher.setAttribute("aria-label", open ? T.close : T.open);
    if (open) input.focus(); else launcher.focus();
    store("open", open);
  }

  function showView(name) {
    Object.keys(views).forEach(function (key) {
      views[key].hidden = key !== name;
      tabButtons[key].setAttribute("aria-selected", key === name ? "true" : "false");
      tabButtons[key].setAttribute("tabindex", key === name ? "0" : "-1");
    });
    if (name !== "chat" && views[name].onshow) views[name].onshow();
  }

  input.addEventListener("keydown", function (e) {
    // Enter sends, Shift+Enter makes a new line: what people expect from chat boxes.
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
  });

  // --- messages ---------------------------------------------------------------------------------

  var pendingBubbles = {}; // client_id -> {user, bot}
  var botReplies = 0;

  function scrollDown() { log.scrollTop = log.scrollHeight; }

  function userBubble(text, clientId, messageId) {
    var node = el("div", { class: "msg user", "data-client-id": clientId, "data-message-id": messageId }, [
      el("span", { class: "sr-only", text: T.you + ": " }), el("div", { class: "text", text: text })
    ]);
    log.appendChild(node);
    scrollDown();
    return node;
  }

  function botBubble(clientId) {
    var body = el("div", { class: "text", "aria-hidden": "true" }); // not announced per token
    var node = el("div", { class: "msg bot streaming", "data-client-id": clientId }, [body]);
    log.setAttribute("aria-busy", "true");
    log.appendChild(node);
    return node;
  }

  function finishBot(node, msg) {
    // The final text replaces the streamed one as a new node: the log announces it once.
    var old = node.querySelector(".text");
    var body = el("div", { class: "text" }, [el("span", { class: "sr-only", text: T.bot + ": " }), markdown(msg.text)]);
    node.replaceChild(body, old);
    node.classList.remove("streaming");
    node.setAttribute("data-message-id", msg.message_id || msg.id || "");
    node.setAttribute("data-skill", msg.skill || "");
    if (msg.status === "incomplete") node.appendChild(el("span", { class: "badge", text: T.stopped }));
    if (msg.message_id || msg.id) node.appendChild(thumbs(msg.message_id || msg.id, msg.thumb));
    log.setAttribute("aria-busy", "false");
    scrollDown();
  }

  function thumbs(messageId, given) {
    var box = el("div", { class: "thumbs", role: "group", "aria-label": T.thumbUp + " / " + T.thumbDown });
    [["up", T.thumbUp], ["down", T.thumbDown]].forEach(function (t) {
      box.appendChild(el("button", {
        type: "button", class: "thumb thumb-" + t[0], "data-value": t[0], "aria-label": t[1], title: t[1],
        "aria-pressed": given === t[0] ? "true" : "false",
        onclick: function () { send({ type: "thumb", message_id: Number(messageId), value: t[0] }); }
      }, [icon(t[0])]));
    });
    return box;
  }

  function showSuggestions(list) {
    suggestionsBox.textContent = "";
    (list || []).forEach(function (text) {
      suggestionsBox.appendChild(el("button", { type: "button", class: "chip", text: text,
                                                onclick: function () { submit(text); } }));
    });
  }

  function renderTranscript(messages, rating) {
    log.textContent = "";
    pendingBubbles = {};
    botReplies = 0;
    messages.forEach(function (m) {
      if (m.author === "user") userBubble(m.text, null, m.id);
      else { finishBot(botBubble(null), m); botReplies++; }
    });
    showSuggestions([]);
    ratingForm.show(rating);
  }

  // --- sending, with an outbox that survives reconnects and reloads ---------------------------

  var outbox = store("outbox") || []; // [{client_id, text, conversation_id}] not yet acknowledged
  var generating = 0;

  function submit(text) {
    text = (text === undefined ? input.value : text).trim();
    if (!text) return;
    input.value = "";
    var item = { client_id: newId(), text: text };
    outbox.push(item);
    store("outbox", outbox);
    pendingBubbles[item.client_id] = { user: userBubble(text, item.client_id) };
    pendingBubbles[item.client_id].user.classList.add("pending");
    showSuggestions([]);
    send({ type: "message", client_id: item.client_id, text: text });
  }

  function setGenerating(delta) {
    generating = Math.max(0, generating + delta);
    stopButton.hidden = generating === 0;
  }

  // --- rating -------------------------------------------------------------------------------------

  function buildRatingForm() {
    var chosen = 0;
    var stars = el("div", { class: "stars", role: "radiogroup", "aria-label": T.rate });
    var buttons = [1, 2, 3, 4, 5].map(function (n) {
      var b = el("button", { type: "button", role: "radio", class: "star", "data-value": n, "aria-checked": "false",
                             "aria-label": n + " " + plural(n, T.stars), text: "★",
                             onclick: function () { pick(n); } });
      b.addEventListener("keydown", function (e) {
        if (e.key === "ArrowRight" || e.key === "ArrowUp") { e.preventDefault(); pick(Math.min(5, n + 1)); buttons[Math.min(4, n)].focus(); }
        if (e.key === "ArrowLeft" || e.key === "ArrowDown") { e.preventDefault(); pick(Math.max(1, n - 1)); buttons[Math.max(0, n - 2)].focus(); }
      });
      stars.appendChild(b);
      return b;
    });
    var comment = el("textarea", { rows: "2", "aria-label": T.comment, placeholder: T.comment, maxlength: "4000" });
    var prompt = el("p", { class: "offer", text: T.rate });
    var given = el("p", { class: "given", hidden: true });
    var form = el("form", { class: "rating", hidden: true, "aria-label": T.rate,
                            onsubmit: function (e) {
                              e.preventDefault();
                              if (!chosen) { buttons[0].focus(); return; }
                              send({ type: "rating", rating: chosen, comment: comment.value.trim() || null });
                            } },
                  [prompt, stars, comment, el("button", { type: "submit", class: "send", text: T.rateSubmit })]);
    var box = el("div", { class: "rating-box" }, [given, form]);
    function pick(n) {
      chosen = n;
      buttons.forEach(function (b, i) {
        b.setAttribute("aria-checked", i + 1 === n ? "true" : "false");
        b.setAttribute("tabindex", i + 1 === n || (!n && i === 0) ? "0" : "-1");
        b.classList.toggle("on", i < n);
      });
    }
    pick(0);
    return {
      node: box,
      toggle: function (open, offer) {
        form.hidden = !open;
        prompt.textContent = offer ? T.offer : T.rate;
        if (open) buttons[0].focus();
      },
      show: function (rating) {
        if (!rating) { given.hidden = true; form.hidden = true; pick(0); comment.value = ""; return; }
        pick(rating.rating);
        comment.value = rating.comment || "";
        given.hidden = false;
        given.textContent = T.rated + ": " + rating.rating + "/5" + (rating.comment ? " — “" + rating.comment + "”" : "");
      },
      rated: function () { return !given.hidden; }
    };
  }

  // --- the socket ------------------------------------------------------------------------------

  var ws = null, retry = 0, everConnected = false;

  function send(frame) {
    if (ws && ws.readyState === 1 && ws.welcomed) ws.send(JSON.stringify(frame));
    else if (frame.type !== "message") showStatus(T.offline); // messages wait in the outbox
  }

  function showStatus(text) {
    statusLine.hidden = !text;
    statusLine.textContent = text || "";
  }

  function connect() {
    var url = new URL("ws", base);
    url.protocol = base.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(url.href);
    ws.onopen = function () {
      ws.send(JSON.stringify({ type: "hello", token: store("token"), conversation_id: store("conversation"),
                               language: LANG, timezone: TIMEZONE }));
    };
    ws.onmessage = function (event) {
      var msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      handle(msg);
    };
    ws.onclose = function () {
      ws = null;
      generating = 0;
      stopButton.hidden = true;
      typing.hidden = true;
      if (everConnected) showStatus(T.reconnecting);
      // Back off 0.5 s, 1 s, 2 s … up to 10 s, with jitter so a restarted server is not stampeded.
      var delay = Math.min(10000, 500 * Math.pow(2, retry++)) * (0.75 + Math.random() / 2);
      setTimeout(connect, delay);
    };
  }

  function handle(msg) {
    var bubbles = msg.client_id ? pendingBubbles[msg.client_id] : null;
    switch (msg.type) {
      case "welcome":
        ws.welcomed = true;
        retry = 0;
        everConnected = true;
        showStatus("");
        if (msg.token) store("token", msg.token);
        if (store("conversation") !== msg.conversation_id) store("offered", null);
        store("conversation", msg.conversation_id);
        renderTranscript(msg.messages, msg.rating);
        // Unacknowledged messages go again; the server answers a resend it already has from the first turn.
        outbox.forEach(function (item) {
          pendingBubbles[item.client_id] = { user: userBubble(item.text, item.client_id) };
          pendingBubbles[item.client_id].user.classList.add("pending");
          ws.send(JSON.stringify({ type: "message", client_id: item.client_id, text: item.text }));
        });
        (msg.pending || []).forEach(function (cid) { pendingBubbles[cid] = pendingBubbles[cid] || {}; });
        if (msg.pending && msg.pending.length) typing.hidden = false;
        break;
      case "ack":
        outbox = outbox.filter(function (item) { return item.client_id !== msg.client_id; });
        store("outbox", outbox);
        if (bubbles && bubbles.user) bubbles.user.classList.remove("pending");
        break;
      case "rejected":
        outbox = outbox.filter(function (item) { return item.client_id !== msg.client_id; });
        store("outbox", outbox);
        if (bubbles && bubbles.user) {
          bubbles.user.classList.remove("pending");
          bubbles.user.appendChild(el("div", { class: "error", role: "alert", text: msg.message }));
        }
        break;
      case "typing":
        if (!bubbles) pendingBubbles[msg.client_id] = bubbles = {};
        typing.hidden = false;
        setGenerating(1);
        bubbles.counted = true;
        scrollDown();
        break;
      case "delta":
        if (!bubbles) pendingBubbles[msg.client_id] = bubbles = {};
        typing.hidden = true;
        if (!bubbles.bot) bubbles.bot = botBubble(msg.client_id);
        bubbles.bot.querySelector(".text").appendChild(document.createTextNode(msg.text));
        scrollDown();
        break;
      case "reply":
        typing.hidden = true;
        if (bubbles && bubbles.counted) setGenerating(-1);
        delete pendingBubbles[msg.client_id];
        if (msg.message_id && log.querySelector('.msg.bot[data-message-id="' + msg.message_id + '"]')) {
          if (bubbles && bubbles.bot) bubbles.bot.remove(); // already shown from the transcript
          break;
        }
        finishBot((bubbles && bubbles.bot) || botBubble(msg.client_id), msg);
        showSuggestions(msg.suggestions);
        botReplies++;
        if (botReplies >= OFFER_AFTER && !store("offered") && !ratingForm.rated()) {
          store("offered", true);
          ratingForm.toggle(true, true);
          send({ type: "offer", kind: "rating" });
        }
        break;
      case "deleted":
        // Everything of this session is gone on the server: forget it here too; the socket
        // closes and the reconnect starts a new, empty session.
        ["token", "conversation", "outbox", "offered"].forEach(function (key) { store(key, null); });
        outbox = [];
        renderTranscript([], null);
        showStatus(T.deleted);
        break;
      case "thumb_saved":
        var node = log.querySelector('.msg.bot[data-message-id="' + msg.message_id + '"]');
        if (node) node.querySelectorAll(".thumb").forEach(function (b) {
          b.setAttribute("aria-pressed", b.getAttribute("data-value") === msg.value ? "true" : "false");
        });
        break;
      case "rating_saved":
        ratingForm.show({ rating: msg.rating, comment: msg.comment });
        ratingForm.toggle(false);
        showStatus(T.thanks);
        setTimeout(function () { if (statusLine.textContent === T.thanks) showStatus(""); }, 3000);
        break;
      case "error":
        // The rate limiter speaks English only; the widget says it in its own language.
        showStatus(msg.code === "rate_limited" && msg.retry_after ? T.slowDown.replace("{s}", msg.retry_after) : msg.message);
        // A message refused for speed, for overload, or while the server could not store it,
        // stays in the outbox and goes again once the wait is over.
        if (["rate_limited", "unavailable", "busy"].indexOf(msg.code) >= 0 && msg.client_id) {
          var waiting = outbox.filter(function (item) { return item.client_id === msg.client_id; })[0];
          if (waiting) setTimeout(function () {
            if (ws && ws.welcomed && outbox.indexOf(waiting) >= 0) {
              ws.send(JSON.stringify({ type: "message", client_id: waiting.client_id, text: waiting.text }));
            }
          }, 1000 * (msg.retry_after || 3));
        }
        break;
    }
  }

  // --- public hooks for story mode (widget-story.js) and for pages ------------------------------

  window.TandemWidget = {
    base: base, lang: LANG, timezone: TIMEZONE, T: T, el: el, markdown: markdown, plural: plural, store: store,
    addTab: addTab, showView: showView,
    token: function () { return store("token"); }, open: function () { setOpen(true); }, send: submit
  };

  function start() {
    document.body.appendChild(host);
    if (opts.open === "true" || store("open")) setOpen(true);
    showView("chat");
    connect();
    // Story mode lives in its own file, loaded only when the server offers it, after the SSE
    // reader it streams passages with (sse-reader.js, shared with the studio).
    if (opts.story !== "false") {
      var reader = document.createElement("script");
      reader.src = new URL("sse-reader.js", base).href;
      reader.onload = function () {
        var story = document.createElement("script");
        story.src = new URL("widget-story.js", base).href;
        document.head.appendChild(story);
      };
      document.head.appendChild(reader);
    }
  }
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();

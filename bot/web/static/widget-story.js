/* Tandem widget, story mode: a "Story" tab over the story HTTP API (/api/stories…).
 *
 * Passages show who wrote them (you, the model, the model edited by you) with a legend;
 * candidates stand side by side to pick from; retry, undo, redo, edit and branch; memory,
 * author's note and sampling settings in a side panel; export as Markdown, text or JSON.
 * Loaded by widget.js; all text goes in with textContent.
 */
(function () {
  "use strict";
  var W = window.TandemWidget;
  if (!W || W.story) return;
  var el = W.el;
  // Every language has the same keys (tests/test_shipped_texts.py checks).
  var TEXTS = {
    ru: {
      story: "История", newStory: "Новая история", title: "Название", start: "Начать", write: "Что дальше?…",
      add: "Добавить", cont: "Продолжить", retry: "Заново", undo: "Отменить", redo: "Вернуть", stop: "Стоп",
      pick: "Выбрать", candidate: "Вариант", edit: "Изменить", save: "Сохранить", cancel: "Отмена", branch: "Ветка отсюда",
      you: "ты", model: "модель", edited: "модель, изменено тобой", side: "Память, заметка автора, настройки",
      memory: "Память (всегда в начале подсказки)", note: "Заметка автора (направляет следующий отрывок)",
      export: "Скачать", empty: "Начни историю: напиши первый отрывок или нажми «Продолжить».",
      generating: "Модель пишет…", saved: "Сохранено", pick_story: "История",
      ready: ["вариант готов — выбери его", "варианта готовы — выбери один", "вариантов готово — выбери один"],
      candidates: "Варианты", legend: "Кто что написал", studio: "Открыть студию",
      settings: { candidates: "Вариантов за раз", max_new_tokens: "Длина отрывка (токенов)", temperature: "Температура",
                  top_p: "Top-p", repetition_penalty: "Штраф за повторы" }
    },
    en: {
      story: "Story", newStory: "New story", title: "Title", start: "Start", write: "What happens next?…",
      add: "Add", cont: "Continue", retry: "Retry", undo: "Undo", redo: "Redo", stop: "Stop",
      pick: "Pick", candidate: "Candidate", edit: "Edit", save: "Save", cancel: "Cancel", branch: "Branch here",
      you: "you", model: "model", edited: "model, edited by you", side: "Memory, author's note, settings",
      memory: "Memory (always at the top of the prompt)", note: "Author's note (steers the next passage)",
      export: "Download", empty: "Start the story: write a first passage, or press Continue and the model will.",
      generating: "The model is writing…", saved: "Saved", pick_story: "Story",
      ready: ["candidate ready — pick it", "candidates ready — pick one"],
      candidates: "Candidates", legend: "Who wrote what", studio: "Open the studio",
      settings: { candidates: "Candidates per turn", max_new_tokens: "Passage length (tokens)", temperature: "Temperature",
                  top_p: "Top-p", repetition_penalty: "Repetition penalty" }
    }
  };
  var T = TEXTS[W.lang] || TEXTS.en;
  var LABELS = { user: T.you, model: T.model, edited: T.edited };
  var SETTINGS = [["candidates", 1, 5, 1], ["max_new_tokens", 16, 1024, 1], ["temperature", 0, 2, 0.05],
                  ["top_p", 0.05, 1, 0.05], ["repetition_penalty", 1, 2, 0.05]];

  var state = { story: null, busy: false, abort: null };

  // --- HTTP ----------------------------------------------------------------------------------

  function api(method, path, body) {
    var headers = { "Authorization": "Bearer " + W.token(), "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(new URL("api/stories" + path, W.base).href, {
      method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (response) {
      if (response.status === 204) return {};
      return response.json().then(function (data) {
        if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
        return data;
      });
    });
  }

  /* POST with Accept: text/event-stream; calls onEvent(name, data) per SSE event. */
  function stream(path, body, onEvent) {
    state.abort = new AbortController();
    return fetch(new URL("api/stories" + path, W.base).href, {
      method: "POST", signal: state.abort.signal, body: JSON.stringify(body || {}),
      headers: { "Authorization": "Bearer " + W.token(), "Accept": "text/event-stream", "Content-Type": "application/json" }
    }).then(function (response) {
      if (!response.ok) return response.json().then(function (data) { throw new Error(data.error ? data.error.message : response.statusText); });
      return window.TandemSse.read(response, onEvent);
    });
  }

  // --- layout ---------------------------------------------------------------------------------

  var picker = el("select", { "aria-label": T.pick_story, onchange: function () { load(Number(picker.value)); } });
  var titleInput = el("input", { type: "text", placeholder: T.title, "aria-label": T.title, maxlength: "200" });
  var newForm = el("form", { class: "story-bar", onsubmit: function (e) { e.preventDefault(); create(); } },
                   [picker, titleInput, el("button", { type: "submit", class: "secondary", text: T.newStory })]);
  // The full-page writing studio shares this session (same origin, same stored token) and opens this story.
  var studioLink = el("a", { class: "studio-link", href: new URL("write", W.base).href, target: "_blank",
                             rel: "noopener", text: T.studio });
  newForm.appendChild(studioLink);
  var legend = el("div", { class: "legend", "aria-label": T.legend }, [
    el("span", { class: "user", text: T.you }), el("span", { class: "model", text: T.model }),
    el("span", { class: "edited", text: T.edited })
  ]);
  var passages = el("div", { class: "passages", role: "list" });
  var candidates = el("div", { class: "candidates", role: "group", "aria-label": T.candidates });
  var scroller = el("div", { class: "story-scroll" }, [passages, candidates]);
  var status = el("div", { class: "story-status", role: "status", "aria-live": "polite" });
  var text = el("textarea", { rows: "2", placeholder: T.write, "aria-label": T.write, maxlength: "4000" });
  function action(label, cls, fn) { return el("button", { type: "button", class: cls, text: label, onclick: fn }); }
  var buttons = {
    add: action(T.add, "secondary story-add", function () { run(api("POST", "/" + id() + "/passages", { text: text.value }), true); }),
    cont: action(T.cont, "send story-continue", function () { generate("/continue", text.value.trim() ? { text: text.value } : {}); }),
    retry: action(T.retry, "secondary story-retry", function () { generate("/retry", {}); }),
    undo: action(T.undo, "secondary story-undo", function () { run(api("POST", "/" + id() + "/undo")); }),
    redo: action(T.redo, "secondary story-redo", function () { run(api("POST", "/" + id() + "/redo")); }),
    stop: action(T.stop, "stop story-stop", function () { if (state.abort) state.abort.abort(); })
  };
  buttons.stop.hidden = true;
  var actions = el("div", { class: "story-actions" }, [text, buttons.add, buttons.cont, buttons.retry, buttons.undo,
                                                       buttons.redo, buttons.stop]);

  var memory = el("textarea", { id: "tandem-memory", rows: "2", maxlength: "4000" });
  var note = el("textarea", { id: "tandem-note", rows: "2", maxlength: "4000" });
  var inputs = {};
  var grid = el("div", { class: "row" });
  SETTINGS.forEach(function (s) {
    var input = el("input", { id: "tandem-set-" + s[0], type: "number", min: s[1], max: s[2], step: s[3] });
    inputs[s[0]] = input;
    grid.appendChild(el("div", {}, [el("label", { for: input.id, text: T.settings[s[0]] }), input]));
  });
  var exports = el("div", { class: "buttons" }, ["md", "txt", "json"].map(function (fmt) {
    return action(T.export + " ." + fmt, "secondary story-export-" + fmt, function () { download(fmt); });
  }));
  var side = el("details", { class: "side" }, [
    el("summary", { text: T.side }),
    el("label", { for: memory.id, text: T.memory }), memory,
    el("label", { for: note.id, text: T.note }), note, grid,
    el("div", { class: "buttons" }, [action(T.save, "send story-save", saveSide)]), exports
  ]);
  var view = el("section", { class: "view story-view", hidden: true }, [newForm, legend, scroller, status, actions, side]);
  view.onshow = function () { if (!state.loaded) refreshList(); };
  W.addTab("story", T.story, view);

  function id() { return state.story && state.story.id; }

  function setBusy(busy) {
    state.busy = busy;
    Object.keys(buttons).forEach(function (k) { buttons[k].disabled = busy && k !== "stop"; });
    buttons.stop.hidden = !busy;
    if (!busy && state.story) {
      buttons.undo.disabled = !state.story.can_undo;
      buttons.redo.disabled = !state.story.can_redo;
      buttons.retry.disabled = !state.story.passages.length && !state.story.candidates.length;
    }
    if (!state.story) Object.keys(buttons).forEach(function (k) { buttons[k].disabled = true; });
  }

  function say(message) { status.textContent = message || ""; }

  // --- rendering ----------------------------------------------------------------------------

  function render(story) {
    state.story = story;
    W.store("story", story.id);
    studioLink.href = new URL("write?story=" + story.id, W.base).href;
    passages.textContent = "";
    if (!story.passages.length) passages.appendChild(el("p", { class: "empty", text: T.empty }));
    story.passages.forEach(function (p) { passages.appendChild(passage(p)); });
    candidates.textContent = "";
    story.candidates.forEach(function (c, i) { candidates.appendChild(candidate(c, i + 1)); });
    memory.value = story.memory || "";
    note.value = story.author_note || "";
    Object.keys(inputs).forEach(function (k) { inputs[k].value = story.settings[k]; });
    setBusy(false);
    scroller.scrollTop = scroller.scrollHeight;
  }

  function passage(p) {
    var tools = el("div", { class: "tools" }, [
      el("button", { type: "button", class: "edit", text: T.edit, "aria-label": T.edit + " #" + p.number,
                     onclick: function () { editInline(node, p); } }),
      el("button", { type: "button", class: "branch", text: T.branch, "aria-label": T.branch + " #" + p.number,
                     onclick: function () { run(api("POST", "/" + id() + "/branch", { passage_id: p.id })); } })
    ]);
    var node = el("div", { class: "passage " + p.author + (p.status === "incomplete" ? " incomplete" : ""),
                           role: "listitem", "data-passage-id": p.id, "data-author": p.author }, [
      el("span", { class: "who", text: LABELS[p.author] || p.author }), el("span", { class: "body", text: p.text }), tools
    ]);
    return node;
  }

  function editInline(node, p) {
    var area = el("textarea", { rows: "4", "aria-label": T.edit, maxlength: "4000" });
    area.value = p.text;
    var form = el("form", { class: "edit-form", onsubmit: function (e) {
      e.preventDefault();
      run(api("POST", "/" + id() + "/edit", { passage_id: p.id, text: area.value }));
    } }, [area, el("div", { class: "buttons" }, [
      el("button", { type: "submit", class: "send", text: T.save }),
      el("button", { type: "button", class: "secondary", text: T.cancel, onclick: function () { render(state.story); } })
    ])]);
    node.replaceChild(form, node.querySelector(".body"));
    area.focus();
  }

  function candidate(c, number) {
    var body = el("div", { class: "body", text: c ? c.text : "" });
    var pick = el("button", { type: "button", class: "send pick", text: T.pick, disabled: !c,
                              "aria-label": T.pick + " " + T.candidate.toLowerCase() + " " + number,
                              onclick: function () { run(api("POST", "/" + id() + "/choose", { passage_id: Number(card.getAttribute("data-passage-id")) })); } });
    var card = el("article", { class: "candidate", "data-candidate": number, "data-passage-id": c ? c.id : null },
                  [el("h3", { text: T.candidate + " " + number }), body, pick]);
    return card;
  }

  // --- actions -------------------------------------------------------------------------------

  function fail(error) {
    setBusy(false);
    say(error && error.name === "AbortError" ? "" : (error && error.message) || String(error));
  }

  function run(promise, clear) {
    setBusy(true);
    return promise.then(function (data) {
      if (clear) text.value = "";
      if (data.story) render(data.story);
      say("");
    }).catch(function (error) {
      fail(error);
      if (id()) load(id()); // the server's view is the truth after a failed action
    });
  }

  function generate(path, body) {
    if (!id()) return;
    setBusy(true);
    say(T.generating);
    candidates.textContent = "";
    var cards = {};
    var sent = body.text;
    stream("/" + id() + path, body, function (name, data) {
      if (name === "delta") {
        if (!cards[data.candidate]) { cards[data.candidate] = candidate(null, data.candidate); candidates.appendChild(cards[data.candidate]); }
        var shown = cards[data.candidate].querySelector(".body");
        if (data.reset) shown.textContent = ""; // the candidate is written again: what was shown goes
        shown.appendChild(document.createTextNode(data.text));
        scroller.scrollTop = scroller.scrollHeight;
      } else if (name === "candidate" && data.passage && cards[data.candidate]) {
        cards[data.candidate].setAttribute("data-passage-id", data.passage.id);
        cards[data.candidate].querySelector(".pick").disabled = false;
      } else if (name === "done") {
        if (sent) text.value = "";
        render(data.story);
        say(data.errors.length ? data.errors.join(" ") : data.story.candidates.length
            ? data.story.candidates.length + " " + W.plural(data.story.candidates.length, T.ready) : "");
      }
    }).catch(function (error) {
      fail(error);
      load(id());
    });
  }

  function create() {
    var body = { language: W.lang };
    if (titleInput.value.trim()) body.title = titleInput.value.trim();
    api("POST", "", body).then(function (data) {
      titleInput.value = "";
      render(data.story);
      return refreshList(data.story.id);
    }).catch(fail);
  }

  function load(storyId) {
    return api("GET", "/" + storyId).then(function (data) { render(data.story); }).catch(fail);
  }

  function refreshList(selected) {
    state.loaded = true;
    return api("GET", "").then(function (data) {
      picker.textContent = "";
      data.stories.forEach(function (s) { picker.appendChild(el("option", { value: s.id, text: s.title })); });
      picker.hidden = !data.stories.length;
      var wanted = selected || W.store("story");
      var found = data.stories.filter(function (s) { return s.id === wanted; })[0] || data.stories[0];
      if (found) { picker.value = String(found.id); if (!selected) return load(found.id); }
      else setBusy(false);
    }).catch(fail);
  }

  function saveSide() {
    if (!id()) return;
    var changes = {};
    Object.keys(inputs).forEach(function (k) {
      var value = Number(inputs[k].value);
      if (inputs[k].value !== "" && value !== state.story.settings[k]) changes[k] = value;
    });
    setBusy(true);
    api("PATCH", "/" + id(), { memory: memory.value, author_note: note.value }).then(function () {
      return Object.keys(changes).length ? api("PATCH", "/" + id() + "/settings", changes) : null;
    }).then(function () { return load(id()); }).then(function () { say(T.saved); }).catch(fail);
  }

  function download(fmt) {
    fetch(new URL("api/stories/" + id() + "/export?format=" + fmt, W.base).href, {
      headers: { "Authorization": "Bearer " + W.token() }
    }).then(function (response) {
      if (!response.ok) throw new Error(response.statusText);
      var disposition = response.headers.get("Content-Disposition") || "";
      var match = /filename="([^"]+)"/.exec(disposition);
      return response.blob().then(function (blob) {
        var a = el("a", { href: URL.createObjectURL(blob), download: match ? match[1] : "story." + fmt });
        document.body.appendChild(a);
        a.click();
        setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
      });
    }).catch(fail);
  }

  setBusy(false);
  W.story = { render: render, load: load };
})();

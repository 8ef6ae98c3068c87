/* TandemSse.read(response, onEvent): the one reader of Tandem's Server-Sent Events in the browser
   (the widget's story mode and the studio), for a fetch() response, since EventSource cannot POST.
   Calls onEvent(name, data) per event, data parsed from JSON; comment lines (the server's
   keep-alive heartbeat) and events without data are skipped. Resolves when the stream ends. */
(function () {
  "use strict";
  if (window.TandemSse) return;

  function dispatch(part, onEvent) {
    var name = "message", data = "";
    part.split("\n").forEach(function (line) {
      if (line.indexOf("event: ") === 0) name = line.slice(7);
      else if (line.indexOf("data: ") === 0) data += line.slice(6);
    });
    if (data) onEvent(name, JSON.parse(data));
  }

  function read(response, onEvent) {
    var reader = response.body.getReader(), decoder = new TextDecoder(), buffer = "";
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) return;
        buffer += decoder.decode(chunk.value, { stream: true });
        var parts = buffer.split("\n\n");
        buffer = parts.pop();
        parts.forEach(function (part) { dispatch(part, onEvent); });
        return pump();
      });
    }
    return pump();
  }

  window.TandemSse = { read: read };
})();

#!/usr/bin/env bash
# Requests through nginx to a deployed Tandem (docs/deploy.md): health from each worker, the help
# message, a story passage over SSE, a WebSocket hello and message, and the shared rate limit.
# Usage: docs/deploy/smoke.sh [http://127.0.0.1]   (needs curl and Tandem's .venv)
set -euo pipefail
base="${1:-http://127.0.0.1}"
py="$(dirname "$0")/../../.venv/bin/python"
field() { "$py" -c "import json,sys; d=json.load(sys.stdin); print(eval('d' + sys.argv[1]))" "$1"; }

echo "== /healthz x10: which workers answered"
for _ in $(seq 10); do curl -sf "$base/healthz" | field '["pid"]'; done | sort | uniq -c

echo "== a conversation: help"
opened="$(curl -sf -X POST "$base/api/conversations" -H 'Content-Type: application/json' -d '{}')"
conversation="$(field '["conversation_id"]' <<<"$opened")"
token="$(field '["token"]' <<<"$opened")"
curl -sf -X POST "$base/api/conversations/$conversation/messages" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d '{"text": "help"}' | field '["text"]'

echo "== a story passage over SSE (seconds since the request, event)"
story="$(curl -sf -X POST "$base/api/stories" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"title": "The lighthouse", "premise": "A lighthouse keeper finds a map in a bottle."}' | field '["story"]["id"]')"
start="$(date +%s.%N)"
curl -sfN -X POST "$base/api/stories/$story/continue" -H "Authorization: Bearer $token" \
  -H 'Accept: text/event-stream' -H 'Content-Type: application/json' -d '{"candidates": 1}' |
  while IFS= read -r line; do
    case "$line" in
      "event: "*) printf '%6.2f s  %s\n' "$(echo "$(date +%s.%N) - $start" | bc)" "${line#event: }" ;;
    esac
  done
curl -sf "$base/api/stories/$story" -H "Authorization: Bearer $token" | field '["story"]["passages"][-1]["text"]'

echo "== WebSocket: hello, then a message"
"$py" - "$base" <<'PY'
import asyncio, sys
import aiohttp

async def main(base: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(base.replace("http", "ws", 1) + "/ws", origin=base) as ws:
            await ws.send_json({"type": "hello", "language": "en"})
            welcome = await ws.receive_json(timeout=10)
            print(welcome["type"], "conversation", welcome["conversation_id"], "resumed", welcome["resumed"])
            await ws.send_json({"type": "message", "client_id": "smoke-1", "text": "hi"})
            while True:
                frame = await ws.receive_json(timeout=60)
                print(frame["type"], frame.get("text", "")[:100])
                if frame["type"] in ("reply", "error"):
                    return

asyncio.run(main(sys.argv[1]))
PY

echo "== 150 requests to /api at once after a quiet 13 s: the per-address burst is 120 over all workers"
sleep 13
for _ in $(seq 150); do curl -s -o /dev/null -w '%{http_code}\n' "$base/api/conversations"; done | sort | uniq -c

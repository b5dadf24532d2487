"""Alertmanager webhook receiver for the bundled stack.

Prints one JSON line per alert in each notification (so `docker compose logs
webhook` and Loki show when each alert fired and resolved) and keeps the most
recent notifications in memory, listed newest first at GET /.

Also stands in for Slack: POST /slack/<receiver> takes the Slack-shaped
message Alertmanager rendered with ../alertmanager/templates/slack.tmpl,
prints its title and text as a JSON line, and lists the latest at GET /slack
(newest first) -- what on-call would read.

Standard library only; it stores nothing on disk and forwards nothing.
"""

import collections
import json
import os
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEEP = int(os.environ.get("WEBHOOK_KEEP", "200"))
MAX_BODY = 1 << 20

_recent = collections.deque(maxlen=KEEP)
_slack = collections.deque(maxlen=KEEP)
_lock = threading.Lock()


def _log(record):
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    server_version = "alert-webhook/1"

    def _reply(self, status, body):
        data = json.dumps(body, indent=2).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/healthz":
            self._reply(200, {"status": "ok"})
        elif self.path == "/slack":
            with _lock:
                items = list(reversed(_slack))
            self._reply(200, items)
        elif self.path in ("/", "/alerts"):
            with _lock:
                items = list(reversed(_recent))
            self._reply(200, items)
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            self._reply(400, {"error": "body missing or too large"})
            return
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError:
            self._reply(400, {"error": "body is not JSON"})
            return
        received = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        if self.path.startswith("/slack/"):
            self._take_slack(self.path[len("/slack/"):], payload, received)
            return
        with _lock:
            _recent.append({"received": received, "notification": payload})
        for alert in payload.get("alerts", []):
            labels = alert.get("labels", {})
            _log(
                {
                    "timestamp": received,
                    "level": "warn" if alert.get("status") == "firing" else "info",
                    "message": f"alert {labels.get('alertname', '?')} {alert.get('status', '?')}",
                    "alertname": labels.get("alertname"),
                    "status": alert.get("status"),
                    "job": labels.get("job"),
                    "severity": labels.get("severity"),
                    "starts_at": alert.get("startsAt"),
                    "ends_at": alert.get("endsAt"),
                    "summary": alert.get("annotations", {}).get("summary"),
                    "group_key": payload.get("groupKey"),
                }
            )
        self._reply(200, {"status": "received"})

    def _take_slack(self, receiver, payload, received):
        if not isinstance(payload, dict):
            self._reply(400, {"error": "not a Slack message"})
            return
        attachments = payload.get("attachments") or [{}]
        first = attachments[0] if isinstance(attachments[0], dict) else {}
        message = {
            "received": received,
            "receiver": receiver,
            "channel": payload.get("channel"),
            "title": first.get("title"),
            "title_link": first.get("title_link"),
            "text": first.get("text") or payload.get("text"),
        }
        with _lock:
            _slack.append(message)
        _log(
            {
                "timestamp": received,
                "level": "info",
                "message": f"slack {receiver} {message['channel']}: {message['title']}",
                "receiver": receiver,
                "channel": message["channel"],
                "title": message["title"],
                "text": message["text"],
            }
        )
        self._reply(200, {"ok": True})

    def log_message(self, fmt, *args):
        # Access logs would drown the alert lines; health checks run every few seconds.
        pass


def main():
    addr = os.environ.get("WEBHOOK_LISTEN", "0.0.0.0")
    port = int(os.environ.get("WEBHOOK_PORT", "8088"))
    server = ThreadingHTTPServer((addr, port), Handler)
    _log({"level": "info", "message": f"listening on {addr}:{port}"})
    server.serve_forever()


if __name__ == "__main__":
    main()

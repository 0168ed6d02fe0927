"""Dev Slack/webhook sink for ./run.sh: records every POST body and prints its text.

Usage: python3 slack_sink.py PORT LOGFILE
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        with open(sys.argv[2], "ab") as log:
            log.write(body + b"\n")
        try:
            text = json.loads(body).get("text", body.decode(errors="replace"))
        except ValueError:
            text = body.decode(errors="replace")
        print(f"{self.path}: {text}", flush=True)
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()

"""A small web app for tinykube's examples, standard library only.

GET /         one line: the app's version (env VERSION) and the pod's name
              (env HOSTNAME, which the container runtime sets)
GET /healthz  200 "ok", for the readiness probe

Listens on 0.0.0.0, port 8080 (env PORT). Exits on SIGTERM, so a pod stops
at once instead of waiting out its grace period.
"""

import os
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("VERSION", "unknown")
POD = os.environ.get("HOSTNAME") or socket.gethostname()
PORT = int(os.environ.get("PORT", "8080"))


class Handler(BaseHTTPRequestHandler):
    server_version = "python-app/" + VERSION

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/":
            self.reply(200, f"python-app version {VERSION} on pod {POD}\n")
        elif path == "/healthz":
            self.reply(200, "ok\n")
        else:
            self.reply(404, "not found\n")

    def reply(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        # The readiness probe asks every few seconds: keep it out of the logs.
        if not self.path.startswith("/healthz"):
            sys.stdout.write(f"{self.address_string()} {format % args}\n")
            sys.stdout.flush()


def main():
    # As PID 1 in a container, a signal with no handler is ignored.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    print(f"python-app version {VERSION} listening on :{PORT}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

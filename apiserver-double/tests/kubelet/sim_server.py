#!/usr/bin/env python3
"""The "image" of the kubelet simulator's tests: a small HTTP server.

Usage: sim_server.py --config PATH

The config file (JSON, from a configMap mount) names `listen` (host:port), `peer`
(host:port of another instance, may be empty) and `data` (a directory, the PVC mount).
It answers:

  /healthz  200
  /readyz   200, or 503 while `<data>/unready` exists
  /whoami   the POD_NAME environment variable
  /peer     GET /whoami of `peer`, relayed
  /config   JSON: the config file as read, argv, and the environment

On start it appends a line to `<data>/starts`. On SIGTERM it writes `<data>/sigterm`
and exits, unless IGNORE_SIGTERM is set, in which case it only writes the marker.
"""

import http.client
import http.server
import json
import os
import signal
import sys
import threading

args = sys.argv[1:]
config_path = args[args.index("--config") + 1]
with open(config_path) as f:
    raw_config = f.read()
config = json.loads(raw_config)
data = config["data"]
host, port = config["listen"].rsplit(":", 1)

os.makedirs(data, exist_ok=True)
with open(os.path.join(data, "starts"), "a") as f:
    f.write(f"{os.getpid()}\n")


def on_sigterm(signum, frame):
    with open(os.path.join(data, "sigterm"), "w") as f:
        f.write(f"{os.getpid()}\n")
    if not os.environ.get("IGNORE_SIGTERM"):
        os._exit(0)


signal.signal(signal.SIGTERM, on_sigterm)


class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, code, body):
        payload = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        if self.path == "/healthz":
            self.reply(200, "ok")
        elif self.path == "/readyz":
            unready = os.path.exists(os.path.join(data, "unready"))
            self.reply(503 if unready else 200, "unready" if unready else "ok")
        elif self.path == "/whoami":
            self.reply(200, os.environ.get("POD_NAME", ""))
        elif self.path == "/peer":
            try:
                peer_host, peer_port = config["peer"].rsplit(":", 1)
                conn = http.client.HTTPConnection(peer_host, int(peer_port), timeout=2)
                conn.request("GET", "/whoami")
                self.reply(200, conn.getresponse().read().decode())
            except Exception as e:  # the test reads the reason
                self.reply(502, f"peer {config['peer']}: {e}")
        elif self.path == "/config":
            self.reply(200, json.dumps({"config": raw_config, "argv": sys.argv, "env": dict(os.environ)}))
        else:
            self.reply(404, "no such path")

    def log_message(self, format, *args):
        sys.stderr.write("%s\n" % (format % args))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


server = Server((host, int(port)), Handler)
print(f"listening on {host}:{port}", flush=True)
server.serve_forever()

#!/usr/bin/env python3
"""An OTLP/HTTP receiver that accepts and discards trace exports, for
benchmarks with tracing on (no Collector needed on this machine).

    scripts/otlp-sink.py PORT [SECONDS]

Answers every POST /v1/traces with 200 and an empty protobuf body; stops
after SECONDS (default 3600) and prints how many exports and bytes it took.
"""
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port = int(sys.argv[1])
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3600.0
taken = {"exports": 0, "bytes": 0}
lock = threading.Lock()


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        with lock:
            taken["exports"] += 1
            taken["bytes"] += length
        self.send_response(200 if self.path == "/v1/traces" else 404)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", port), Sink)
timer = threading.Timer(seconds, server.shutdown)
timer.daemon = True
timer.start()
# SIGTERM (and SIGINT, ignored by background jobs otherwise) stop it cleanly.
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda *_: threading.Thread(target=server.shutdown).start())
try:
    server.serve_forever()
finally:
    print(f"otlp-sink: {taken['exports']} exports, {taken['bytes']} bytes", file=sys.stderr)

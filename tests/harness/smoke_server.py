#!/usr/bin/env python3
"""A small real HTTP server for the smoke check tests. Prints its port on the first line of
stdout, then serves until killed. Each request says how to answer in its query string:
  status=N      the status (default 200)          body=TEXT   the body (default "ok")
  delay=SECONDS wait before answering             pad=BYTES   that many 'x' before the body
  key=K&fail=N  the first N requests with key K answer fail_status (default 503)
  redirect=URL  answer 302 with that Location
Options: --late SECONDS  reserve the port, print it, but only listen after SECONDS
                         (a deployment that comes up late: connections are refused until then)
         --tls CERT KEY  serve https with that certificate
"""
import argparse
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

counts = {}
counts_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: the test reads stdout for the port only
        pass

    def do_GET(self):
        q = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
        status = int(q.get("status", "200"))
        if "fail" in q:
            key = q.get("key", "")
            with counts_lock:
                counts[key] = counts.get(key, 0) + 1
                seen = counts[key]
            if seen <= int(q["fail"]):
                status = int(q.get("fail_status", "503"))
        time.sleep(float(q.get("delay", "0")))
        body = b"x" * int(q.get("pad", "0")) + q.get("body", "ok").encode()
        self.send_response(status)
        if "redirect" in q:
            self.send_header("Location", q["redirect"])
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading (the smoke body cap): expected


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--late", type=float, default=0)
    ap.add_argument("--tls", nargs=2)
    args = ap.parse_args()
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    if args.late:
        probe.close()
        print(port, flush=True)
        time.sleep(args.late)
    else:
        probe.close()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls[0], args.tls[1])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    if not args.late:
        print(port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())

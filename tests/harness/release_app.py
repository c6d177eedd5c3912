#!/usr/bin/env python3
"""A stand-in application for release tests: answers every GET with the status written in the
state file (200 when it is missing or unreadable) and body "ok <status>". Prints its port."""
import http.server
import os
import sys

STATE = sys.argv[1]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            with open(STATE) as f:
                status = int(f.read().strip() or "200")
        except (OSError, ValueError):
            status = 200
        body = ("ok %d\n" % status).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
sys.stdout.close()
os.close(1)
server.serve_forever()

#!/usr/bin/env python3
"""A plain TCP forwarder (no pooling): tcp_proxy.py TARGET_PORT PORT_FILE.
Listens on a free loopback port, writes it into PORT_FILE, and copies bytes both ways to
127.0.0.1:TARGET_PORT, one upstream connection per client, as HAProxy or an SSH tunnel would.
The pooler tests use it to prove a proxy is not mistaken for a pooler."""
import socket
import sys
import threading


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    target = int(sys.argv[1])
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    with open(sys.argv[2], "w") as f:
        f.write(str(server.getsockname()[1]))
    while True:
        client, _ = server.accept()
        upstream = socket.create_connection(("127.0.0.1", target))
        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for the s3 tests: sits on loopback between deployctl and the S3
server and misbehaves on purpose. Python 3 standard library only; exits by itself after
--lifetime seconds.

  fault_proxy.py --upstream PORT --port-file FILE --log FILE [faults...]

Faults (request numbers count from 1, over all connections):
  --refuse-for S         refuse connections (nothing listens) for the first S seconds
  --fail500 K            answer every K-th request with 500 InternalError, not forwarded
  --reset-body K         every K-th request with a body over 1 MiB: read half of it, then
                         reset the connection; every K-th GET answer over 1 MiB: relay half
                         of it, then reset
  --stall K              every K-th request: answer nothing for --stall-seconds, then close
  --fail-parts-from N    every UploadPart of part number >= N gets 500 (an upload that fails
                         for good)
  --verify-sigv4         recompute each request's AWS SigV4 signature (secret from the
                         environment variable DC_PROXY_SECRET) and answer 403
                         SignatureDoesNotMatch when it differs; also checks the payload hash
Every request is logged as one line: "<n> <METHOD> <path?query> <status|fault>".
"""
import argparse
import hashlib
import hmac
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse

lock = threading.Lock()
counter = {"n": 0}
args = None
log_file = None


def log(line):
    with lock:
        log_file.write(line + "\n")
        log_file.flush()


def next_number():
    with lock:
        counter["n"] += 1
        return counter["n"]


def recv_head(sock, buf):
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None, buf
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


def recv_exact(sock, n, buf):
    while len(buf) < n:
        data = sock.recv(min(1 << 20, n - len(buf)))
        if not data:
            return None
        buf += data
    return buf


def reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def error_response(status, reason, code, message):
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>'
        % (code, message)
    ).encode()
    return (
        "HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
        "Connection: close\r\n\r\n" % (status, reason, len(body))
    ).encode() + body


def uri_encode(s, keep_slash):
    return urllib.parse.quote(s, safe="-_.~" + ("/" if keep_slash else ""))


def sigv4_problem(method, target, headers, body, secret):
    """None when the signature is right, else what is wrong."""
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no SigV4 Authorization header"
    fields = dict(
        part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(",")
    )
    cred = fields["Credential"].split("/")
    signed = fields["SignedHeaders"].split(";")
    for must in ("host", "x-amz-date", "x-amz-content-sha256"):
        if must not in signed:
            return "header %s is not signed" % must
    payload = headers.get("x-amz-content-sha256", "")
    if payload != "UNSIGNED-PAYLOAD" and payload != hashlib.sha256(body).hexdigest():
        return "x-amz-content-sha256 is not the SHA-256 of the body"
    path, _, query = target.partition("?")
    canonical_uri = uri_encode(urllib.parse.unquote(path), True)
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    canonical_query = "&".join(
        "%s=%s" % (uri_encode(k, False), uri_encode(v, False))
        for k, v in sorted((k, v) for k, v in pairs)
    )
    canonical_headers = "".join(
        "%s:%s\n" % (h, " ".join(headers.get(h, "").split())) for h in signed
    )
    canonical = "\n".join(
        [method, canonical_uri, canonical_query, canonical_headers, ";".join(signed), payload]
    )
    date, region, service = cred[1], cred[2], cred[3]
    scope = "/".join(cred[1:])
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            headers["x-amz-date"],
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if expected != fields["Signature"]:
        return "signature differs (canonical request: %r)" % canonical
    return None


def handle(client):
    buf = b""
    try:
        while True:
            head, buf = recv_head(client, buf)
            if head is None:
                break
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0") or 0)
            n = next_number()
            what = "%d %s %s" % (n, method, target)

            if args.reset_body and length > (1 << 20) and n % args.reset_body == 0:
                recv_exact(client, length // 2, buf)
                log(what + " reset-mid-request")
                reset(client)
                return
            body = recv_exact(client, length, buf)
            if body is None:
                break
            buf = body[length:]
            body = body[:length]

            if args.stall and n % args.stall == 0:
                log(what + " stall")
                time.sleep(args.stall_seconds)
                client.close()
                return
            if args.fail500 and n % args.fail500 == 0:
                log(what + " 500")
                client.sendall(error_response(500, "Internal Server Error", "InternalError",
                                              "injected"))
                client.close()
                return
            if args.fail_parts_from and method == "PUT" and "partNumber=" in target:
                q = urllib.parse.parse_qs(target.partition("?")[2])
                if int(q["partNumber"][0]) >= args.fail_parts_from:
                    log(what + " 500")
                    client.sendall(error_response(500, "Internal Server Error", "InternalError",
                                                  "injected"))
                    client.close()
                    return
            if args.verify_sigv4:
                problem = sigv4_problem(method, target, headers, body,
                                        os.environ["DC_PROXY_SECRET"])
                if problem is not None:
                    log(what + " 403 " + problem)
                    client.sendall(error_response(403, "Forbidden", "SignatureDoesNotMatch",
                                                  "proxy: " + problem.replace("<", "&lt;")))
                    client.close()
                    return

            # Forward on a fresh upstream connection that closes after the answer.
            up = socket.create_connection(("127.0.0.1", args.upstream))
            out_lines = [lines[0]] + [
                l for l in lines[1:] if not l.lower().startswith("connection:")
            ] + ["Connection: close"]
            up.sendall(("\r\n".join(out_lines) + "\r\n\r\n").encode("latin-1") + body)
            answer = b""
            while True:
                data = up.recv(1 << 20)
                if not data:
                    break
                answer += data
            up.close()
            status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "?"
            if (args.reset_body and method == "GET" and len(answer) > (1 << 20)
                    and n % args.reset_body == 0):
                client.sendall(answer[: len(answer) // 2])
                log(what + " reset-mid-answer")
                reset(client)
                return
            log("%s %s" % (what, status))
            client.sendall(answer)
            if b"\r\nconnection: close" in answer.split(b"\r\n\r\n", 1)[0].lower():
                break
    except (OSError, ValueError, KeyError, IndexError) as e:
        log("connection error: %r" % (e,))
    finally:
        try:
            client.close()
        except OSError:
            pass


def main():
    global args, log_file
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", type=int, required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--refuse-for", type=float, default=0)
    p.add_argument("--fail500", type=int, default=0)
    p.add_argument("--reset-body", type=int, default=0)
    p.add_argument("--stall", type=int, default=0)
    p.add_argument("--stall-seconds", type=float, default=5)
    p.add_argument("--fail-parts-from", type=int, default=0)
    p.add_argument("--verify-sigv4", action="store_true")
    p.add_argument("--lifetime", type=float, default=600)
    args = p.parse_args()
    log_file = open(args.log, "a")
    threading.Timer(args.lifetime, lambda: os._exit(0)).start()

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(args.port_file + ".tmp", args.port_file)
    if args.refuse_for > 0:
        # Bound but not listening: connections are refused (ECONNREFUSED) for a while.
        log("refusing for %.1f s" % args.refuse_for)
        time.sleep(args.refuse_for)
    srv.listen(64)
    while True:
        client, _ = srv.accept()
        threading.Thread(target=handle, args=(client,), daemon=True).start()


if __name__ == "__main__":
    main()

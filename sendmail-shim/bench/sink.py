#!/usr/bin/env python3
"""A minimal SMTP sink for the benchmark: accepts everything at once, keeps nothing.

usage: sink.py PORT_FILE   (binds 127.0.0.1:0, writes the port to PORT_FILE, serves forever)
It answers each command as soon as its line is complete (no delays of its own), so the time a
client takes against it is the client's own: exec, its writes (Nagle!), its QUIT handling.
"""
import socket
import socketserver
import sys


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        w = self.request.sendall
        w(b"220 sink ESMTP\r\n")
        rfile = self.rfile
        while True:
            line = rfile.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"EHLO":
                w(b"250-sink\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n")
            elif verb == b"DATA":
                w(b"354 go\r\n")
                while True:
                    l = rfile.readline()
                    if not l or l == b".\r\n":
                        break
                w(b"250 OK\r\n")
            elif verb == b"QUIT":
                w(b"221 bye\r\n")
                return
            else:
                w(b"250 OK\r\n")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    srv = Server(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as f:
        f.write(str(srv.server_address[1]))
    srv.serve_forever()

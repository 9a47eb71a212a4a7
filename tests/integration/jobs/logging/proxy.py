"""A TCP proxy to PostgreSQL on loopback that can lose the reply to a committed write.

Armed, it lets the server run the Nth INSERT or COPY (counted by the server's CommandComplete)
and commit it, then closes the client's connection instead of forwarding that CommandComplete
and the ReadyForQuery after it: the write is committed, the client only sees a dead
connection. Each cut disarms it, so the client's retry goes through.
"""

from __future__ import annotations

import contextlib
import socket
import threading

WRITE_TAGS = (b"INSERT", b"COPY")


class CommitReplyDropper:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.cuts = 0
        self._cut_after: int | None = None  # writes to let through before the cut
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, after_writes: int = 1) -> None:
        """Lose the reply to the `after_writes`-th write from now (counted over connections)."""
        with self._lock:
            self._cut_after = after_writes

    def close(self) -> None:
        self._listener.close()
        for sock in list(self._sockets):
            _close(sock)

    # -- plumbing --------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._sockets += [client, server]
            threading.Thread(target=self._pump_raw, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump_replies, args=(server, client), daemon=True).start()

    def _pump_raw(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        _close(source, sink)

    def _pump_replies(self, server: socket.socket, client: socket.socket) -> None:
        """Forward the server's messages one by one (type byte, int32 length, body)."""
        buffer, cutting = b"", False
        try:
            while data := server.recv(65536):
                buffer += data
                while len(buffer) >= 5 and len(buffer) >= 1 + int.from_bytes(buffer[1:5]):
                    size = 1 + int.from_bytes(buffer[1:5])
                    message, buffer = buffer[:size], buffer[size:]
                    cutting = cutting or self._is_the_write_to_cut(message)
                    if cutting and message[:1] == b"Z":  # committed: drop the connection
                        _close(server, client)
                        return
                    if not cutting:
                        client.sendall(message)
        except OSError:
            pass
        _close(server, client)

    def _is_the_write_to_cut(self, message: bytes) -> bool:
        if message[:1] != b"C" or not message[5:].startswith(WRITE_TAGS):
            return False
        with self._lock:
            if self._cut_after is None:
                return False
            self._cut_after -= 1
            if self._cut_after > 0:
                return False
            self._cut_after = None
            self.cuts += 1
            return True


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

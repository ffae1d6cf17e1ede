"""Real network faults for the coordination tests (no tests here): a loopback TCP proxy that can be
cut and restored, and a thread that kills every server connection to a database on a period.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit


class Proxy:
    """Forwards ``127.0.0.1:<port>`` to a server; :meth:`down` drops every connection and refuses
    new ones until :meth:`up`. Loopback only.

    Example:
        >>> with Proxy("127.0.0.1", 5432) as proxy:
        ...     url = proxy.url("postgresql://postgres@127.0.0.1:5432/db")
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.is_up = threading.Event()
        self.is_up.set()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def url(self, server_url: str) -> str:
        """``server_url`` rewritten to go through the proxy."""
        parts = urlsplit(server_url)
        auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit((parts.scheme, f"{auth}127.0.0.1:{self.port}", parts.path, parts.query, ""))

    def down(self) -> None:
        self.is_up.clear()
        self._drop_all()

    def up(self) -> None:
        self.is_up.set()

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self._drop_all()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drop_all(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.is_up.is_set():
                client.close()  # refused: the server is "unreachable"
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True, name="proxy-pump").start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()


@contextlib.contextmanager
def connection_killer(url: str, every: float) -> Iterator[list[int]]:
    """Kill every server connection to ``url``'s database (but the killer's own) every ``every``
    seconds, with MariaDB's ``KILL`` or PostgreSQL's ``pg_terminate_backend``; yields the list of
    kill counts per round."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if parts.scheme.startswith("mysql"):
        import pymysql

        conn = pymysql.connect(
            host=parts.hostname, port=parts.port or 3306, user=parts.username or "root", autocommit=True
        )

        def victims(cur) -> list:
            cur.execute(
                "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
                (name,),
            )
            return [r[0] for r in cur.fetchall()]

        def kill(cur, victim) -> None:
            with contextlib.suppress(pymysql.err.OperationalError, pymysql.err.InternalError):
                cur.execute(f"KILL {int(victim)}")
    else:
        import psycopg2

        conn = psycopg2.connect(
            host=parts.hostname, port=parts.port or 5432, user=parts.username or "postgres", dbname="postgres"
        )
        conn.autocommit = True

        def victims(cur) -> list:
            cur.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,)
            )
            return [r[0] for r in cur.fetchall()]

        def kill(cur, victim) -> None:
            cur.execute("SELECT pg_terminate_backend(%s)", (victim,))

    rounds: list[int] = []
    stop = threading.Event()

    def loop() -> None:
        with conn.cursor() as cur:
            while not stop.wait(every):
                found = victims(cur)
                for victim in found:
                    kill(cur, victim)
                rounds.append(len(found))

    thread = threading.Thread(target=loop, daemon=True, name="connection-killer")
    thread.start()
    try:
        yield rounds
    finally:
        stop.set()
        thread.join(10)
        conn.close()

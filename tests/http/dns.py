"""A loopback DNS server for the resolver's tests: each name answers at once, late, or never.

`DnsServer({"fast.test": Name(("127.0.0.1",))})` serves UDP on 127.0.0.1 with a port picked
by the OS; point `prober.http.Resolver(nameservers=[server.nameserver])` at it. One
thread reads queries (parsed and answered with dnslib) and sends each answer when its name's
`delay` has passed (`delay=None`: never), so a slow name holds no thread of its own. An
unknown name is NXDOMAIN; a known one without addresses of the asked family is an empty
NOERROR. Every query is recorded in `queries` as (name, type).
"""

from __future__ import annotations

import heapq
import ipaddress
import select
import socket
import threading
import time
from dataclasses import dataclass

from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord

POLL = 0.02  # seconds; how often the server thread looks at its stop flag and its queue


@dataclass(frozen=True)
class Name:
    """How one name answers."""

    addresses: tuple[str, ...] = ("127.0.0.1",)
    ttl: int = 60
    delay: float | None = 0.0  # seconds before the answer; None: the query is dropped


class DnsServer:
    """`with DnsServer(names) as server:` answers on `server.nameserver` until exit."""

    def __init__(self, names: dict[str, Name]) -> None:
        self.names = {name.rstrip(".").lower(): how for name, how in names.items()}
        self.queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def asked(self, name: str, qtype: str = "A") -> int:
        """How many `qtype` queries for `name` arrived."""
        with self._lock:
            return self.queries.count((name.lower(), qtype))

    def __enter__(self) -> DnsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)
        self._socket.close()

    def _serve(self) -> None:
        due: list[tuple[float, int, bytes, tuple[str, int]]] = []
        sequence = 0
        while not self._stopping.is_set():
            wait = POLL if not due else max(0.0, min(POLL, due[0][0] - time.monotonic()))
            readable, _, _ = select.select([self._socket], [], [], wait)
            if readable:
                try:
                    data, peer = self._socket.recvfrom(4096)
                except OSError:
                    return
                answer = self._answer(data)
                if answer is not None:
                    delay, reply = answer
                    sequence += 1
                    heapq.heappush(due, (time.monotonic() + delay, sequence, reply, peer))
            while due and due[0][0] <= time.monotonic():
                _, _, reply, peer = heapq.heappop(due)
                try:
                    self._socket.sendto(reply, peer)
                except OSError:
                    return

    def _answer(self, data: bytes) -> tuple[float, bytes] | None:
        try:
            request = DNSRecord.parse(data)
        except Exception:  # any garbage: a real server would ignore it too
            return None
        question = request.q
        name = str(question.qname).rstrip(".").lower()
        qtype = QTYPE.get(question.qtype, str(question.qtype))
        with self._lock:
            self.queries.append((name, qtype))
        reply = request.reply()
        how = self.names.get(name)
        if how is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return 0.0, reply.pack()
        if how.delay is None:
            return None
        for address in how.addresses:
            version = ipaddress.ip_address(address).version
            if qtype == "A" and version == 4:
                reply.add_answer(RR(question.qname, QTYPE.A, rdata=A(address), ttl=how.ttl))
            elif qtype == "AAAA" and version == 6:
                reply.add_answer(RR(question.qname, QTYPE.AAAA, rdata=AAAA(address), ttl=how.ttl))
        return how.delay, reply.pack()

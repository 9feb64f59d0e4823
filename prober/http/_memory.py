"""An HTTP path in memory, for unit tests: `HttpClient(transport=MemoryTransport(handler))`.

`handler(call)` answers each exchange with an `HttpResponse` or an `HttpFailure` (or raises,
which classifies as the real paths' errors do); redirects, content decoding and the
request's encoding still run as they do for real, so a journey runner's tables need no
socket.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from prober.http._failures import classify
from prober.http._messages import HttpFailure, HttpResponse
from prober.http._target import Call
from prober.results import Phases

__all__ = ["MemoryTransport", "respond"]

Handler = Callable[[Call], "HttpResponse | HttpFailure | Awaitable[HttpResponse | HttpFailure]"]


def respond(
    status: int = 200,
    body: bytes | str = b"",
    headers: list[tuple[str, str]] | None = None,
    *,
    duration: float = 0.001,
    url: str = "http://memory.test/",
) -> HttpResponse:
    """A response as a handler returns it."""
    raw = body.encode() if isinstance(body, str) else body
    return HttpResponse(
        status_code=status,
        headers=list(headers or []),
        body=raw,
        phases=Phases(processing=duration),
        duration=duration,
        url=url,
        cert_expiry=None,
    )


class _MemoryPath:
    def __init__(self, transport: MemoryTransport) -> None:
        self._transport = transport

    async def exchange(self, call: Call, budget: float) -> HttpResponse | HttpFailure:
        self._transport.calls.append(call)
        try:
            answer = self._transport.handler(call)
            if inspect.isawaitable(answer):
                answer = await answer
        except Exception as error:
            return HttpFailure(
                classify(error, "processing", call.target.authority, call.timeout), Phases(), 0.0
            )
        return answer

    async def aclose(self) -> None:
        self._transport.closed += 1


class MemoryTransport:
    """Every exchange goes to `handler`; `calls` records them, `closed` counts sessions."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.calls: list[Call] = []
        self.closed = 0

    def path(self, session: object, call: Call) -> _MemoryPath:
        return _MemoryPath(self)

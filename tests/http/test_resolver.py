"""prober.http._resolver against a loopback nameserver: a slow name never delays another, one
query per name is in flight, answers are cached for their TTL, and the system's files
(hosts, search domains, ndots) are honoured."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from prober.config import ResolverOptions
from prober.http._resolver import ResolutionError, Resolver

from .dns import DnsServer, Name

integration = pytest.mark.integration

NAMES = {
    "fast.test": Name(("127.0.0.1",)),
    "never.test": Name(delay=None),
    "late.test": Name(("127.0.0.1",), delay=0.3),
    "cached.test": Name(("127.0.0.1",), ttl=300),
    "uncached.test": Name(("127.0.0.1",), ttl=0),
    "dual.test": Name(("127.0.0.1", "::1")),
    "api.corp.test": Name(("127.0.0.9",)),
    "a.b.c": Name(("127.0.0.8",)),
}


@pytest.fixture
def names() -> Iterator[DnsServer]:
    with DnsServer(NAMES) as server:
        yield server


@pytest.fixture
def resolver(names: DnsServer) -> Iterator[Resolver]:
    resolver = Resolver([names.nameserver])
    yield resolver
    resolver.close()


async def _abandoned(resolver: Resolver, host: str, after: float) -> None:
    """A lookup given up after `after` seconds, as a timed-out step gives it up."""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(after):
            await resolver.resolve(host)


@integration
def test_abandoned_lookups_do_not_delay_another_name(resolver: Resolver) -> None:
    """Lookups given up on a name that never answers leave another name's lookups unharmed."""

    async def main() -> list[list[str] | BaseException]:
        slow = [asyncio.create_task(_abandoned(resolver, "never.test", 0.1)) for _ in range(32)]
        await asyncio.gather(*slow)
        # The abandoned queries are still out (c-ares retries them for seconds).
        async with asyncio.timeout(5):
            return await asyncio.gather(
                *(resolver.resolve("fast.test") for _ in range(16)), return_exceptions=True
            )

    assert asyncio.run(main()) == [["127.0.0.1"]] * 16


@integration
def test_distinct_slow_names_do_not_delay_another_name(names: DnsServer) -> None:
    """Many distinct names that never answer (one query each) do not delay a healthy one."""
    table = {f"never-{index}.test": Name(delay=None) for index in range(40)}
    with DnsServer({**table, "fast.test": Name(("127.0.0.1",))}) as server:
        resolver = Resolver([server.nameserver])

        async def main() -> list[str]:
            await asyncio.gather(*(_abandoned(resolver, name, 0.1) for name in table))
            async with asyncio.timeout(5):
                return await resolver.resolve("fast.test")

        try:
            assert asyncio.run(main()) == ["127.0.0.1"]
        finally:
            resolver.close()


@integration
def test_concurrent_lookups_of_one_name_share_one_query(
    resolver: Resolver, names: DnsServer
) -> None:
    """Ten concurrent lookups of one name send one query, and all get its answer."""

    async def main() -> list[list[str]]:
        return await asyncio.gather(*(resolver.resolve("late.test") for _ in range(10)))

    assert (asyncio.run(main()), names.asked("late.test")) == ([["127.0.0.1"]] * 10, 1)


@integration
def test_a_waiter_that_gives_up_leaves_the_query_to_the_others(
    resolver: Resolver, names: DnsServer
) -> None:
    """One waiter timing out does not cancel the query another waiter is waiting on."""

    async def main() -> list[str]:
        patient = asyncio.create_task(resolver.resolve("late.test"))
        await _abandoned(resolver, "late.test", 0.05)
        async with asyncio.timeout(5):
            return await patient

    assert (asyncio.run(main()), names.asked("late.test")) == (["127.0.0.1"], 1)


CACHE_ROWS = [
    # id, name, queries after two lookups one after the other
    ("ttl-300-cached", "cached.test", 1),
    ("ttl-0-asked-again", "uncached.test", 2),
]


@integration
@pytest.mark.parametrize(
    ("host", "asked"), [r[1:] for r in CACHE_ROWS], ids=[r[0] for r in CACHE_ROWS]
)
def test_answers_are_cached_for_their_ttl(
    resolver: Resolver, names: DnsServer, host: str, asked: int
) -> None:
    """An answer with a TTL is reused for the next lookup; one with TTL 0 is not."""

    async def main() -> None:
        for _ in range(2):
            assert await resolver.resolve(host) == ["127.0.0.1"]

    asyncio.run(main())
    assert names.asked(host) == asked


FAILURE_ROWS = [
    ("not-found", "missing.test", "cannot resolve 'missing.test': Domain name not found"),
    ("invalid-name", "a..b", "cannot resolve 'a..b'"),
]


@integration
@pytest.mark.parametrize(
    ("host", "words"), [r[1:] for r in FAILURE_ROWS], ids=[r[0] for r in FAILURE_ROWS]
)
def test_failures_are_resolution_errors(resolver: Resolver, host: str, words: str) -> None:
    """A name that does not resolve raises ResolutionError naming it."""

    async def main() -> None:
        async with asyncio.timeout(10):
            await resolver.resolve(host)

    with pytest.raises(ResolutionError, match="^" + words.replace(".", r"\.")):
        asyncio.run(main())


SYSTEM_ROWS = [
    # id, name asked, addresses, name the nameserver was asked (None: it was not asked)
    ("search-domain-below-ndots", "api", ["127.0.0.9"], "api.corp.test"),
    ("as-is-at-ndots", "a.b.c", ["127.0.0.8"], "a.b.c"),
    ("hosts-file-first", "localhost", None, None),
]


@integration
@pytest.mark.parametrize(
    ("host", "addresses", "asked"), [r[1:] for r in SYSTEM_ROWS], ids=[r[0] for r in SYSTEM_ROWS]
)
def test_search_domains_ndots_and_hosts_are_honoured(
    names: DnsServer,
    monkeypatch: pytest.MonkeyPatch,
    host: str,
    addresses: list[str] | None,
    asked: str | None,
) -> None:
    """Search domains and ndots apply as resolv.conf sets them, and /etc/hosts is read first."""
    # The resolv.conf overrides both c-ares and glibc read (resolv.conf(5)): search and options.
    monkeypatch.setenv("LOCALDOMAIN", "corp.test")
    monkeypatch.setenv("RES_OPTIONS", "ndots:2 attempts:1")
    resolver = Resolver([names.nameserver])
    try:
        found = asyncio.run(resolver.resolve(host))
    finally:
        resolver.close()
    if addresses is None:  # localhost: whatever the hosts file says, it includes 127.0.0.1
        assert "127.0.0.1" in found
    else:
        assert found == addresses
    assert {name for name, _ in names.queries} == ({asked} if asked else set())


VALID_NAMESERVERS = [
    ("ipv4", "10.0.0.2"),
    ("ipv4-port", "127.0.0.1:5353"),
    ("ipv6", "fd00::2"),
    ("ipv6-port", "[fd00::2]:53"),
]
INVALID_NAMESERVERS = [
    ("name", "dns.example.com"),
    ("port-zero", "127.0.0.1:0"),
    ("port-too-big", "127.0.0.1:65536"),
    ("empty", ""),
]


@pytest.mark.parametrize(
    "value", [r[1] for r in VALID_NAMESERVERS], ids=[r[0] for r in VALID_NAMESERVERS]
)
def test_nameserver_syntax_accepted(value: str) -> None:
    """`resolver.nameservers` takes IP addresses with optional ports."""
    assert ResolverOptions(nameservers=(value,)).nameservers == (value,)


@pytest.mark.parametrize(
    "value", [r[1] for r in INVALID_NAMESERVERS], ids=[r[0] for r in INVALID_NAMESERVERS]
)
def test_nameserver_syntax_refused(value: str) -> None:
    """Anything else in `resolver.nameservers` is a validation error naming the field."""
    with pytest.raises(ValidationError, match="nameserver"):
        ResolverOptions(nameservers=(value,))

"""The HTTP layer against real third-party parts on loopback: nginx (TLS, client
certificates, HTTP/2, gzip) and tinyproxy (CONNECT and plain forwarding, NO_PROXY)."""

from __future__ import annotations

import asyncio
import json

import pytest

from prober.http import (
    HttpClient,
    HttpFailure,
    HttpRequest,
    HttpResponse,
    NetworkSettings,
    TlsSettings,
)
from prober.redaction import redact
from tests.net.conftest import PROXY_PASSWORD, PROXY_USER
from tests.net.servers import Nginx, Tinyproxy

pytestmark = pytest.mark.integration


def send(client: HttpClient, url: str, **request: object) -> HttpResponse | HttpFailure:
    async def main() -> HttpResponse | HttpFailure:
        async with client.session() as session:
            return await session.send(HttpRequest("GET", url, timeout=10, **request))  # type: ignore[arg-type]

    return asyncio.run(main())


def ok(outcome: HttpResponse | HttpFailure) -> HttpResponse:
    assert isinstance(outcome, HttpResponse), outcome
    return outcome


def trusting(web: Nginx, **settings: object) -> HttpClient:
    tls = settings.pop("tls", TlsSettings(ca_file=str(web.ca_file)))
    return HttpClient(NetworkSettings(tls=tls, **settings), environ={})  # type: ignore[arg-type]


def test_gzip_from_nginx_is_decoded(web: Nginx) -> None:
    """nginx compresses because prober offers gzip; the body conditions see the JSON."""
    response = ok(send(trusting(web), web.http + "/health"))
    assert response.header("content-encoding") == "gzip"
    assert json.loads(response.body)["status"] == "ok"


def test_compression_none_asks_for_identity(web: Nginx) -> None:
    """compression off: nginx sends the body as it is."""
    response = ok(send(trusting(web), web.http + "/health", compression=False))
    assert response.header("content-encoding") is None
    assert json.loads(response.body)["status"] == "ok"


@pytest.mark.parametrize(
    ("http2", "protocol", "served"),
    [(True, "HTTP/2", "HTTP/2.0"), (False, "HTTP/1.1", "HTTP/1.1")],
    ids=["h2-by-alpn", "http1-by-default"],
)
def test_http2_by_alpn(web: Nginx, http2: bool, protocol: str, served: str) -> None:
    """http2 negotiates h2 by ALPN; the response names the protocol, timings are real."""
    response = ok(send(trusting(web, http2=http2), web.https + "/echo-protocol"))
    assert (response.protocol, response.body.decode()) == (protocol, served)
    assert response.phases.tls > 0
    assert response.phases.connect > 0
    assert response.phases.processing > 0
    assert response.cert_expiry is not None


def test_mtls_with_a_client_certificate(web: Nginx) -> None:
    """nginx's ssl_verify_client on accepts prober's client certificate."""
    tls = TlsSettings(
        ca_file=str(web.ca_file), cert_file=str(web.client_cert_file), key_file=str(web.client_key_file)
    )
    response = ok(send(trusting(web, tls=tls, http2=True), web.mtls + "/client"))
    assert response.status_code == 200
    assert "CN=probe-client" in response.body.decode()


def test_mtls_without_a_certificate_is_refused(web: Nginx) -> None:
    """Without the client certificate, nginx answers 400 and the status fails the step."""
    response = ok(send(trusting(web), web.mtls + "/client"))
    assert response.status_code == 400


def test_untrusted_server_is_a_tls_failure(web: Nginx) -> None:
    """The system CAs do not know the test CA: reason tls, naming the host."""
    outcome = send(HttpClient(NetworkSettings(), environ={}), web.https + "/health")
    assert isinstance(outcome, HttpFailure)
    assert outcome.failure.reason == "tls"
    assert "localhost:" in outcome.failure.message


def test_server_name_overrides_sni(web: Nginx) -> None:
    """server_name: connect to 127.0.0.1, present and check `localhost`."""
    url = web.https.replace("localhost", "127.0.0.1") + "/health"
    client = trusting(web, server_name="localhost")
    assert ok(send(client, url)).status_code == 200


def test_min_version_is_enforced(web: Nginx) -> None:
    """min_version TLS1.3 still reaches nginx (which speaks 1.2 and 1.3), over TLS 1.3."""
    tls = TlsSettings(ca_file=str(web.ca_file), min_version="TLS1.3")
    assert ok(send(trusting(web, tls=tls), web.https + "/health")).status_code == 200
    assert web.access_log().rstrip().splitlines()[-1].endswith("TLSv1.3")


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "h2"])
def test_https_through_the_proxy_tunnel(web: Nginx, proxy: Tinyproxy, http2: bool) -> None:
    """An https target through the proxy goes by CONNECT; the tunnel carries TLS (and h2)."""
    client = trusting(web, proxy_url=proxy.url, http2=http2)
    before = proxy.log().count("CONNECT localhost:")
    response = ok(send(client, web.https + "/echo-protocol"))
    assert response.body.decode() == ("HTTP/2.0" if http2 else "HTTP/1.1")
    assert proxy.log().count("CONNECT localhost:") == before + 1
    assert response.phases.connect > 0
    assert response.phases.tls > 0


def test_plain_http_through_the_proxy(web: Nginx, proxy: Tinyproxy) -> None:
    """An http target through the proxy is forwarded (absolute-form request)."""
    response = ok(send(trusting(web, proxy_url=proxy.url), web.http + "/echo-protocol"))
    assert response.status_code == 200
    assert f"GET {web.http}/echo-protocol" in proxy.log()


def test_environment_proxy_and_no_proxy(web: Nginx, proxy: Tinyproxy) -> None:
    """HTTPS_PROXY routes through the proxy; NO_PROXY for the host goes direct."""
    through = HttpClient(
        NetworkSettings(tls=TlsSettings(ca_file=str(web.ca_file))),
        environ={"HTTPS_PROXY": proxy.url},
    )
    before = proxy.log().count("CONNECT localhost:")
    ok(send(through, web.https + "/health"))
    assert proxy.log().count("CONNECT localhost:") == before + 1
    direct = HttpClient(
        NetworkSettings(tls=TlsSettings(ca_file=str(web.ca_file))),
        environ={"HTTPS_PROXY": proxy.url, "NO_PROXY": "localhost"},
    )
    ok(send(direct, web.https + "/health"))
    assert proxy.log().count("CONNECT localhost:") == before + 1


def test_proxy_credentials_are_sent_and_masked(web: Nginx, auth_proxy: Tinyproxy) -> None:
    """Credentials in proxy_url authenticate to the proxy and are masked from then on."""
    client = trusting(web, proxy_url=auth_proxy.url_with_credentials())
    assert ok(send(client, web.http + "/echo-protocol")).status_code == 200
    assert redact(f"pw {PROXY_PASSWORD}") == "pw ***"


def test_proxy_without_credentials_is_refused(web: Nginx, auth_proxy: Tinyproxy) -> None:
    """A proxy that wants auth refuses the CONNECT: reason connect, the proxy named."""
    outcome = send(trusting(web, proxy_url=auth_proxy.url), web.https + "/health")
    assert isinstance(outcome, HttpFailure)
    assert outcome.failure.reason == "connect"
    assert "proxy" in outcome.failure.message
    assert PROXY_USER not in outcome.failure.message


def test_proxy_down_is_a_connect_failure(web: Nginx) -> None:
    """A proxy nobody listens on: reason connect, naming the proxy's address."""
    from tests.net.servers import free_port

    port = free_port()
    outcome = send(trusting(web, proxy_url=f"http://127.0.0.1:{port}"), web.https + "/health")
    assert isinstance(outcome, HttpFailure)
    assert outcome.failure.reason == "connect"

"""`email`: SMTP with STARTTLS and auth; one message per notification, with a text and an
HTML part (`multipart/alternative`).

The subject is the title plus the summary; `Message-ID` is made from the notification's id,
so a mail system can drop the rare duplicate. SMTP runs on a worker thread (`smtplib`),
one connection per message: alert mail is rare, and a fresh connection needs no upkeep.

`starttls: true` (the default) upgrades the connection before anything else and refuses
to go on without it; the certificate is checked against `tls_ca_file` (or the system's
CAs) unless `tls_verify: false`. `username`/`password` log in after STARTTLS (the config
refuses auth without it). The password (`${secret.SMTP_PASSWORD}`, or written out) is a
secret: it never appears in a log line, a metric, the status page or an error.

Errors: a 5xx for the message or its recipients refuses the message (dead-lettered at
once); everything else (connection, TLS, 4xx, a failed login) is retried.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate

from prober.config import EmailNotifier
from prober.notify.channels import (
    Channel,
    DeliveryError,
    NotifierConfig,
    client_for,
    person_policy,
    read_setting,
    secret_setting,
)
from prober.notify.message import Notification, html_body, text_body, title
from prober.redaction import redact

__all__ = ["EmailSender", "build", "compose"]


def compose(notification: Notification, sender: str, to: Sequence[str]) -> EmailMessage:
    message = EmailMessage()
    summary = notification.annotations.get("summary")
    message["Subject"] = title(notification) + (f": {summary}" if summary else "")
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(notification.at, usegmt=True)
    message["Message-ID"] = f"<{notification.id}@prober>"
    message["X-Prober-Notification-Kind"] = notification.kind
    message.set_content(text_body(notification))
    message.add_alternative(html_body(notification), subtype="html")
    return message


class EmailSender:
    def __init__(
        self,
        settings: EmailNotifier,
        *,
        username: str | None,
        password: str | None,
        context: ssl.SSLContext | None,
    ) -> None:
        self.settings = settings
        self.username = username
        self.password = password
        self.context = context
        self.where = f"SMTP {settings.smtp_host}:{settings.smtp_port}"

    async def send(self, notifications: Sequence[Notification], now: float) -> None:
        for notification in notifications:
            message = compose(notification, self.settings.sender, self.settings.to)
            await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        settings = self.settings
        try:
            with smtplib.SMTP(
                settings.smtp_host, settings.smtp_port, timeout=settings.timeout
            ) as smtp:
                smtp.ehlo()
                if settings.starttls:
                    smtp.starttls(context=self.context)
                    smtp.ehlo()
                if self.username is not None and self.password is not None:
                    smtp.login(self.username, self.password)
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            raise DeliveryError(
                f"{self.where} refused the recipients: {redact(str(error.recipients))}",
                permanent=all(code >= 500 for code in codes),
            ) from None
        except smtplib.SMTPAuthenticationError as error:
            raise DeliveryError(
                f"{self.where}: login refused ({error.smtp_code} {_text(error.smtp_error)})"
            ) from None
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as error:
            raise DeliveryError(
                f"{self.where} refused the message ({error.smtp_code} {_text(error.smtp_error)})",
                permanent=error.smtp_code >= 500,
            ) from None
        except smtplib.SMTPResponseException as error:
            raise DeliveryError(
                f"{self.where}: {error.smtp_code} {_text(error.smtp_error)}"
            ) from None
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryError(
                f"{self.where}: {redact(str(error)) or type(error).__name__}"
            ) from None


def _text(reply: bytes | str) -> str:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
    return redact(text.strip())


def build(
    settings: NotifierConfig, path: str, environ: Mapping[str, str] | None = None
) -> tuple[Channel, ...]:
    assert isinstance(settings, EmailNotifier)
    name = settings.name_or_type()
    username = (
        None
        if settings.username is None
        else read_setting(settings.username, f"{path}.username", environ)
    )
    password = (
        None
        if settings.password is None
        else secret_setting(settings.password, f"{path}.password", environ)
    )
    context = client_for(settings).ssl_context() if settings.starttls else None
    return (
        Channel(
            key=name,
            name=name,
            type="email",
            notifier=EmailSender(settings, username=username, password=password, context=context),
            policy=person_policy(settings),
            settings=settings,
        ),
    )

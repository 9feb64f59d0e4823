"""A notification: what one message says about one alert, stored in the outbox as JSON, and
the words every notifier shares (title, figures, links).

A `Notification` is made when an alert changes state (or is repeated, or starts or stops
flapping) and is rendered per notifier only when it is sent: the outbox holds facts
(labels, annotations, times, the burn rates and budgets of the tick), never a rendered
message and never a secret.

    kind        firing | resolved     a state change
                repeat                still firing after `repeat_interval` (Slack, email, webhook)
                flapping              a change that starts a hold: more than N changes an hour
                settled               the hold ends: the alert kept one state for `settle`
    status      firing | resolved     the alert's state the message reports

`fingerprint` is Alertmanager's (FNV-1a 64 over the sorted labels, as `model.LabelSet`
computes it), so the webhook's `fingerprint` matches the one Alertmanager shows.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, Literal, cast

from slo.engine import format_window

__all__ = [
    "Kind",
    "Notification",
    "SloFigures",
    "Status",
    "fingerprint",
    "html_body",
    "rfc3339",
    "text_body",
    "title",
]

Kind = Literal["firing", "resolved", "repeat", "flapping", "settled"]
Status = Literal["firing", "resolved"]
_KINDS: Final = frozenset({"firing", "resolved", "repeat", "flapping", "settled"})
_FNV_OFFSET: Final = 0xCBF29CE484222325
_FNV_PRIME: Final = 0x100000001B3
_SEPARATOR: Final = b"\xff"


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set, as 16 hex digits."""
    value = _FNV_OFFSET
    for name in sorted(labels):
        for byte in name.encode() + _SEPARATOR + labels[name].encode() + _SEPARATOR:
            value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def rfc3339(seconds: float) -> str:
    """UTC with milliseconds, as Alertmanager writes times."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class SloFigures:
    """One SLO at the tick that made the message: what a person asks first."""

    name: str
    objective: float
    budget_remaining: float | None
    burn_rates: Mapping[str, float | None]  # window label (`5m`) → burn rate

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "objective": self.objective,
            "budget_remaining": self.budget_remaining,
            "burn_rates": dict(self.burn_rates),
        }


@dataclass(frozen=True)
class Notification:
    id: str  # unique; the idempotency key a receiver may use to drop a rare duplicate
    kind: Kind
    status: Status
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: float  # when the condition was first seen (Alertmanager's startsAt)
    ends_at: float | None  # the resolve time, for status resolved
    at: float  # when the change (or the repeat) happened
    values: Mapping[str, float] = field(default_factory=dict)  # burn rates, a rule's value
    slos: tuple[SloFigures, ...] = ()
    external_url: str = ""
    changes: int = 0  # flapping / settled: the state changes counted
    hold: tuple[float, float] = (0.0, 0.0)  # flapping: the policy's (window, settle) seconds

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        object.__setattr__(self, "annotations", MappingProxyType(dict(self.annotations)))
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "alert")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "kind": self.kind,
                "status": self.status,
                "labels": dict(self.labels),
                "annotations": dict(self.annotations),
                "starts_at": self.starts_at,
                "ends_at": self.ends_at,
                "at": self.at,
                "values": dict(self.values),
                "slos": [slo.to_json() for slo in self.slos],
                "external_url": self.external_url,
                "changes": self.changes,
                "hold": list(self.hold),
            },
            allow_nan=False,
        )

    @classmethod
    def from_json(cls, text: str) -> Notification:
        """Read a payload back; raises `ValueError` for anything `to_json` did not write."""
        try:
            data = json.loads(text)
            kind, status = data["kind"], data["status"]
            if kind not in _KINDS or status not in ("firing", "resolved"):
                raise ValueError(f"unknown kind/status {kind!r}/{status!r}")
            return cls(
                id=str(data["id"]),
                kind=cast(Kind, kind),
                status=cast(Status, status),
                labels=_text_map(data["labels"]),
                annotations=_text_map(data["annotations"]),
                starts_at=float(data["starts_at"]),
                ends_at=None if data["ends_at"] is None else float(data["ends_at"]),
                at=float(data["at"]),
                values={str(k): float(v) for k, v in data["values"].items()},
                slos=tuple(
                    SloFigures(
                        name=str(slo["name"]),
                        objective=float(slo["objective"]),
                        budget_remaining=_number_or_none(slo["budget_remaining"]),
                        burn_rates={
                            str(k): _number_or_none(v) for k, v in slo["burn_rates"].items()
                        },
                    )
                    for slo in data["slos"]
                ),
                external_url=str(data["external_url"]),
                changes=int(data["changes"]),
                hold=(float(data["hold"][0]), float(data["hold"][1])),
            )
        except (KeyError, TypeError, AttributeError, IndexError) as error:
            raise ValueError(f"not a notification payload: {error!r}") from None


def _text_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError("expected an object")
    return {str(key): str(item) for key, item in value.items()}


def _number_or_none(value: object) -> float | None:
    return None if value is None else float(cast(float, value))


# ---------------------------------------------------------------------- shared wording

_TAGS: Final[Mapping[str, str]] = {
    "firing": "FIRING",
    "resolved": "RESOLVED",
    "repeat": "STILL FIRING",
    "flapping": "FLAPPING",
}


def tag(notification: Notification) -> str:
    if notification.kind == "settled":
        return f"{notification.status.upper()} after flapping"
    return _TAGS[notification.kind]


def title(notification: Notification) -> str:
    """`[FIRING] ApiDown (critical, healthcheck)`: the subject line, the Slack header."""
    labels = notification.labels
    where = labels.get("slo") or labels.get("journey") or labels.get("service") or ""
    detail = ", ".join(part for part in (notification.severity, where) if part)
    return f"[{tag(notification)}] {notification.alertname}" + (f" ({detail})" if detail else "")


def _ratio(value: float | None) -> str:
    return "no data" if value is None else f"{value:.1%}"


def _rate(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.2f}×"


def facts(notification: Notification) -> list[tuple[str, str]]:
    """The message's facts as (name, text) lines, in reading order; each notifier lays them
    out its own way."""
    n = notification
    found: list[tuple[str, str]] = []
    if n.kind == "flapping":
        window, settle = (format_window(seconds) for seconds in n.hold)
        found.append(
            (
                "Flapping",
                f"{n.changes} state changes within {window}; further changes are held until"
                f" the alert keeps one state for {settle}, then summarised",
            )
        )
    elif n.kind == "settled":
        found.append(("Settled", f"after {n.changes} state changes while held"))
    if n.annotations.get("summary"):
        found.append(("Summary", n.annotations["summary"]))
    if n.annotations.get("description"):
        found.append(("Description", n.annotations["description"]))
    found.append(("Severity", n.severity or "–"))
    found.append(("Since", rfc3339(n.starts_at)))
    if n.status == "resolved" and n.ends_at is not None:
        found.append(("Resolved", rfc3339(n.ends_at)))
    burn = _alert_burn_rates(n)
    if burn:
        found.append(("Burn rate", burn))
    elif "value" in n.values:
        found.append(("Value", f"{n.values['value']:g}"))
    for slo in n.slos:
        rates = ", ".join(
            f"{window} {_rate(rate)}" for window, rate in slo.burn_rates.items() if rate is not None
        )
        found.append(
            (
                f"SLO {slo.name}",
                f"objective {slo.objective:.3%}, error budget left {_ratio(slo.budget_remaining)}"
                + (f", burn rate {rates}" if rates else ""),
            )
        )
    if n.annotations.get("runbook_url"):
        found.append(("Runbook", n.annotations["runbook_url"]))
    if n.external_url:
        found.append(("Status page", n.external_url))
    return found


def _alert_burn_rates(notification: Notification) -> str:
    """`1h 20.10× / 5m 40.00× (threshold 14.40×)` for a burn-rate alert, else ``."""
    values, labels = notification.values, notification.labels
    if "burn_rate_long" not in values and "burn_rate_short" not in values:
        return ""
    long = f"{labels.get('long_window', 'long')} {_rate(values.get('burn_rate_long'))}"
    short = f"{labels.get('short_window', 'short')} {_rate(values.get('burn_rate_short'))}"
    threshold = values.get("threshold")
    return f"{long} / {short}" + (f" (threshold {_rate(threshold)})" if threshold else "")


def text_body(notification: Notification) -> str:
    """The plain-text message (email's text part)."""
    lines = [title(notification), ""]
    lines += [f"{name}: {text}" for name, text in facts(notification)]
    labels = ", ".join(f"{key}={value}" for key, value in sorted(notification.labels.items()))
    lines += ["", f"Labels: {labels}", ""]
    return "\n".join(lines)


def html_body(notification: Notification) -> str:
    """The HTML message (email's HTML part): the same facts as a small table."""
    colour = {"critical": "#cf222e", "warning": "#bf8700"}.get(notification.severity, "#57606a")
    if notification.status == "resolved":
        colour = "#1a7f37"
    rows = "".join(
        f"<tr><th style='text-align:left;padding:2px 12px 2px 0'>{html.escape(name)}</th>"
        f"<td>{_linked(name, text)}</td></tr>"
        for name, text in facts(notification)
    )
    labels = ", ".join(
        f"{html.escape(key)}={html.escape(value)}"
        for key, value in sorted(notification.labels.items())
    )
    return (
        "<!doctype html><html><body style='font:14px/1.4 sans-serif'>"
        f"<h2 style='color:{colour}'>{html.escape(title(notification))}</h2>"
        f"<table>{rows}</table>"
        f"<p style='color:#57606a'>Labels: {labels}</p>"
        "</body></html>\n"
    )


def _linked(name: str, text: str) -> str:
    if name in ("Runbook", "Status page") and text.startswith(("http://", "https://")):
        return f"<a href='{html.escape(text, quote=True)}'>{html.escape(text)}</a>"
    return html.escape(text)

"""Alert delivery: Alertmanager, Slack, webhook and email, through a durable outbox.

    service.py       NotificationService: what the daemon holds (configure, plan, start, drain)
    planner.py       which messages an evaluation causes, per channel (pure)
    message.py       the notification (the outbox payload) and its shared wording
    sender.py        the outbox sender: per channel, in order, backoff, dead letters
    channels.py      the Notifier interface, errors, settings, HTTP POST
    alertmanager.py  slack.py  webhook.py  mail.py     one module per notifier type

See the README's "Alert delivery" section for the behaviour and the decisions taken
where DESIGN.md is silent.
"""

from prober.notify.channels import Channel, DeliveryError, Notifier
from prober.notify.message import Notification, SloFigures
from prober.notify.planner import ChannelPolicy, FlapPolicy, Planner
from prober.notify.service import FACTORIES, NotificationService, build_channels

__all__ = [
    "FACTORIES",
    "Channel",
    "ChannelPolicy",
    "DeliveryError",
    "FlapPolicy",
    "Notification",
    "NotificationService",
    "Notifier",
    "Planner",
    "SloFigures",
    "build_channels",
]

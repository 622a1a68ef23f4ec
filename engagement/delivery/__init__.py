"""The delivery engine: scan what is due, claim one message, send it, record what happened.

    beat ── dispatch_due() ── per organization, a bounded index scan of pending rows whose
                              next_attempt_at has come; enqueues their ids (and pushes
                              next_attempt_at a little ahead, so the next scan skips them)
    worker ─ message_send() ─ checks (still wanted? consent? quiet hours? caps?), then claims the
                              row with a conditional UPDATE pending -> sending that must touch
                              exactly one row, and commits the claim *before* the network call;
                              waits for the organization's rate limiter; sends; records the result.
    worker ─ messages_send() ─ the same for a chunk of ids (ENGAGEMENT_SEND_BATCH > 1): one
                              transaction of checks and per-message claims, committed; the sends
                              on a pool of sender threads; one transaction recording the results.

The database is the schedule: a transient failure puts the row back to pending with
next_attempt_at = now + backoff (with jitter); no Celery countdowns or ETAs. A worker killed
between its claim and its result leaves the row in `sending`: after ENGAGEMENT_SENDING_STALE_AFTER
the scan hands it to message_reconcile(), which asks the provider whether the message got there
(recent messages to that number with that text) before sending it again, so a message reaches the
provider once even across crashes and timeouts whose outcome is unknown.

    backends.py   the SMS backend interface (ENGAGEMENT_SMS_BACKEND), DeliveryError, the sink
    ratelimit.py  the per-organization GCRA in Redis
    scan.py       dispatch_due, due_ids
    render.py     render_message
    send.py       message_send, messages_send (checks, claim, transmit, settle)
    reconcile.py  message_reconcile
"""

from engagement.delivery.backends import DeliveryError, SinkBackend, SmsAccount, SmsBackend, SmsSent, sms_backend
from engagement.delivery.ratelimit import rate_reserve
from engagement.delivery.reconcile import message_reconcile
from engagement.delivery.render import render_message
from engagement.delivery.scan import dispatch_due, due_ids
from engagement.delivery.send import Prepared, _prepare, admins_alert, message_send, messages_send

__all__ = [
    "DeliveryError",
    "Prepared",
    "SinkBackend",
    "SmsAccount",
    "SmsBackend",
    "SmsSent",
    "_prepare",
    "admins_alert",
    "dispatch_due",
    "due_ids",
    "message_reconcile",
    "message_send",
    "messages_send",
    "rate_reserve",
    "render_message",
    "sms_backend",
]

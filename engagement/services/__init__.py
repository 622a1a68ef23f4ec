"""Writes for outreach, one module per concept:

    consent.py        consent per channel; an opt-out cancels what is pending
    rules.py          templates and rules; rule_materialize through the kind -> materializer table
    materializers.py  what each rule kind puts in the outbox (cohorts read in chunks)
    outbox.py         the outbox rows: idempotent enqueue, reminder slots, notices
    conversations.py  two-way SMS: staff replies, inbound messages and their keywords
    statuses.py       delivery statuses reported by the provider
    links.py          patient links: what opening one shows, and using it once
    surveys.py        satisfaction surveys: answers by SMS reply or link, once; detractor follow-up
    calls.py          care-gap contact attempts: calls logged, a gap's recall sent now
    staff_messages.py one-off SMS or email from the patient record, through the outbox
    waitlist.py       a freed slot offered to waiting patients: the message, and its "take it" link
    events.py         what patients did with a message (opened, answered), once per message and kind

The education library's writes are engagement/education/services.py.

Quiet hours, contact windows, channel choice and caps are engagement/etiquette.py; sending itself
(claim, send, record) is engagement/delivery/. Import from here: the names below are the API.
"""

from engagement.etiquette import choose_channel, patient_zone, sending_window
from engagement.services.calls import RecallSend, call_log_create, recall_messages, recall_send, recall_slot
from engagement.services.consent import consent_set, messages_cancel
from engagement.services.conversations import (
    conversation_mark_read,
    inbound_receive,
    reschedule_task_create,
    staff_reply,
)
from engagement.services.events import engagement_event_record
from engagement.services.links import link_state, link_use
from engagement.services.materializers import (
    ADHERENCE_DEFAULT_TIME,
    LATE_GRACE,
    MATERIALIZERS,
    REMINDER_LOOKAHEAD,
    chunked_rows_create,
    risk_params_problem,
    risk_reminders_enqueue,
)
from engagement.services.outbox import (
    notice_enqueue,
    outbox_enqueue,
    outbox_row_for,
    outbox_rows_create,
    reminder_slot,
    reminder_slot_matches,
    risk_reminder_slot,
)
from engagement.services.rules import rule_materialize, rule_save, template_save
from engagement.services.staff_messages import STAFF_MESSAGE, staff_message_problem, staff_message_send
from engagement.services.statuses import delivery_status_apply
from engagement.services.surveys import (
    Answers,
    survey_link_state,
    survey_link_use,
    survey_reply_receive,
    survey_response_record,
    survey_score_of,
)
from engagement.services.waitlist import slot_link_state, slot_link_use, waitlist_offer_notices

__all__ = [
    "RecallSend",
    "call_log_create",
    "recall_messages",
    "recall_send",
    "recall_slot",
    "ADHERENCE_DEFAULT_TIME",
    "Answers",
    "LATE_GRACE",
    "MATERIALIZERS",
    "REMINDER_LOOKAHEAD",
    "choose_channel",
    "chunked_rows_create",
    "consent_set",
    "conversation_mark_read",
    "delivery_status_apply",
    "engagement_event_record",
    "inbound_receive",
    "link_state",
    "link_use",
    "messages_cancel",
    "notice_enqueue",
    "outbox_enqueue",
    "outbox_row_for",
    "outbox_rows_create",
    "patient_zone",
    "reminder_slot",
    "reminder_slot_matches",
    "reschedule_task_create",
    "risk_params_problem",
    "risk_reminder_slot",
    "risk_reminders_enqueue",
    "rule_materialize",
    "rule_save",
    "sending_window",
    "STAFF_MESSAGE",
    "staff_message_problem",
    "staff_message_send",
    "staff_reply",
    "survey_link_state",
    "survey_link_use",
    "survey_reply_receive",
    "survey_response_record",
    "survey_score_of",
    "template_save",
    "slot_link_state",
    "slot_link_use",
    "waitlist_offer_notices",
]

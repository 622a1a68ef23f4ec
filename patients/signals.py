"""Events other apps subscribe to.

`care_plan_updated` is THE "care plan updated" event (outreach listens to it). It is sent once per
change, after the transaction that made the change commits (`transaction.on_commit`: a rolled-back
change is never announced), with keyword arguments that are ids and a short change kind, never PHI:

    organization_id: int      # the tenant; receivers enter organization_context themselves
    patient_id: int
    care_plan_id: int | None  # None for a task outside any plan
    change: str               # a patients.models.CarePlanChange value: "started", "task_done", ...

Receivers run in the web request (or task) that made the change, after commit: keep them short and
hand real work to Celery (ids only), e.g.

    @receiver(care_plan_updated)
    def schedule_outreach(sender, *, organization_id, patient_id, care_plan_id, change, **kwargs):
        outreach_plan_changed_task.delay(organization_id, patient_id, care_plan_id, change)
"""

from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal

care_plan_updated = Signal()

# `patient_created`: a patient was created through `patients.services.patient_create`. Sent *inside*
# the creating transaction, so a receiver's writes (outreach records the consent given at intake)
# commit or roll back with the patient. Keyword arguments, ids and channel names only:
#
#     organization_id: int
#     patient_id: int
#     consents: tuple[str, ...]  # channels ("sms", "email") the patient agreed to at intake
patient_created = Signal()


def send_care_plan_updated(*, organization_id: int, patient_id: int, care_plan_id: int | None, change: str) -> None:
    """Announce a care plan change once the current transaction commits."""
    from patients.models import CarePlan

    def send() -> None:
        care_plan_updated.send(
            sender=CarePlan,
            organization_id=organization_id,
            patient_id=patient_id,
            care_plan_id=care_plan_id,
            change=change,
        )

    transaction.on_commit(send)


# `waitlist_offered`: a freed slot was offered to waitlist entries (`patients.scheduling.services.
# waitlist_offers_make`). Sent *inside* the transaction that freed the slot, so the messages outreach
# queues for the offers commit or roll back with it. Keyword arguments, ids only:
#
#     organization_id: int
#     offer_ids: tuple[int, ...]  # patients.WaitlistOffer ids (each names its entry and slot)
waitlist_offered = Signal()

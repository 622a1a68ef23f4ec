"""The right-of-access job (queue `integrations`): organization id and request id, never PHI.

`atomic=False`: the body commits each step itself so the progress bar moves while it runs. No
retries: a failure is recorded on the request and staff start it again from its page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from celery import shared_task

from healthcrm.tasks import TenantTask

if TYPE_CHECKING:
    from healthcrm.models import Organization


@shared_task(
    base=TenantTask,
    atomic=False,
    name="integrations.right_of_access.tasks.right_of_access_build_task",
    queue="integrations",
    ignore_result=True,
    acks_late=True,
    max_retries=0,
)
def right_of_access_build_task(organization: Organization, request_id: int) -> None:
    from integrations.right_of_access.services import right_of_access_build

    right_of_access_build(organization=organization, request_id=request_id)

"""Every module that registers fact builders (`@refresh.builder`), imported once by refresh_run.

Order matters: builders run in registration order, so a module that reads another's facts comes after it.
"""

from analytics import (
    cube,  # noqa: F401  (the pages' daily cube: imports refresh, so it registers after appointments)
    gaps,  # noqa: F401  (care gaps, from the recall definitions)
    population,  # noqa: F401  (risk: imports refresh, so it registers after patients and appointments)
    refresh,  # noqa: F401  (patients, appointments)
    reminders,  # noqa: F401  (outreach funnel)
    satisfaction,  # noqa: F401  (survey messages and their scores)
)

# isort: split
from analytics import (
    effectiveness,  # noqa: F401  (treatment effectiveness: TreatmentChange)
    measures,  # noqa: F401  (quality measures: MeasureResult)
)

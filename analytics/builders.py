"""Every module that registers fact builders (`@refresh.builder`), imported once by refresh_run.

Order matters: builders run in registration order, so a module that reads another's facts comes after it.
"""

import analytics.satisfaction  # noqa: F401  (survey messages and their scores; after refresh, which it imports)
from analytics import refresh  # noqa: F401  (patients, appointments)

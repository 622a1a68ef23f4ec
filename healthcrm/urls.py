"""The site's URLconf: it wires every app in, so it is exempt from the layers (see .importlinter)."""

from django.contrib import admin
from django.urls import include, path

handler500 = "healthcrm.views.server_error"

admin.site.site_header = "HealthCRM administration"
admin.site.site_title = "HealthCRM admin"

urlpatterns = [
    # Dashboard, /healthz, organization switch, /accounts/ (sign-in and the second factor).
    path("", include("staff.urls")),
    path("patients/", include("patients.urls")),
    path("compliance/", include("compliance.urls")),
    path("integrations/", include("integrations.urls")),
    path("integrations/twilio/", include("integrations.twilio.urls")),
    path("engagement/", include("engagement.urls")),
    path("analytics/", include("analytics.urls")),
    path("admin/", admin.site.urls),
]

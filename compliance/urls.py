from django.urls import path

from compliance import views

app_name = "compliance"

urlpatterns = [
    path("access-log/", views.access_log_view, name="access_log"),
    path("security-events/", views.security_events_view, name="security_events"),
]

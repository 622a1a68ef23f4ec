from django.urls import path

from compliance import views

app_name = "compliance"

urlpatterns = [
    path("access-log/", views.access_log_view, name="access_log"),
    path("audit/", views.audit_search_view, name="audit_search"),
    path("security-events/", views.security_events_view, name="security_events"),
    path("alerts/", views.anomaly_alerts_view, name="anomaly_alerts"),
    path("alerts/<int:pk>/", views.anomaly_review_view, name="anomaly_review"),
    path("alerts/summary/", views.anomaly_summary_view, name="anomaly_summary"),
]

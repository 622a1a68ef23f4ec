from django.urls import path

from analytics import gap_views, measure_views, population_views, views

app_name = "analytics"

urlpatterns = [
    path("", views.index, name="index"),
    path("attendance/", views.adherence_view, name="adherence"),
    path("reminders/", views.reminders_view, name="reminders"),
    path("population/", population_views.population_view, name="population"),
    path("cohorts/", population_views.cohort_list_view, name="cohorts"),
    path("cohorts/new/", population_views.cohort_edit_view, name="cohort_create"),
    path("cohorts/<int:pk>/", population_views.cohort_edit_view, name="cohort_edit"),
    path("satisfaction/", views.satisfaction_view, name="satisfaction"),
    path("engagement/", views.engagement_view, name="engagement"),
    path("gaps/", gap_views.gap_worklist_view, name="gaps"),
    path("gaps/export/", gap_views.gap_worklist_export_view, name="gaps_export"),
    path("gaps/<int:pk>/call/", gap_views.gap_call_view, name="gap_call"),
    path("gaps/<int:pk>/recall/", gap_views.gap_recall_view, name="gap_recall"),
    path("gap-closure/", gap_views.gap_closure_view, name="gap_closure"),
    path("measures/", measure_views.measures_view, name="measures"),
    path("measures/patients/", measure_views.measure_gaps_view, name="measure_gaps"),
    path("effectiveness/", measure_views.effectiveness_view, name="effectiveness"),
    path("risk/", views.risk_view, name="risk"),
]

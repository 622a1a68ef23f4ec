from django.urls import path

from engagement import views
from engagement.access_reports import views as access_report_views
from engagement.education import views as education_views
from engagement.questionnaires import views as questionnaires

app_name = "engagement"

urlpatterns = [
    path("outbox/", views.outbox_view, name="outbox"),
    path("conversations/", views.conversation_list_view, name="conversations"),
    path("conversations/<int:patient_pk>/", views.conversation_view, name="conversation"),
    path("rules/", views.rule_list_view, name="rules"),
    path("rules/new/", views.rule_edit_view, name="rule_create"),
    path("rules/<int:pk>/", views.rule_edit_view, name="rule_edit"),
    path("rules/preview/", views.rule_preview_view, name="rule_preview"),
    path("templates/", views.template_list_view, name="templates"),
    path("templates/new/", views.template_edit_view, name="template_create"),
    path("templates/<int:pk>/", views.template_edit_view, name="template_edit"),
    path("templates/preview/", views.template_preview_view, name="template_preview"),
    path("settings/", views.channel_settings_view, name="settings"),
    path("patients/<int:patient_pk>/communications/", views.patient_communications_view, name="patient_communications"),
    path("patients/<int:patient_pk>/consent/", views.patient_consent_view, name="patient_consent"),
    path("education/", education_views.education_library_view, name="education_library"),
    path("education/<int:pk>/", education_views.education_item_view, name="education_item"),
    path(
        "patients/<int:patient_pk>/engagement/",
        education_views.patient_engagement_view,
        name="patient_engagement",
    ),
    path("questionnaires/", questionnaires.questionnaire_list_view, name="questionnaires"),
    path(
        "patients/<int:patient_pk>/questionnaires/",
        questionnaires.patient_questionnaires_view,
        name="patient_questionnaires",
    ),
    # Patient links: short path, signed token, no sign-in.
    path("l/<str:token>/", views.patient_link_view, name="patient_link"),
    # The patient's access report ("who viewed my record"): signed link, one-time code, no sign-in.
    path(
        "access-report/<slug:organization_slug>/", access_report_views.access_report_ask_view, name="access_report_ask"
    ),
    path("r/<str:token>/", access_report_views.access_report_link_view, name="access_report_link"),
    path("r/<str:token>/report/", access_report_views.access_report_patient_view, name="access_report_patient"),
    path(
        "patients/<int:patient_pk>/access-report-link/",
        access_report_views.access_report_request_view,
        name="access_report_request",
    ),
]

from django.urls import path

from engagement import views
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
    path("questionnaires/", questionnaires.questionnaire_list_view, name="questionnaires"),
    path(
        "patients/<int:patient_pk>/questionnaires/",
        questionnaires.patient_questionnaires_view,
        name="patient_questionnaires",
    ),
    # Patient links: short path, signed token, no sign-in.
    path("l/<str:token>/", views.patient_link_view, name="patient_link"),
]

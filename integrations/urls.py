from django.urls import path

from integrations.devices import views as device_views
from integrations.fhir import views as fhir_views
from integrations.hl7v2 import views as hl7_views

app_name = "integrations"

urlpatterns = [
    path("fhir/import/", fhir_views.import_upload_view, name="fhir_import"),
    path("fhir/import/<int:pk>/", fhir_views.import_job_view, name="fhir_import_job"),
    path("fhir/connections/", fhir_views.connection_list_view, name="fhir_connections"),
    path("fhir/connections/<int:pk>/", fhir_views.connection_detail_view, name="fhir_connection"),
    path("fhir/connections/<int:pk>/pull/", fhir_views.connection_pull_view, name="fhir_connection_pull"),
    path("fhir/connections/<int:pk>/test/", fhir_views.connection_test_view, name="fhir_connection_test"),
    path("fhir/patients/<int:pk>/export/", fhir_views.patient_export_view, name="fhir_patient_export"),
    path("devices/observations/", device_views.device_observation_view, name="device_observation"),
    path("hl7/", hl7_views.interface_status_view, name="hl7_status"),
    path("hl7/search/", hl7_views.message_search_view, name="hl7_search"),
    path("hl7/messages/<int:pk>/", hl7_views.message_detail_view, name="hl7_message"),
]

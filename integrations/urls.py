from django.urls import path

from integrations.devices import views as device_views
from integrations.fhir import views as fhir_views
from integrations.hl7v2 import views as hl7_views
from integrations.right_of_access import views as roa_views

app_name = "integrations"

urlpatterns = [
    path("fhir/import/", fhir_views.import_upload_view, name="fhir_import"),
    path("fhir/import/<int:pk>/", fhir_views.import_job_view, name="fhir_import_job"),
    path("fhir/connections/", fhir_views.connection_list_view, name="fhir_connections"),
    path("fhir/connections/new/", fhir_views.connection_create_view, name="fhir_connection_create"),
    path("fhir/connections/<int:pk>/", fhir_views.connection_detail_view, name="fhir_connection"),
    path("fhir/connections/<int:pk>/edit/", fhir_views.connection_edit_view, name="fhir_connection_edit"),
    path("fhir/connections/<int:pk>/keys/", fhir_views.connection_keys_view, name="fhir_connection_keys"),
    path(
        "fhir/<slug:org_slug>/connections/<int:pk>/jwks.json",
        fhir_views.connection_jwks_view,
        name="fhir_connection_jwks",
    ),
    path("fhir/connections/<int:pk>/pull/", fhir_views.connection_pull_view, name="fhir_connection_pull"),
    path("fhir/connections/<int:pk>/test/", fhir_views.connection_test_view, name="fhir_connection_test"),
    path("fhir/patients/<int:pk>/export/", fhir_views.patient_export_view, name="fhir_patient_export"),
    path("right-of-access/", roa_views.right_of_access_list_view, name="right_of_access_list"),
    path("right-of-access/<int:pk>/", roa_views.right_of_access_detail_view, name="right_of_access"),
    path("right-of-access/<int:pk>/start/", roa_views.right_of_access_start_view, name="right_of_access_start"),
    path(
        "right-of-access/<int:pk>/download/", roa_views.right_of_access_download_view, name="right_of_access_download"
    ),
    path(
        "patients/<int:patient_pk>/right-of-access/",
        roa_views.right_of_access_create_view,
        name="right_of_access_create",
    ),
    path("devices/observations/", device_views.device_observation_view, name="device_observation"),
    path("hl7/", hl7_views.interface_status_view, name="hl7_status"),
    path("hl7/search/", hl7_views.message_search_view, name="hl7_search"),
    path("hl7/messages/<int:pk>/", hl7_views.message_detail_view, name="hl7_message"),
]

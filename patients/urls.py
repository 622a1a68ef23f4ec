from django.urls import path

from patients import views

app_name = "patients"

urlpatterns = [
    path("", views.patient_list_view, name="list"),
    path("new/", views.patient_create_view, name="create"),
    path("<int:pk>/", views.patient_detail_view, name="detail"),
    path("<int:pk>/edit/", views.patient_edit_view, name="edit"),
    path("<int:pk>/conditions/new/", views.condition_add_view, name="condition_add"),
    path("<int:pk>/medications/new/", views.medication_add_view, name="medication_add"),
    path("<int:pk>/allergies/new/", views.allergy_add_view, name="allergy_add"),
    path("<int:pk>/observations/new/", views.observation_add_view, name="observation_add"),
    path("<int:patient_pk>/appointments/new/", views.appointment_create_view, name="appointment_create"),
    path("appointments/", views.appointment_calendar_view, name="appointment_calendar"),
    path("appointments/<int:pk>/", views.appointment_detail_view, name="appointment_detail"),
    path("appointments/<int:pk>/reschedule/", views.appointment_reschedule_view, name="appointment_reschedule"),
    path("appointments/<int:pk>/status/", views.appointment_status_view, name="appointment_status"),
]

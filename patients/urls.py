from django.urls import path

from patients import views
from patients.care import views as care
from patients.scheduling import views as scheduling

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
    path("<int:patient_pk>/appointments/new/", scheduling.appointment_create_view, name="appointment_create"),
    path("appointments/", scheduling.appointment_calendar_view, name="appointment_calendar"),
    path("appointments/day/", scheduling.appointment_day_view, name="appointment_day"),
    path("appointments/month/", scheduling.appointment_month_view, name="appointment_month"),
    path("appointments/book/", scheduling.appointment_book_view, name="appointment_book"),
    path("<int:patient_pk>/waitlist/new/", scheduling.waitlist_add_view, name="waitlist_add"),
    path("appointments/waitlist/", scheduling.waitlist_view, name="waitlist"),
    path("appointments/waitlist/<int:pk>/remove/", scheduling.waitlist_remove_view, name="waitlist_remove"),
    path("availability/", scheduling.availability_view, name="availability"),
    path("availability/<int:pk>/remove/", scheduling.availability_remove_view, name="availability_remove"),
    path(
        "availability/exceptions/<int:pk>/remove/",
        scheduling.availability_exception_remove_view,
        name="availability_exception_remove",
    ),
    path("appointments/<int:pk>/", scheduling.appointment_detail_view, name="appointment_detail"),
    path("appointments/<int:pk>/reschedule/", scheduling.appointment_reschedule_view, name="appointment_reschedule"),
    path("appointments/<int:pk>/status/", scheduling.appointment_status_view, name="appointment_status"),
    path("appointments/<int:pk>/cancel/", scheduling.appointment_cancel_view, name="appointment_cancel"),
    # Care coordination: patient tabs, care team, care plans, tasks, notes, queues.
    path("<int:pk>/care-plan/", care.care_plan_tab_view, name="care_plan"),
    path("<int:pk>/appointments/", care.appointments_tab_view, name="appointments"),
    path("<int:pk>/timeline/", care.timeline_tab_view, name="timeline"),
    path("<int:pk>/notes/new/", care.note_add_view, name="note_add"),
    path("<int:pk>/care-team/add/", care.care_team_add_view, name="care_team_add"),
    path("care-team/<int:pk>/remove/", care.care_team_remove_view, name="care_team_remove"),
    path("<int:pk>/care-plans/new/", care.care_plan_start_view, name="care_plan_start"),
    path("care-plans/<int:pk>/edit/", care.care_plan_update_view, name="care_plan_update"),
    path("<int:pk>/tasks/new/", care.task_add_view, name="task_add"),
    path("tasks/<int:pk>/status/", care.task_status_view, name="task_status"),
    path("tasks/mine/", care.my_tasks_view, name="my_tasks"),
    path("tasks/team/", care.team_queue_view, name="team_queue"),
    path("follow-up/", care.follow_up_view, name="follow_up"),
    path("notifications/", care.notifications_view, name="notifications"),
]

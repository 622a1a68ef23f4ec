from django.urls import path

from patients import views
from patients.access_report import views as access_report
from patients.breakglass import views as breakglass
from patients.care import views as care
from patients.documents import views as documents
from patients.erasure import views as erasure
from patients.scheduling import views as scheduling

app_name = "patients"

urlpatterns = [
    path("", views.patient_list_view, name="list"),
    path("new/", views.patient_create_view, name="create"),
    path("<int:pk>/", views.patient_detail_view, name="detail"),
    path("<int:pk>/access-flag/", views.patient_access_flag_view, name="access_flag"),
    path("<int:pk>/edit/", views.patient_edit_view, name="edit"),
    path("<int:pk>/merge/", views.patient_merge_view, name="merge"),
    path("<int:pk>/access-report/", access_report.access_report_view, name="access_report"),
    path("<int:pk>/erasure/", erasure.patient_erasure_view, name="erasure"),
    path("erasure/", erasure.erasure_overview_view, name="erasure_overview"),
    path("<int:pk>/coverages/new/", views.coverage_add_view, name="coverage_add"),
    path("coverages/<int:pk>/edit/", views.coverage_edit_view, name="coverage_edit"),
    path("coverages/<int:pk>/remove/", views.coverage_remove_view, name="coverage_remove"),
    path("<int:pk>/identifiers/new/", views.identifier_add_view, name="identifier_add"),
    path("identifiers/<int:pk>/edit/", views.identifier_edit_view, name="identifier_edit"),
    path("identifiers/<int:pk>/remove/", views.identifier_remove_view, name="identifier_remove"),
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
    path("notes/<int:pk>/", care.note_detail_view, name="note_detail"),
    path("notes/<int:pk>/edit/", care.note_edit_view, name="note_edit"),
    path("notes/<int:pk>/sign/", care.note_sign_view, name="note_sign"),
    path("notes/<int:pk>/amend/", care.note_amend_view, name="note_amend"),
    path("notes/<int:pk>/restrict/", care.note_restrict_view, name="note_restrict"),
    path("<int:pk>/care-team/add/", care.care_team_add_view, name="care_team_add"),
    path("care-team/<int:pk>/remove/", care.care_team_remove_view, name="care_team_remove"),
    path("<int:pk>/care-plans/new/", care.care_plan_start_view, name="care_plan_start"),
    path("care-plans/<int:pk>/edit/", care.care_plan_update_view, name="care_plan_update"),
    path("goals/<int:pk>/edit/", care.goal_edit_view, name="goal_edit"),
    path("goals/<int:pk>/status/", care.goal_status_view, name="goal_status"),
    path("care-plans/<int:pk>/interventions/new/", care.intervention_add_view, name="intervention_add"),
    path("interventions/<int:pk>/status/", care.intervention_status_view, name="intervention_status"),
    path("<int:pk>/tasks/new/", care.task_add_view, name="task_add"),
    path("tasks/<int:pk>/", care.task_detail_view, name="task_detail"),
    path("tasks/<int:pk>/edit/", care.task_edit_view, name="task_edit"),
    path("tasks/<int:pk>/reassign/", care.task_reassign_view, name="task_reassign"),
    path("tasks/<int:pk>/reopen/", care.task_reopen_view, name="task_reopen"),
    path("tasks/<int:pk>/status/", care.task_status_view, name="task_status"),
    path("tasks/mine/", care.my_tasks_view, name="my_tasks"),
    path("tasks/team/", care.team_queue_view, name="team_queue"),
    # Documents: the record's tab (list and upload), download, soft delete.
    path("<int:pk>/documents/", documents.documents_tab_view, name="documents"),
    path("documents/<int:pk>/download/", documents.document_download_view, name="document_download"),
    path("documents/<int:pk>/delete/", documents.document_delete_view, name="document_delete"),
    path("documents/<int:pk>/restrict/", documents.document_restrict_view, name="document_restrict"),
    # Break-the-glass: the reason form, and compliance's review of the events.
    path("<int:pk>/break-glass/", breakglass.break_glass_view, name="break_glass"),
    path("break-glass/", breakglass.break_glass_events_view, name="break_glass_events"),
    path("break-glass/<int:pk>/review/", breakglass.break_glass_review_view, name="break_glass_review"),
    path("follow-up/", care.follow_up_view, name="follow_up"),
    path("notifications/", care.notifications_view, name="notifications"),
]

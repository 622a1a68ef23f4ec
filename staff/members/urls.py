"""The organization's staff list and what its administrators do with it, under /staff/."""

from django.urls import path

from staff.members import views

app_name = "members"

urlpatterns = [
    path("", views.member_list_view, name="list"),
    path("invite/", views.member_invite_view, name="invite"),
    path("<int:pk>/", views.member_detail_view, name="detail"),
    path("<int:pk>/deactivate/", views.member_deactivate_view, name="deactivate"),
    path("<int:pk>/reactivate/", views.member_reactivate_view, name="reactivate"),
    path("<int:pk>/resend/", views.member_resend_view, name="resend"),
    path("sessions/", views.session_list_view, name="sessions"),
    path("sessions/<int:pk>/end/", views.session_end_view, name="session_end"),
    path("<int:pk>/sessions/end/", views.member_sessions_end_view, name="member_sessions_end"),
]

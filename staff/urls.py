"""The staff shell's pages, at the site's root: dashboard, health probe, organization switch, sign-in
(Django's auth views and the second factor). URL names are global (no namespace), as before."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from compliance.access import phi_free
from staff import views
from staff.forms import PasswordResetForm
from staff.members import views as member_views
from staff.reauth import recent_auth_required

# Django's auth views show no PHI.
_auth = [
    path("login/", phi_free(auth_views.LoginView.as_view(redirect_authenticated_user=True)), name="login"),
    path("logout/", phi_free(auth_views.LogoutView.as_view()), name="logout"),
    path(
        "password_change/",
        phi_free(recent_auth_required(auth_views.PasswordChangeView.as_view())),
        name="password_change",
    ),
    path("password_change/done/", phi_free(auth_views.PasswordChangeDoneView.as_view()), name="password_change_done"),
    path(
        "password_reset/",
        phi_free(auth_views.PasswordResetView.as_view(form_class=PasswordResetForm)),
        name="password_reset",
    ),
    path("password_reset/done/", phi_free(auth_views.PasswordResetDoneView.as_view()), name="password_reset_done"),
    path(
        "reset/<uidb64>/<token>/",
        phi_free(auth_views.PasswordResetConfirmView.as_view()),
        name="password_reset_confirm",
    ),
    path("reset/done/", phi_free(auth_views.PasswordResetCompleteView.as_view()), name="password_reset_complete"),
    path("mfa/", views.mfa_verify, name="mfa_verify"),
    # Under mfa/: reachable before the sign-in code check, and it is one (both factors).
    path("mfa/reauthenticate/", views.reauthenticate, name="reauthenticate"),
    path("mfa/setup/", views.mfa_setup, name="mfa_setup"),
    path("mfa/enrolment/send/", views.mfa_enrolment_send, name="mfa_enrolment_send"),
    path("mfa/enrol/<str:token>/", views.mfa_enrol, name="mfa_enrol"),
    path("invitation/<int:organization_id>/<str:token>/", member_views.invitation_view, name="staff_invitation"),
]

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("healthz", views.healthz, name="healthz"),
    path("organization/switch/", views.organization_switch, name="organization_switch"),
    path("accounts/", include(_auth)),
    path("staff/", include("staff.members.urls")),
]

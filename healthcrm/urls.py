from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from compliance.access import phi_free
from healthcrm import views

handler500 = "healthcrm.views.server_error"

admin.site.site_header = "HealthCRM administration"
admin.site.site_title = "HealthCRM admin"

# Django's auth views show no PHI.
_auth = [
    path("login/", phi_free(auth_views.LoginView.as_view(redirect_authenticated_user=True)), name="login"),
    path("logout/", phi_free(auth_views.LogoutView.as_view()), name="logout"),
    path("password_change/", phi_free(auth_views.PasswordChangeView.as_view()), name="password_change"),
    path("password_change/done/", phi_free(auth_views.PasswordChangeDoneView.as_view()), name="password_change_done"),
    path("password_reset/", phi_free(auth_views.PasswordResetView.as_view()), name="password_reset"),
    path("password_reset/done/", phi_free(auth_views.PasswordResetDoneView.as_view()), name="password_reset_done"),
    path(
        "reset/<uidb64>/<token>/",
        phi_free(auth_views.PasswordResetConfirmView.as_view()),
        name="password_reset_confirm",
    ),
    path("reset/done/", phi_free(auth_views.PasswordResetCompleteView.as_view()), name="password_reset_complete"),
    path("mfa/", views.mfa_verify, name="mfa_verify"),
    path("mfa/setup/", views.mfa_setup, name="mfa_setup"),
]

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("healthz", views.healthz, name="healthz"),
    path("organization/switch/", views.organization_switch, name="organization_switch"),
    path("accounts/", include(_auth)),
    path("patients/", include("patients.urls")),
    path("compliance/", include("compliance.urls")),
    path("integrations/", include("integrations.urls")),
    path("integrations/twilio/", include("integrations.twilio.urls")),
    path("engagement/", include("engagement.urls")),
    path("admin/", admin.site.urls),
]

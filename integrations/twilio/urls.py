from django.urls import path

from integrations.twilio import views

app_name = "twilio"

urlpatterns = [
    path("<slug:org_slug>/inbound/", views.inbound_sms_view, name="inbound"),
    path("<slug:org_slug>/status/", views.status_callback_view, name="status"),
]

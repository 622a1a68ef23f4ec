"""Staff accounts in the staff UI: the organization's administrators (and the platform
administrator working in it) list, invite, re-role, deactivate and reactivate members; the
invitee's one-time link to choose a password, which continues into the second factor's enrolment."""

from __future__ import annotations

from collections.abc import Callable

from auditlog.context import set_actor
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.forms import SetPasswordForm
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from compliance.access import phi_free
from compliance.decorators import PHI_FREE, staff_view
from compliance.guards import require_perm
from healthcrm.http import TenantRequest, form_add_service_errors, public_base_url
from healthcrm.models import Membership, Organization, UserSession
from healthcrm.security import client_ip
from healthcrm.sessions import session_digest, user_session_end, user_session_list, user_sessions_end
from healthcrm.tenancy import SESSION_KEY, organization_context
from staff.members.forms import InviteForm, RoleForm
from staff.members.selectors import Member, member_get, member_list
from staff.members.services import (
    InvitationLinkError,
    invitation_accept,
    invitation_get,
    member_deactivate,
    member_invitation_resend,
    member_invite,
    member_reactivate,
    member_role_change,
)
from staff.services import enrolment_link_issue

MANAGE = "healthcrm.change_membership"
INVITE = "healthcrm.add_membership"
# Administrators and compliance officers (healthcrm/roles.py).
SESSIONS_VIEW = "healthcrm.view_usersession"
SESSIONS_END = "healthcrm.delete_usersession"


def _member_for_user(request: TenantRequest, pk: int) -> Member:
    """The guarded fetch of a member: 404 for another organization's id, then 403 without the right."""
    member = member_get(request.organization, pk)
    require_perm(request, MANAGE)
    return member


@staff_view(access=PHI_FREE, perm=MANAGE)
def member_list_view(request: TenantRequest) -> HttpResponse:
    return render(request, "staff/members/list.html", {"members": member_list(request.organization)})


@staff_view(access=PHI_FREE, perm=INVITE)
def member_invite_view(request: TenantRequest) -> HttpResponse:
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            invited = member_invite(
                organization=request.organization,
                invited_by=request.user,
                base_url=public_base_url(request),
                **form.cleaned_data,
            )
        except ValidationError as exc:
            form_add_service_errors(form, exc)
        else:
            name = invited.membership.user.get_full_name() or invited.membership.user.email
            if invited.link is None:
                messages.success(request, f"{name} already had an account and can now work in this organization.")
            else:
                messages.success(request, f"Invitation sent to {invited.membership.user.email}.")
            return redirect("members:list")
    return render(request, "staff/members/invite.html", {"form": form}, status=400 if form.errors else 200)


def _detail(request: TenantRequest, member: Member, form: RoleForm | None = None, error: str = "") -> HttpResponse:
    form = form or RoleForm(initial={"role": member.membership.role})
    return render(
        request,
        "staff/members/detail.html",
        {"member": member, "form": form, "error": error, "is_self": member.membership.user_id == request.user.pk},
        status=400 if (error or form.errors) else 200,
    )


@staff_view(access=PHI_FREE)
def member_detail_view(request: TenantRequest, pk: int) -> HttpResponse:
    """A member's page: their role (changed here), and deactivate, reactivate or resend."""
    member = _member_for_user(request, pk)
    if request.method != "POST":
        return _detail(request, member)
    form = RoleForm(request.POST)
    if form.is_valid():
        try:
            member_role_change(membership=member.membership, role=form.cleaned_data["role"])
        except ValidationError as exc:
            form_add_service_errors(form, exc)
        else:
            messages.success(request, "Role changed.")
            return redirect("members:detail", pk=member.membership.pk)
    return _detail(request, member, form=form)


def _act(request: TenantRequest, pk: int, action: Callable[[Membership], object], done: str) -> HttpResponse:
    member = _member_for_user(request, pk)
    try:
        action(member.membership)
    except ValidationError as exc:
        return _detail(request, member, error=" ".join(exc.messages))
    messages.success(request, done)
    return redirect("members:detail", pk=member.membership.pk)


@staff_view(access=PHI_FREE)
@require_POST
def member_deactivate_view(request: TenantRequest, pk: int) -> HttpResponse:
    return _act(request, pk, lambda m: member_deactivate(membership=m), "Access removed; their sessions have ended.")


@staff_view(access=PHI_FREE)
@require_POST
def member_reactivate_view(request: TenantRequest, pk: int) -> HttpResponse:
    return _act(request, pk, lambda m: member_reactivate(membership=m), "Access restored.")


@staff_view(access=PHI_FREE)
@require_POST
def member_resend_view(request: TenantRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        lambda m: member_invitation_resend(membership=m, invited_by=request.user, base_url=public_base_url(request)),
        "A new invitation was sent; the previous link no longer works.",
    )


# -- Sessions (issue 13 item 6) --------------------------------------------------------------------


@staff_view(access=PHI_FREE, perm=SESSIONS_VIEW)
def session_list_view(request: TenantRequest) -> HttpResponse:
    """Every member's live sessions working in this organization: device, IP, started, last seen."""
    members = {m.membership.user_id: m for m in member_list(request.organization)}
    sessions = user_session_list(list(members), organization_id=request.organization.pk)
    current = session_digest(request.session.session_key or "")
    rows = [{"member": members[s.user_id], "session": s, "is_current": s.key_digest == current} for s in sessions]
    return render(request, "staff/members/sessions.html", {"rows": rows, "section": "sessions"})


@staff_view(access=PHI_FREE)
@require_POST
def session_end_view(request: TenantRequest, pk: int) -> HttpResponse:
    """End one session: 404 unless it is a member's of this organization, 403 without the right."""
    user_ids = [m.membership.user_id for m in member_list(request.organization)]
    row = UserSession.objects.filter(pk=pk, user_id__in=user_ids).first()
    if row is None or row not in user_session_list([row.user_id], organization_id=request.organization.pk):
        raise Http404("No such session.")
    require_perm(request, SESSIONS_END)
    user_session_end(row=row, reason="ended_by_staff")
    messages.success(request, "Session ended.")
    return redirect("members:sessions")


@staff_view(access=PHI_FREE)
@require_POST
def member_sessions_end_view(request: TenantRequest, pk: int) -> HttpResponse:
    """End every session of a member working in this organization."""
    member = member_get(request.organization, pk)
    require_perm(request, SESSIONS_END)
    ended = user_sessions_end(
        user_id=member.membership.user_id, organization_id=request.organization.pk, reason="ended_by_staff"
    )
    messages.success(request, f"{ended} session{'s' if ended != 1 else ''} ended.")
    return redirect("members:sessions")


def _invalid_link(request: HttpRequest, *, gone: bool) -> HttpResponse:
    return render(request, "staff/members/invitation_invalid.html", {"gone": gone}, status=410 if gone else 404)


@phi_free
@never_cache
def invitation_view(request: HttpRequest, organization_id: int, token: str) -> HttpResponse:
    """An invitation link: choose a password (Django's validators), then enrol the second factor
    through the usual enrolment pages; signed in to the inviting organization at the end.

    Opening the link uses nothing up (mail scanners open links); choosing the password does, once.
    """
    organization = Organization.objects.filter(pk=organization_id, is_active=True).first()
    if organization is None:
        return _invalid_link(request, gone=False)
    with organization_context(organization):
        try:
            invitation = invitation_get(token=token)
        except InvitationLinkError as exc:
            return _invalid_link(request, gone=exc.gone)
        user = invitation.membership.user
        new_account = not user.has_usable_password()
        form = SetPasswordForm(user, request.POST or None) if new_account else None
        if request.method == "POST" and (form is None or form.is_valid()):
            password = form.cleaned_data["new_password1"] if form is not None else None
            try:
                with set_actor(user, remote_addr=client_ip(request)):
                    # The accepted membership's user holds the new password (the session's hash of it).
                    user = invitation_accept(token=token, password=password).user
                    login(request, user, backend="healthcrm.auth.OrganizationRoleBackend")
                    request.session[SESSION_KEY] = organization.pk
                    # The second factor's one-time enrolment link, opened right away in this session.
                    enrolment = enrolment_link_issue(user=user, base_url="", email=False) if new_account else None
            except InvitationLinkError as exc:
                return _invalid_link(request, gone=exc.gone)
            if enrolment is None:
                messages.success(request, f"You joined {organization.name}.")
                return redirect("dashboard")
            return redirect(enrolment)
        return render(
            request,
            "staff/members/invitation.html",
            {"form": form, "invitee": user, "organization": organization},
            status=400 if form is not None and form.errors else 200,
        )

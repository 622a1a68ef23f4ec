"""The project's Django admin site (the default site, through `HealthAdminConfig` in compliance/apps.py).

What it adds to Django's AdminSite, for every registered ModelAdmin (ours and third-party ones):

- hostile changelist lookups (NUL, numbers past bigint, far or negative dates) end in Django's
  standard "?e=1" redirect, never a 500 (`SafeChangelistMixin`);
- changelist searches are POSTed and kept in the session under a random key (`?qk=<key>`), so a
  search term never reaches a URL, the browser history or a request log;
- a platform administrator with no organization is sent to "organization to work in" (an audited
  choice stored in the session, applied by `TenantMiddleware`) instead of a NoOrganizationError;
- the autocomplete endpoint over PHI models is access-logged and searches through the model
  admin's blind-index search (`PatientAdmin.get_search_results`).
"""

from __future__ import annotations

import secrets
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.contrib.admin.views.main import SEARCH_VAR
from django.core.exceptions import ValidationError
from django.db import DatabaseError, models, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from healthcrm.tenancy import SESSION_KEY, NoOrganizationError, get_current_organization

SEARCH_KEY_VAR = "qk"
_SEARCH_SESSION_PREFIX = "admin_search:"
_SEARCH_MARKER = "_search"


def _search_session_key(key: str) -> str:
    return f"{_SEARCH_SESSION_PREFIX}{key}"


class SafeChangelistMixin:
    """Mixed into every registered ModelAdmin by `HealthAdminSite.register`."""

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "POST" and _SEARCH_MARKER in request.POST:
            return self._keep_search(request, request.POST.get(SEARCH_VAR, ""), request.POST)
        if request.method == "GET" and request.GET.get(SEARCH_VAR):
            # A search typed into the URL: the term leaves the URL for the links of the page.
            return self._keep_search(request, request.GET[SEARCH_VAR], request.GET)
        return super().changelist_view(request, extra_context)  # type: ignore[misc]

    def _keep_search(self, request: HttpRequest, term: str, params: QueryDict) -> HttpResponse:
        kept = QueryDict(mutable=True)
        for name, values in params.lists():
            if name not in {SEARCH_VAR, SEARCH_KEY_VAR, _SEARCH_MARKER, "csrfmiddlewaretoken", "p"}:
                kept.setlist(name, values)
        term = term.strip()
        if term:
            key = secrets.token_urlsafe(12)
            request.session[_search_session_key(key)] = term
            kept[SEARCH_KEY_VAR] = key
        return HttpResponseRedirect(f"{request.path}?{kept.urlencode()}" if kept else request.path)

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        original = request.GET
        if any("\x00" in name or any("\x00" in v for v in values) for name, values in original.lists()):
            raise IncorrectLookupParameters("NUL in the query string")
        key = original.get(SEARCH_KEY_VAR, "")
        request._admin_search_key = key  # type: ignore[attr-defined]
        if SEARCH_KEY_VAR in original:
            with_term = original.copy()
            del with_term[SEARCH_KEY_VAR]
            term = request.session.get(_search_session_key(key), "") if key else ""
            if term:
                with_term[SEARCH_VAR] = term
            request.GET = with_term  # type: ignore[assignment]  # a mutable copy, read-only after
        try:
            # A savepoint: a lookup the database refuses must not abort the request's transaction.
            with transaction.atomic():
                changelist = super().get_changelist_instance(request)  # type: ignore[misc]
        except (OverflowError, ValueError, ValidationError, DatabaseError) as error:
            raise IncorrectLookupParameters(type(error).__name__) from error
        finally:
            request.GET = original
        if key:
            # Change-form links carry the key (the request's own query string), not the term.
            changelist.preserved_filters = self.get_preserved_filters(request)  # type: ignore[attr-defined]
        return changelist

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> Any:
        base = super().get_changelist(request, **kwargs)  # type: ignore[misc]
        key = getattr(request, "_admin_search_key", "")
        if not key:
            return base

        class KeyedSearchChangeList(base):  # type: ignore[misc,valid-type]
            """Every link of the page (filters, pages, sorting, facets) carries the key, not the term."""

            def get_query_string(self, new_params: Any = None, remove: Any = None) -> str:
                return super().get_query_string({**(new_params or {}), SEARCH_VAR: None, SEARCH_KEY_VAR: key}, remove)

        return KeyedSearchChangeList

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if lookup == SEARCH_KEY_VAR:
            return True
        return super().lookup_allowed(lookup, value, request)  # type: ignore[misc]


class OrganizationMembersOnlyMixin:
    """User fields of tenant models offer only the current organization's active members.

    A raw-id widget would look any id up across the platform and print the user; a select limited
    to the members shows nobody else, and an id outside it fails with Django's generic "Select a
    valid choice" (naming no one).
    """

    def formfield_for_foreignkey(self, db_field: models.ForeignKey, request: HttpRequest, **kwargs: Any) -> Any:
        from django.contrib.auth import get_user_model

        from healthcrm.models import TenantModel

        model = self.model  # type: ignore[attr-defined]
        if db_field.remote_field.model is get_user_model() and issubclass(model, TenantModel):
            current = get_current_organization()
            kwargs["queryset"] = (
                get_user_model()
                .objects.filter(memberships__organization_id=current.pk if current else 0, memberships__is_active=True)
                .order_by("username")
            )
            kwargs["widget"] = forms.Select
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]


class _RecordingAutocompleteView(AutocompleteJsonView):
    """Django's autocomplete, access-logged when the searched model is PHI."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        from compliance.access import AccessRecorder, PHIAdminMixin
        from compliance.models import AccessAction

        self._shown: list[models.Model] = []
        response = super().get(request, *args, **kwargs)
        if isinstance(self.model_admin, PHIAdminMixin) and response.status_code < 400:
            opts = self.model_admin.opts
            recorder = AccessRecorder(AccessAction.SEARCH, f"admin:autocomplete:{opts.app_label}_{opts.model_name}")
            recorder.saw(self._shown)
            recorder.searched(term=self.term)
            recorder.write(request, action=AccessAction.SEARCH if self.term else AccessAction.LIST)
        return response

    def serialize_result(self, obj: models.Model, to_field_name: str) -> dict[str, str]:
        self._shown.append(obj)
        return super().serialize_result(obj, to_field_name)  # type: ignore[misc]


class OrganizationChoiceForm(forms.Form):
    organization: forms.ModelChoiceField = forms.ModelChoiceField(
        queryset=None, empty_label="(no organization: platform pages only)", required=False
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from healthcrm.models import Organization

        super().__init__(*args, **kwargs)
        field = self.fields["organization"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = Organization.objects.filter(is_active=True).order_by("name")


class HealthAdminSite(admin.AdminSite):
    site_header = "HealthCRM administration"
    site_title = "HealthCRM admin"

    def register(self, model_or_iterable: Any, admin_class: Any = None, **options: Any) -> None:
        admin_class = admin_class or admin.ModelAdmin
        mixins: list[type] = [SafeChangelistMixin]
        if not issubclass(admin_class, OrganizationMembersOnlyMixin):
            mixins.append(OrganizationMembersOnlyMixin)
        safe = type(admin_class.__name__, (*mixins, admin_class), {"__module__": admin_class.__module__})
        super().register(model_or_iterable, safe, **options)

    def admin_view(self, view: Any, cacheable: bool = False) -> Any:
        site = self

        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                response = view(request, *args, **kwargs)
                if isinstance(response, TemplateResponse) and not response.is_rendered:
                    response.render()  # lazy querysets of tenant models run here
            except NoOrganizationError:
                if not request.user.is_superuser:
                    raise
                messages.info(request, "Choose the organization to work in: these pages show one organization's data.")
                return redirect(f"{reverse(f'{site.name}:choose_organization')}?next={request.path}")
            return response

        guarded.__name__ = getattr(view, "__name__", "admin_view")
        return super().admin_view(guarded, cacheable)

    def get_urls(self) -> list[Any]:
        urls = [path("organization/", self.admin_view(self.choose_organization_view), name="choose_organization")]
        return urls + super().get_urls()

    def autocomplete_view(self, request: HttpRequest) -> HttpResponse:
        response = _RecordingAutocompleteView.as_view(admin_site=self)(request)
        assert isinstance(response, HttpResponse)  # a JsonResponse, or a 403
        return response

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        context["working_organization"] = getattr(request, "organization", None)
        return context

    def choose_organization_view(self, request: HttpRequest) -> HttpResponse:
        """A platform administrator's "organization to work in" (audited in that organization)."""
        from django.core.exceptions import PermissionDenied
        from django.utils.http import url_has_allowed_host_and_scheme

        from compliance.audit import platform_admin_entered

        if not request.user.is_superuser:
            raise PermissionDenied
        form = OrganizationChoiceForm(
            request.POST or None, initial={"organization": getattr(request, "organization", None)}
        )
        next_url = request.POST.get("next") or request.GET.get("next") or reverse(f"{self.name}:index")
        if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, require_https=request.is_secure()):
            next_url = reverse(f"{self.name}:index")
        if request.method == "POST" and form.is_valid():
            organization = form.cleaned_data["organization"]
            if organization is None:
                request.session.pop(SESSION_KEY, None)
            else:
                request.session[SESSION_KEY] = organization.pk
                platform_admin_entered(request, organization)
            return redirect(next_url)
        context = {**self.each_context(request), "title": "Organization to work in", "form": form, "next": next_url}
        return TemplateResponse(request, "admin/choose_organization.html", context)

from django.contrib import admin

from compliance.access import PHIAdminMixin
from patients.models import Patient
from patients.selectors import patient_list


@admin.register(Patient)
class PatientAdmin(PHIAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "given_name", "family_name", "date_of_birth", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["mrn"]  # shows the search box; the search itself uses blind indexes
    search_help_text = "Exact MRN, phone, email, date of birth, or first or last name."
    list_per_page = 50

    def get_search_results(self, request, queryset, search_term):  # type: ignore[no-untyped-def]
        if not search_term:
            return queryset, False
        return queryset & patient_list(query=search_term), False

"""Right of access (issue 13 item 4): a patient's complete record as a FHIR R4 Bundle and as a
readable document, built by a Celery job, stored encrypted, downloaded once by compliance or an
administrator. It lives in integrations/ because it reuses the FHIR exporter (integrations/fhir)."""

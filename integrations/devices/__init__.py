"""Home-device readings (FHIR Observations) sent with an API token bound to one patient."""

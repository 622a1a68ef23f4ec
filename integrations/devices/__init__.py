"""Home-device readings (FHIR Observations) sent with a per-organization API token."""

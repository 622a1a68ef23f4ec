"""FHIR, Twilio, devices and telehealth adapters (issues #4 and #5 build them)."""

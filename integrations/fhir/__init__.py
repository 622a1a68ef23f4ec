"""HL7 FHIR R4 in and out: parse (fhir.resources R4B models), map, import, pull, export."""

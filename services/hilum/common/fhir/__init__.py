"""FHIR R4 resources Hilum emits: one module per resource, plus bundle assembly and validation."""

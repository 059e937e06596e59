"""Hilum: FHIR-native clinical decision support for chest radiographs."""

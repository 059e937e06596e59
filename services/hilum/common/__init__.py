"""What every service shares: settings, database, object store, queue wiring, gRPC plumbing, FHIR, logs."""

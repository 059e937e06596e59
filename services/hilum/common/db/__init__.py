"""Hilum's relational store: ORM models, sessions and Alembic migrations."""

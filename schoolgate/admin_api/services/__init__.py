"""Service functions: the admin's changes to the database, each one transaction (keyword-only
arguments; the audit entry is written in the same transaction as the change)."""

"""Admin for legal holds."""

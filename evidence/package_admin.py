"""Admin for evidence packages (request, progress, download)."""
